"""Benchmark: what not encoding a prompt twice saves (batch count 8 with one prompt vs eight separate jobs).

Everything in this one process, on a full-size SD1.5 architecture with random weights (bench_previews builds it),
small images and few steps so the prompt encoding is a visible share of a job, as it is for quick jobs:
  1. one job with batch count 8 (n_iter=8), one prompt: each distinct prompt is encoded once per job
  2. eight jobs of batch count 1, with the encodings kept across jobs (persistent_cond_cache, the default)
  3. eight jobs of batch count 1 with that setting off (A1111's behaviour without its cache): every job encodes
The text encoder's forward calls are counted and timed, and their time is compared with (3): the UNet's share of
the runs' wall time (printed too) swings with the machine's load far more than the encoding saved. Runs
interleaved, best of `--repeats`.

    venv/bin/python bench/bench_conditioning.py [--size 64] [--steps 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from bench.bench_previews import full_size_model  # noqa: E402

PROMPT = "a photo of a red fox in the snow, detailed fur, morning light"
NEGATIVE = "blurry, lowres"


class EncoderMeter:
    """Counts and times the text encoder's forward calls (a wrapper on the instance, not a hook: hooks switch the
    kept-encodings store off)."""

    def __init__(self, module):
        self.calls, self.seconds = 0, 0.0
        original = module.forward

        def measured(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.calls += 1
                self.seconds += time.perf_counter() - start

        module.forward = measured

    def reset(self) -> None:
        self.calls, self.seconds = 0, 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from sdui.core.processing import process
    from sdui.devices import DevicePolicy
    from sdui.request import GenerationRequest
    from sdui.settings.snapshot import Settings

    policy = DevicePolicy(device=torch.device("cpu"), dtype=torch.float32, vae_dtype=torch.float32)
    model = full_size_model(policy)
    meter = EncoderMeter(model.text_encoders[0])
    base = dict(prompt=PROMPT, negative_prompt=NEGATIVE, seed=1, sampler_name="Euler", steps=args.steps)
    base.update(width=args.size, height=args.size)

    def one_job_of_eight():
        process(GenerationRequest(**base, n_iter=8), model, policy=policy, settings=Settings.defaults())

    def eight_jobs(kept: bool):
        settings = Settings.defaults(persistent_cond_cache=kept)
        for i in range(8):
            process(GenerationRequest(**{**base, "seed": 1 + i}), model, policy=policy, settings=settings)

    cases = {
        "one job, batch count 8": one_job_of_eight,
        "eight jobs, encodings kept across jobs": lambda: eight_jobs(True),
        "eight jobs, persistent_cond_cache off": lambda: eight_jobs(False),
    }
    one_job_of_eight()  # warm-up
    best = {name: float("inf") for name in cases}
    encoding = {name: float("inf") for name in cases}
    encodes = {}
    for _ in range(args.repeats):
        for name, run in cases.items():
            model.applied.pop("kept_encodings", None)  # each case starts without kept encodings
            meter.reset()
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
            encoding[name] = min(encoding[name], meter.seconds)
            encodes[name] = meter.calls
    baseline = encoding["eight jobs, persistent_cond_cache off"]
    print(f"full-size SD1.5 (random weights), CPU fp32, {args.size}x{args.size}, {args.steps} steps, 8 images")
    for name in cases:
        print(
            f"{name:40s}: {encodes[name]:2d} text encoder calls taking {encoding[name]:6.3f} s "
            f"({encoding[name] / baseline:.2f}x the jobs without the cache); whole run {best[name]:7.2f} s"
        )


if __name__ == "__main__":
    main()
