"""Benchmark: what live previews cost a 20-step job, per show_progress_type (A1111's "Live preview display method").

Everything in this one process, on a full-size SD1.5 architecture with random weights (UNet, VAE and CLIP-L built
from configs/sd1: the ratio of a preview to a step only means something at the real sizes), and TAESD with random
weights written in madebyollin's file layout to a temporary models/VAE-approx:
  1. whole txt2img jobs through process(), runs interleaved (none, Approx cheap, TAESD, Full, none, ...) after a
     warm-up of each; previews every `--every` steps (default: the setting's default, 10 steps)
  2. inside those jobs, the time spent making previews (BatchProgress._preview, timed by a wrapper): its share of
     the same job's time does not depend on the machine's load changing between runs, as (1) does
  3. one preview of each method alone, on latents of the job's size (best of 5)
and prints each method's overhead over the job without previews. The issue's goal: the default method (Approx
cheap) costs <= 2 % of a 20-step job.

    venv/bin/python bench/bench_previews.py [--size 256] [--steps 20] [--every 10] [--repeats 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

METHODS = ["none", "Approx cheap", "TAESD", "Full"]


def _config(path: Path) -> dict:
    return {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}


def full_size_model(policy):
    """SD1.5's architecture with random weights, as the loader would hand it over (no file written)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from sdui.models.loading import scheduler_config_for
    from sdui.models.sd_model import SDModel
    from sdui.models.text_encoder_loading import TOKENIZER_PAD
    from sdui.text.tokenizer import load_clip_tokenizer

    cfg = REPO / "configs" / "sd1"
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**_config(cfg / "unet_config.json"))
    vae = AutoencoderKL(**_config(cfg / "vae_config.json"))
    text = CLIPTextModel(CLIPTextConfig(**json.loads((cfg / "text_encoder_config.json").read_text())))
    return SDModel(
        arch="sd1",
        variant="base",
        prediction_type="epsilon",
        unet=unet.to(policy.device, policy.dtype).eval(),
        vae=vae.to(policy.device, policy.vae_dtype).eval(),
        text_encoders=[text.to(policy.device, policy.dtype).eval()],
        tokenizers=[load_clip_tokenizer(TOKENIZER_PAD["clip-l"])],
        scheduler_config=scheduler_config_for("sd1", "epsilon"),
    )


def write_random_taesd(folder: Path) -> None:
    """diffusers' AutoencoderTiny (TAESD's architecture), random weights, its decoder saved as taesd_decoder.pth is
    laid out: one nn.Sequential whose index 0 is the input clamp."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(1)
    decoder = AutoencoderTiny().decoder.state_dict()
    folder.mkdir(parents=True, exist_ok=True)
    original = {f"{int(k.split('.')[1]) + 1}.{k.split('.', 2)[2]}": v for k, v in decoder.items()}
    torch.save(original, folder / "taesd_decoder.pth")


class Count:
    """A progress receiver that counts the previews it is handed."""

    def __init__(self):
        self.previews = 0

    def add_batches(self, count, steps_per_batch): ...
    def step_done(self, step, steps): ...
    def step_part_done(self, fraction): ...
    def batch_done(self): ...

    def preview(self, image):
        self.previews += 1

    def interrupted(self):
        return False

    def skipped(self):
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--every", type=int, default=None, help="show_progress_every_n_steps (default: the setting's)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from sdui.core.processing import process
    from sdui.core.progress import BatchProgress
    from sdui.devices import DevicePolicy
    from sdui.imaging.preview_decoders import PreviewDecoder
    from sdui.imaging.vae import JobVae
    from sdui.request import GenerationRequest
    from sdui.settings.snapshot import Settings

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    policy = DevicePolicy(device=device, dtype=dtype, vae_dtype=dtype)
    start = time.perf_counter()
    model = full_size_model(policy)
    print(f"built a random full-size SD1.5 in {time.perf_counter() - start:.0f} s")
    taesd_dir = Path(tempfile.mkdtemp(prefix="sdbench-")) / "models" / "VAE-approx"
    write_random_taesd(taesd_dir)

    every = args.every if args.every is not None else Settings.defaults().show_progress_every_n_steps
    request = GenerationRequest(
        prompt="a photo of a red fox in the snow",
        negative_prompt="blurry",
        seed=1,
        sampler_name="Euler",
        steps=args.steps,
        width=args.size,
        height=args.size,
    )

    inside: list[float] = []  # seconds spent in each preview of the job under way
    make_preview = BatchProgress._preview

    def timed_preview(self, latents):
        start = time.perf_counter()
        image = make_preview(self, latents)
        if device.type == "cuda":
            torch.cuda.synchronize()
        inside.append(time.perf_counter() - start)
        return image

    def job(method: str, steps: int = args.steps, every: int = every) -> tuple[float, int, float]:
        """(seconds, previews shown, seconds inside the previews)"""
        if method == "none":
            settings = Settings.defaults(live_previews_enable=False)
        else:
            settings = Settings.defaults(show_progress_every_n_steps=every, show_progress_type=method)
        events = Count()
        inside.clear()
        start = time.perf_counter()
        job_request = dataclasses.replace(request, steps=steps)
        process(job_request, model, policy=policy, settings=settings, events=events, preview_dirs=[taesd_dir])
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, events.previews, sum(inside)

    print(
        f"torch {torch.__version__}, {device.type} {str(dtype)[6:]}, {torch.get_num_threads()} threads, "
        f"{args.size}x{args.size}, {args.steps} steps Euler, CFG 7, batch 1, a preview every {every} steps"
    )
    # 1. + 2. whole jobs, interleaved after a short warm-up of each (TAESD: the file is read there)
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    shares: dict[str, list[float]] = {m: [] for m in METHODS}
    shown: dict[str, int] = {}
    BatchProgress._preview = timed_preview
    try:
        for method in METHODS:
            job(method, steps=1, every=1)
        for _ in range(args.repeats):
            for method in METHODS:
                seconds, shown[method], in_previews = job(method)
                times[method].append(seconds)
                shares[method].append(in_previews / (seconds - in_previews))
    finally:
        BatchProgress._preview = make_preview
    base = min(times["none"])

    # 3. one preview alone, on latents of the job's size
    latents = torch.randn(1, 4, args.size // 8, args.size // 8, device=device)
    one: dict[str, float] = {}
    with JobVae(model) as vae:
        for method in METHODS[1:]:
            decode = PreviewDecoder(method, vae, family="sd", scale=8, folders=[taesd_dir])
            decode(latents)  # warm-up (TAESD: loads the file)
            best = float("inf")
            for _ in range(5):
                start = time.perf_counter()
                decode(latents)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - start)
            one[method] = best

    print(f"job without previews: {base:.2f} s ({base / args.steps * 1000:.0f} ms/step)")
    print("method        previews  one alone   in-job previews / rest of the job   whole job / no previews")
    for method in METHODS[1:]:
        print(
            f"{method:13s} {shown[method]:8d}  {one[method] * 1000:7.2f} ms   {min(shares[method]) * 100:8.3f} %"
            f"{'':26s}{min(times[method]) / base:.3f}"
        )
    default = Settings.defaults().show_progress_type
    verdict = "met" if min(shares[default]) <= 0.02 else "NOT met"
    print(f"goal: the default {default!r} costs <= 2 % of the job (in-job share): {verdict}")


if __name__ == "__main__":
    main()
