"""Benchmark: what our sampling loop costs over the bare UNet calls it makes, per sampler family.

For each sampler, in this one process, runs interleaved (A B A B ...) after a warm-up of each:
  A. ours: sdui.core.sampling.sample() with the Denoiser (CFG, hooks, step counting, noise sources)
  B. bare: the same number of UNet calls on the same shapes (cond and uncond batched), nothing else
and prints the ratio A / B, and (less exposed to the machine's load changing between runs) the ratio of A's
whole time to the time A spent inside the UNet's forward. The UNet is a full-size SD1.5 architecture with random
weights (the loop's cost is fixed per call, so a smaller UNet would exaggerate it); the latent size is small to keep
the run short.

    venv/bin/python bench/bench_samplers.py [--size 128] [--steps 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

SAMPLERS = ["Euler", "Euler a", "DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "Heun", "LMS", "DDIM", "UniPC", "LCM"]


def full_size_unet():
    from diffusers import UNet2DConditionModel

    config = json.loads((REPO / "configs" / "sd1" / "unet_config.json").read_text())
    torch.manual_seed(0)
    return UNet2DConditionModel(**{k: v for k, v in config.items() if not k.startswith("_")}).eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from types import SimpleNamespace

    from sdui.core import latents as initial
    from sdui.core.denoiser import Denoiser, TextConditioning
    from sdui.core.run import Batch
    from sdui.core.sampler_setup import sampler_for
    from sdui.core.sampling import sample
    from sdui.core.schedules import training_sigmas
    from sdui.devices import DevicePolicy
    from sdui.request import GenerationRequest
    from sdui.settings.snapshot import Settings

    unet = full_size_unet()
    config = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}
    model = SimpleNamespace(scheduler_config=config, is_sdxl=False)
    settings = Settings.defaults()
    policy = DevicePolicy(device=torch.device("cpu"), dtype=torch.float32, vae_dtype=torch.float32)
    train = training_sigmas(config)
    g = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(1, 77, 768, generator=g), torch.randn(1, 77, 768, generator=g)
    shape = (4, args.size // 8, args.size // 8)
    noise = torch.randn(1, *shape, generator=g)
    batch = Batch(index=0, prompts=["x"], negative_prompts=[""], seeds=[1], subseeds=[1])

    def ours(setup):
        denoiser = Denoiser(
            unet, TextConditioning(cond, uncond), cfg_scale=7.0, prediction_type="epsilon", train_sigmas=train
        )
        x = initial.txt2img_start(setup, noise, settings)
        source = initial.sampler_noise(setup, batch, settings, policy, x)
        return sample(setup, denoiser, x, noise=source, train_sigmas=train)[0]

    def bare(calls, t):
        x = noise.repeat(2, 1, 1, 1)
        hidden = torch.cat([uncond, cond])
        with torch.no_grad():
            for _ in range(calls):
                unet(x, t, encoder_hidden_states=hidden)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.size}x{args.size}, {args.steps} steps")
    worst = 0.0
    for name in SAMPLERS:
        request = GenerationRequest(sampler_name=name, steps=args.steps, width=args.size, height=args.size)
        setup = sampler_for(request, model, settings)
        counted = []
        hook = unet.register_forward_hook(lambda *_, counted=counted: counted.append(1))
        ours(setup)
        hook.remove()
        calls, t = len(counted), torch.tensor([500.0, 500.0])
        bare(calls, t)
        times = {"ours": [], "bare": [], "inside": []}
        for _ in range(args.repeats):
            inside = []
            enter = unet.register_forward_pre_hook(lambda *_, inside=inside: inside.append(-time.perf_counter()))
            leave = unet.register_forward_hook(lambda *_, inside=inside: inside.append(time.perf_counter()))
            start = time.perf_counter()
            ours(setup)
            times["ours"].append(time.perf_counter() - start)
            enter.remove()
            leave.remove()
            times["inside"].append(times["ours"][-1] / sum(inside))
            start = time.perf_counter()
            bare(calls, t)
            times["bare"].append(time.perf_counter() - start)
        ratio = min(times["ours"]) / min(times["bare"])
        inside = min(times["inside"])
        worst = max(worst, inside)
        print(
            f"{name:14s} {calls:3d} UNet calls  ours {min(times['ours']) / calls * 1000:7.1f} ms/call  "
            f"bare {min(times['bare']) / calls * 1000:7.1f} ms/call  ratio {ratio:.3f}  "
            f"whole / inside the UNet {inside:.4f}"
        )
    print(f"worst whole / inside the UNet: {worst:.4f}")


if __name__ == "__main__":
    main()
