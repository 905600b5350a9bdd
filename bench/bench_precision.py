"""Benchmark: float32 against bfloat16 on the CPU, for a full-size SD1.5 UNet step and VAE decode.

What the CPU's precision choice (sdui/devices.py: bfloat16 where the CPU has native bf16) buys, in this one process:
  1. a full-size SD1.5 UNet and VAE with random weights (the architecture sets the cost, not the values), once in
     float32 and once in bfloat16 (the same weights rounded, as the loader casts them)
  2. one sampling step per size: our Denoiser with CFG 7 (cond and uncond batched: the UNet sees batch 2), float32
     arithmetic around a UNet call in the model's dtype; a warm-up call per dtype and size, then float32 and
     bfloat16 calls interleaved (A B A B ...) so load changes on the machine hit both alike
  3. the VAE decode of one 512x512 image (64x64 latents) through JobVae, interleaved the same way
  4. medians, and the ratio float32 / bfloat16 (the goal on a CPU with native bf16: >= 1.8)

    venv/bin/python bench/bench_precision.py [--sizes 512 768] [--steps 3] [--vae-size 512]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

DTYPES = (torch.float32, torch.bfloat16)


def _config(name: str) -> dict:
    config = json.loads((REPO / "configs" / "sd1" / name).read_text())
    return {k: v for k, v in config.items() if not k.startswith("_")}


def full_size_models():
    """SD1.5's UNet and VAE with random weights, per dtype: the bfloat16 ones are built in bfloat16 and take the
    float32 weights rounded (no second float32 copy: the pair fits beside other work on a small machine)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from sdui.devices import conv_memory_format

    def build(dtype):
        default = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            torch.manual_seed(0)
            unet = UNet2DConditionModel(**_config("unet_config.json"))
            vae = AutoencoderKL(**_config("vae_config.json"))
        finally:
            torch.set_default_dtype(default)
        return unet.eval().requires_grad_(False), vae.eval().requires_grad_(False)

    full_unet, full_vae = build(torch.float32)
    half_unet, half_vae = build(torch.bfloat16)
    half_unet.load_state_dict(full_unet.state_dict())
    half_vae.load_state_dict(full_vae.state_dict())
    # as the loader lays them out (sdui.devices.conv_memory_format: channels-last for bf16 on the CPU)
    layout = conv_memory_format(torch.device("cpu"), torch.bfloat16)
    half_unet, half_vae = half_unet.to(memory_format=layout), half_vae.to(memory_format=layout)
    return {torch.float32: (full_unet, full_vae), torch.bfloat16: (half_unet, half_vae)}


def interleaved(calls: dict, repeats: int) -> dict:
    """{name: median seconds} of each call, after one warm-up each, run A B A B ..."""
    for call in calls.values():
        call()
    times: dict = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def unet_step_calls(models: dict, size: int) -> dict:
    """One CFG step (batch 2) per dtype, through our Denoiser, on the same latents and conditioning."""
    from sdui.core.denoiser import Denoiser, TextConditioning
    from sdui.core.schedules import training_sigmas

    config = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}
    train = training_sigmas(config)
    g = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(1, 77, 768, generator=g), torch.randn(1, 77, 768, generator=g)
    x = torch.randn(1, 4, size // 8, size // 8, generator=g) * 10.0
    sigma = torch.tensor([10.0])
    calls = {}
    for dtype, (unet, _) in models.items():
        text = TextConditioning(cond.to(dtype), uncond.to(dtype))
        denoiser = Denoiser(unet, text, cfg_scale=7.0, prediction_type="epsilon", train_sigmas=train)
        calls[dtype] = lambda d=denoiser: d(x, sigma, step=0, total=1)
    return calls


def vae_decode_calls(models: dict, size: int) -> dict:
    from types import SimpleNamespace

    from sdui.imaging.vae import JobVae

    latents = torch.randn(1, 4, size // 8, size // 8, generator=torch.Generator().manual_seed(1))
    calls = {}
    for dtype, (_, vae) in models.items():
        job_vae = JobVae(SimpleNamespace(vae=vae, vae_overflows=False))
        calls[dtype] = lambda v=job_vae: v.decode(latents)
    return calls


def report(title: str, medians: dict) -> float:
    ratio = medians[torch.float32] / medians[torch.bfloat16]
    print(
        f"{title}: float32 {medians[torch.float32]:.3f} s, bfloat16 {medians[torch.bfloat16]:.3f} s, ratio {ratio:.2f}"
    )
    return ratio


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 768])
    parser.add_argument("--steps", type=int, default=3, help="timed calls per dtype and size (median)")
    parser.add_argument("--vae-size", type=int, default=512)
    args = parser.parse_args()

    from sdui.devices import detect_cpu_bf16

    # 1. the machine and the models
    feature = detect_cpu_bf16()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {feature or 'none'}")
    if feature is None:
        print("(this CPU has no native bf16: the policy would pick float32 here, and bf16 will be slow)")
    models = full_size_models()

    # 2. a UNet step with CFG per size
    rows = []
    with torch.inference_mode():
        for size in args.sizes:
            medians = interleaved(unet_step_calls(models, size), args.steps)
            rows.append((f"UNet step {size}x{size} (CFG, batch 2)", medians))
            report(rows[-1][0], medians)
        # 3. the VAE decode
        medians = interleaved(vae_decode_calls(models, args.vae_size), args.steps)
        rows.append((f"VAE decode {args.vae_size}x{args.vae_size}", medians))
        report(rows[-1][0], medians)

    # 4. the table, as the README has it
    print("\n| measure (CPU, native bf16: %s) | float32 | bfloat16 | ratio |" % (feature or "none"))
    print("|---|---|---|---|")
    for title, m in rows:
        ratio = m[torch.float32] / m[torch.bfloat16]
        print(f"| {title} | {m[torch.float32]:.2f} s | {m[torch.bfloat16]:.2f} s | {ratio:.2f} |")


if __name__ == "__main__":
    main()
