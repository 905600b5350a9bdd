"""Benchmark: txt2img with one ControlNet unit, ours against diffusers' StableDiffusionControlNetPipeline.

Everything in this one process, on the same components, so the ratio compares like with like:
  1. an SD1.5-shaped checkpoint with random weights (UNet widths scaled by --width, default half of SD1.5's 320:
     small enough for a 2-core CPU, large enough that the UNet and ControlNet dominate), written in the original
     single-file layout, and a ControlNet made from its UNet (nonzero zero-convs) in lllyasviel's layout; both
     loaded through our loaders (load_sd_model, ControlNetCatalog + ControlNetCache)
  2. ours (process() with the unit as the run's residual contributor, as the app's hook puts it) and diffusers'
     pipeline (same UNet, ControlNet, VAE, text encoder, Euler on A1111's sigmas, noise and map), interleaved
     A B A B after a warm-up each; the fastest round of each, as s/it, and their ratio
  3. for scale: ours without the unit, so the ControlNet's own share shows

    venv/bin/python bench/bench_controlnet.py [--size 256] [--steps 4] [--width 160] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

PROMPT, NEGATIVE = "a photo of a house by a lake", "blurry"


def _config(name: str) -> dict:
    config = json.loads((REPO / "configs" / "sd1" / name).read_text())
    return {k: v for k, v in config.items() if not k.startswith("_")}


def build_files(work: Path, width: int) -> tuple[Path, Path]:
    """The checkpoint and the ControlNet, in the layouts users download them in."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    from tests.fixtures.controlnet import HINT_WIDTHS, controlnet_to_original
    from tests.fixtures.ldm_unet_vae import unet_to_ldm, vae_to_ldm
    from tests.fixtures.text_encoder_ldm import text_encoders_to_ldm

    torch.manual_seed(0)
    unet_config = _config("unet_config.json")
    unet_config["block_out_channels"] = [width * m for m in (1, 2, 4, 4)]
    unet = UNet2DConditionModel(**unet_config)
    vae = AutoencoderKL(**_config("vae_config.json"))
    text = CLIPTextModel(CLIPTextConfig(**_config("text_encoder_config.json")))
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=HINT_WIDTHS)
    with torch.no_grad():  # a fresh ControlNet's zero convs give zero residuals: nothing to add, nothing to measure
        for module in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            module.weight.normal_(0, 0.02)
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = work / "sd15-narrow.safetensors"
    weights = {**unet_to_ldm(unet), **vae_to_ldm(vae), **text_encoders_to_ldm("sd1", [text])}
    save_file({k: v.detach().contiguous().clone() for k, v in weights.items()}, str(checkpoint))
    control = work / "ControlNet" / "control_bench.safetensors"
    control.parent.mkdir(parents=True, exist_ok=True)
    save_file(controlnet_to_original(controlnet), str(control))
    return checkpoint, control


def edge_map(size: int) -> Image.Image:
    array = np.zeros((size, size, 3), np.uint8)
    array[size // 3, :] = array[:, size // 2] = array[2 * size // 3, size // 8 : size // 2] = 255
    return Image.fromarray(array)


def run_ours(model, controlnet, policy, size, steps):
    from sdui.controlnet.residuals import ControlNetResiduals
    from sdui.core.hooks import ProcessingHooks
    from sdui.core.processing import process
    from sdui.request import GenerationRequest

    class Unit(ProcessingHooks):
        def process(self, run):
            if controlnet is not None:
                run.residual_contributors.append(ControlNetResiduals(controlnet, edge_map(size), weight=1.0))

    request = GenerationRequest(
        prompt=PROMPT, negative_prompt=NEGATIVE, seed=1, sampler_name="Euler", steps=steps, width=size, height=size
    )
    process(request, model, policy=policy, hooks=[Unit()])


def run_ours_without(model, controlnet, policy, size, steps):
    run_ours(model, None, policy, size, steps)


def run_diffusers(model, controlnet, policy, size, steps):
    from diffusers import EulerDiscreteScheduler, StableDiffusionControlNetPipeline

    from sdui.core import rng, schedules

    sigmas = schedules.get_sigmas("uniform", steps, schedules.training_sigmas(model.scheduler_config))
    pipe = StableDiffusionControlNetPipeline(
        vae=model.vae,
        unet=model.unet,
        controlnet=controlnet,
        text_encoder=model.text_encoders[0],
        tokenizer=model.tokenizers[0],
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        scheduler=EulerDiscreteScheduler.from_config(
            model.scheduler_config,
            timestep_spacing="linspace",
            timestep_type="discrete",
            final_sigmas_type="zero",
            prediction_type=model.prediction_type,
        ),
    )
    pipe.set_progress_bar_config(disable=True)
    noise = rng.create_noise((4, size // 8, size // 8), [1], [1], 0.0, -1, -1, source="CPU", device=policy.device)
    pipe(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        image=edge_map(size),
        height=size,
        width=size,
        guidance_scale=7.0,
        latents=noise.to(policy.device, policy.dtype),
        sigmas=sigmas.tolist(),
    )


def interleaved(fns, *args, repeats: int) -> list[float]:
    """The fastest wall time of each of `fns`, run in turn (A B C A B C ...) after a warm-up each, so that drift
    in the machine's load hits all alike."""
    times = {fn: [] for fn in fns}
    for fn in fns:
        fn(*args)
    for _ in range(repeats):
        for fn in fns:
            start = time.perf_counter()
            fn(*args)
            times[fn].append(time.perf_counter() - start)
    return [min(times[fn]) for fn in fns]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--width", type=int, default=160, help="the UNet's first block width (SD1.5: 320)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the built files here between runs")
    args = parser.parse_args()

    from sdui.controlnet.model_files import ControlNetCache, ControlNetCatalog
    from sdui.devices import DevicePolicy
    from sdui.models.loading import load_sd_model

    work = args.workdir or Path(tempfile.mkdtemp(prefix="sdbench-cn-"))
    checkpoint, control = work / "sd15-narrow.safetensors", work / "ControlNet" / "control_bench.safetensors"
    if not (checkpoint.exists() and control.exists()):
        start = time.perf_counter()
        checkpoint, control = build_files(work, args.width)
        print(f"built the checkpoint and ControlNet in {time.perf_counter() - start:.0f} s")

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    policy = DevicePolicy(device=device, dtype=dtype, vae_dtype=dtype)
    model = load_sd_model(checkpoint, policy)
    controlnet = ControlNetCache(1).get(ControlNetCatalog([control.parent]).find("control_bench"), policy)
    unet_m = sum(p.numel() for p in model.unet.parameters()) / 1e6
    cn_m = sum(p.numel() for p in controlnet.parameters()) / 1e6
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device.type} {str(dtype)[6:]}, "
        f"{args.size}x{args.size}, {args.steps} steps, Euler, CFG 7, batch 1; UNet {unet_m:.0f}M, ControlNet "
        f"{cn_m:.0f}M parameters"
    )
    fns = [run_ours, run_diffusers, run_ours_without]
    ours, theirs, bare = interleaved(fns, model, controlnet, policy, args.size, args.steps, repeats=args.repeats)
    steps = args.steps
    print(
        f"one ControlNet unit: s/it ours {ours / steps:.3f} vs diffusers {theirs / steps:.3f} "
        f"(ratio {ours / theirs:.3f}); ours without the unit {bare / steps:.3f} s/it (the unit costs "
        f"x{ours / bare:.2f})"
    )


if __name__ == "__main__":
    main()
