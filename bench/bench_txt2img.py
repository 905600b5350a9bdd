"""Benchmark: our txt2img against the bare diffusers pipeline, on a full-size SD1.5-architecture checkpoint.

Everything is measured in this one process (plus one server subprocess), so the ratios compare like with like:
  1. build a full-size SD1.5 checkpoint with random weights in the original single-file layout (fp16 safetensors)
  2. read time of the file vs our load time (load_sd_model: detection + diffusers conversion)
  3. s/it and peak RSS growth: ours (sdui.core.processing.process) vs StableDiffusionPipeline on the same components,
     scheduler, noise and settings; fp32 and bf16 on the CPU, fp16 on CUDA when present
  4. time from starting `webui.py` to its first HTTP 200

    venv/bin/python bench/bench_txt2img.py [--size 256] [--steps 4] [--workdir DIR] [--skip-server]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import psutil  # noqa: E402
import torch  # noqa: E402


class PeakRSS:
    """Peak resident memory above the level at entry, sampled every 10 ms."""

    def __enter__(self):
        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def build_checkpoint(path: Path) -> None:
    import json

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    from tests.fixtures.ldm_unet_vae import unet_to_ldm, vae_to_ldm
    from tests.fixtures.text_encoder_ldm import text_encoders_to_ldm

    cfg = REPO / "configs" / "sd1"
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**_config(cfg / "unet_config.json"))
    vae = AutoencoderKL(**_config(cfg / "vae_config.json"))
    text = CLIPTextModel(CLIPTextConfig(**json.loads((cfg / "text_encoder_config.json").read_text())))
    sd = {**unet_to_ldm(unet), **vae_to_ldm(vae), **text_encoders_to_ldm("sd1", [text])}
    sd = {k: v.detach().to(torch.float16).contiguous().clone() for k, v in sd.items()}
    save_file(sd, str(path), metadata={"format": "pt"})


def _config(path: Path) -> dict:
    import json

    return {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}


def time_read(path: Path) -> float:
    start = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(64 * 2**20):
            pass
    return time.perf_counter() - start


def run_ours(model, policy, size, steps):
    from sdui.core.processing import process
    from sdui.request import GenerationRequest

    request = GenerationRequest(
        prompt="a photo of a red fox in the snow",
        negative_prompt="blurry",
        seed=1,
        sampler_name="Euler",
        scheduler="Automatic",
        steps=steps,
        width=size,
        height=size,
    )
    process(request, model, policy=policy)  # no data_dir: nothing is saved


def run_diffusers(model, policy, size, steps):
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    from sdui.core import rng, schedules

    sigmas = schedules.get_sigmas("uniform", steps, schedules.training_sigmas(model.scheduler_config))
    pipe = StableDiffusionPipeline(
        vae=model.vae,
        unet=model.unet,
        text_encoder=model.text_encoders[0],
        tokenizer=model.tokenizers[0],
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        scheduler=EulerDiscreteScheduler.from_config(  # Euler walking A1111's sigmas ("Automatic")
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
        prompt="a photo of a red fox in the snow",
        negative_prompt="blurry",
        height=size,
        width=size,
        guidance_scale=7.0,
        latents=noise.to(policy.device, policy.dtype),
        sigmas=sigmas.tolist(),
    )


def measure_pair(ours, baseline, *args, repeats=3):
    """Best wall time and peak RSS growth of each, runs interleaved (A B A B ...) after one warm-up each so that
    drift in machine load hits both sides alike."""
    results = {ours: ([], []), baseline: ([], [])}
    ours(*args)
    baseline(*args)
    for _ in range(repeats):
        for fn in (ours, baseline):
            with PeakRSS() as rss:
                start = time.perf_counter()
                fn(*args)
                results[fn][0].append(time.perf_counter() - start)
            results[fn][1].append(rss.growth_mb)
    return [(min(results[fn][0]), max(results[fn][1])) for fn in (ours, baseline)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_to_first_200(data_dir: Path) -> float:
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "webui.py"), "--data-dir", str(data_dir), "--port", str(port), "--skip-install"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.perf_counter() - start < 120:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/internal/ping", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not answer within 120 s")
    finally:
        proc.terminate()
        proc.wait(30)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the built checkpoint here between runs")
    parser.add_argument("--skip-server", action="store_true")
    args = parser.parse_args()

    from sdui.devices import DevicePolicy
    from sdui.models.loading import load_sd_model

    work = args.workdir or Path(tempfile.mkdtemp(prefix="sdbench-"))
    ckpt = work / "models" / "Stable-diffusion" / "sd15-random.safetensors"
    if not ckpt.exists():
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        build_checkpoint(ckpt)
        print(f"built {ckpt} ({ckpt.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - t:.0f} s")

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.size}x{args.size}, {args.steps} steps, "
        f"Euler, CFG 7, batch 1"
    )
    read_s = time_read(ckpt)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtypes = [torch.float16] if device.type == "cuda" else [torch.float32, torch.bfloat16]
    for dtype in dtypes:
        policy = DevicePolicy(device=device, dtype=dtype, vae_dtype=dtype)
        start = time.perf_counter()
        model = load_sd_model(ckpt, policy)
        load_s = time.perf_counter() - start
        print(
            f"[{device.type} {str(dtype)[6:]}] load {load_s:.2f} s vs reading the file {read_s:.2f} s "
            f"(ratio {load_s / read_s:.2f})"
        )
        (ours_s, ours_mb), (base_s, base_mb) = measure_pair(
            run_ours, run_diffusers, model, policy, args.size, args.steps
        )
        print(
            f"[{device.type} {str(dtype)[6:]}] s/it ours {ours_s / args.steps:.3f} vs diffusers "
            f"{base_s / args.steps:.3f} (ratio {ours_s / base_s:.3f}); peak RSS growth ours {ours_mb:.0f} MiB vs "
            f"diffusers {base_mb:.0f} MiB"
        )
        del model
    if not args.skip_server:
        print(f"webui.py start to first HTTP 200: {time_to_first_200(work):.2f} s (checkpoint present, loads after)")


if __name__ == "__main__":
    main()
