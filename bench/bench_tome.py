"""Benchmark: token merging (A1111's "Token merging ratio") on a full-size SD1.5 UNet, against the same UNet without.

One UNet call as a sampling step makes it (cond and uncond batched: batch 2) at the given size, random weights
(configs/sd1/unet_config.json), in this one process: ratio 0 and each ratio interleaved, `--repeats` times after
a warm-up call each; prints s/it (the fastest round, and the median), the speed-up against ratio 0, and how far
the prediction moved (mean |difference| over mean |prediction|; random weights, so only a rough measure of what
it does to a real model).

    venv/bin/python bench/bench_tome.py [--size 512] [--ratios 0.5] [--repeats 3] [--dtype float32|bfloat16]
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


def full_size_unet(dtype):
    from diffusers import UNet2DConditionModel

    config = json.loads((REPO / "configs" / "sd1" / "unet_config.json").read_text())
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**{k: v for k, v in config.items() if not k.startswith("_")}).eval()
    return unet if dtype == torch.float32 else unet.to(dtype)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.5])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    from sdui.core.token_merging import merged_tokens

    torch.set_grad_enabled(False)
    dtype = getattr(torch, args.dtype)
    unet = full_size_unet(dtype)
    g = torch.Generator().manual_seed(1)
    side = args.size // 8
    sample = torch.randn(2, 4, side, side, generator=g).to(dtype)
    context = torch.randn(2, 77, 768, generator=g).to(dtype)
    t = torch.tensor([500.0, 500.0])

    def step(ratio: float):
        with merged_tokens(unet, ratio):
            start = time.perf_counter()
            out = unet(sample, t, encoder_hidden_states=context).sample
            return time.perf_counter() - start, out.float()

    ratios = [0.0, *args.ratios]
    print(f"SD1.5 UNet, {args.size}x{args.size}, batch 2, {args.dtype}, {torch.get_num_threads()} threads")
    outputs = {r: step(r)[1] for r in ratios}  # warm-up, and the predictions compared below
    times: dict[float, list[float]] = {r: [] for r in ratios}
    for i in range(args.repeats):
        for r in ratios:
            seconds, _ = step(r)
            times[r].append(seconds)
            print(f"  round {i + 1}, ratio {r}: {seconds:.2f} s")
    # the fastest round is the one least disturbed by other work on a shared machine; the median is shown too
    base, base_median = min(times[0.0]), statistics.median(times[0.0])
    plain = outputs[0.0]
    print(f"ratio 0: {base:.2f} s/it (median {base_median:.2f})")
    for r in args.ratios:
        s, median = min(times[r]), statistics.median(times[r])
        moved = ((outputs[r] - plain).abs().mean() / plain.abs().mean()).item()
        print(
            f"ratio {r}: {s:.2f} s/it (median {median:.2f}), {base / s:.2f}x the speed of ratio 0 "
            f"(medians: {base_median / median:.2f}x); prediction moved {moved:.3f}"
        )


if __name__ == "__main__":
    main()
