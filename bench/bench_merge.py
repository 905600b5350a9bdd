"""Benchmark: peak memory of a checkpoint merge, against the memory of one model.

Writes three random "checkpoints" of --mb megabytes each (float32 tensors under SD key names), then in a fresh
child process per measurement samples the process's anonymous resident memory (RssAnon: what the process itself
allocated, not the file pages of memory-mapped inputs, which the kernel can drop at will) every 5 ms and prints
the peak above the memory after imports:
  1. baseline: one model held in memory (every tensor of A copied out of its memory-mapped file)
  2. inputs read into memory: A and B read whole (not memory-mapped), then (1 - M) * A + M * B into a new dict
  3. ours, Weighted sum: sdui.models.merge.merge_checkpoints (tensor-at-a-time reading), written to disk
  4. ours, Add difference (A, B and C)
  5. ours, Weighted sum of .ckpt files (torch.load(weights_only=True, mmap=True))
and each one's ratio to the baseline (ours should stay near 1: the result is the one model in memory).

    venv/bin/python bench/bench_merge.py [--mb 512] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TENSOR_MB = 8


def rss_anon_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no RssAnon in /proc/self/status (Linux only)")


def write_models(folder: Path, mb: int) -> None:
    import torch
    from safetensors.torch import save_file

    count = max(1, mb // TENSOR_MB)
    for name, seed in (("a", 1), ("b", 2), ("c", 3)):
        g = torch.Generator().manual_seed(seed)
        tensors = {
            f"model.diffusion_model.block{i}.weight": torch.randn(TENSOR_MB * 2**18, generator=g) for i in range(count)
        }
        save_file(tensors, str(folder / f"{name}.safetensors"), metadata={"format": "pt"})
        if name != "c":
            torch.save({"state_dict": tensors}, str(folder / f"{name}.ckpt"))


def child(kind: str, folder: Path) -> None:
    """Runs in its own process: do `kind`, print {"peak_mb": ...} (peak RssAnon above the start)."""
    import torch
    from safetensors.torch import load, load_file

    from sdui.models.discovery import list_checkpoints
    from sdui.models.merge import ADD_DIFFERENCE, WEIGHTED_SUM, MergeRequest, merge_checkpoints

    start, peak, done = rss_anon_mb(), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_anon_mb())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    if kind == "baseline":
        a = {k: v.clone() for k, v in load_file(str(folder / "a.safetensors")).items()}
        del a
    elif kind == "read-whole":
        a, b = (load((folder / f"{n}.safetensors").read_bytes()) for n in "ab")
        merged = {k: 0.7 * a[k] + 0.3 * b[k] for k in a}
        del a, b
        torch.save(merged, str(folder / "out-whole.ckpt"))
    else:
        method = ADD_DIFFERENCE if kind == "ours-ad" else WEIGHTED_SUM
        ext = "ckpt" if kind == "ours-ckpt" else "safetensors"
        request = MergeRequest(
            f"a.{ext}", f"b.{ext}", "c.safetensors", method=method, custom_name=kind, save_metadata=False
        )
        merge_checkpoints(request, list_checkpoints([folder]), {}, folder / "out")
    seconds = time.perf_counter() - t0
    peak[0] = max(peak[0], rss_anon_mb())
    done.set()
    sampler.join()
    print(json.dumps({"peak_mb": peak[0] - start, "seconds": seconds}))


def measure(kind: str, folder: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--workdir", str(folder)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=512, help="size of each model (float32)")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.workdir)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        write_models(folder, args.mb)
        kinds = ("baseline", "read-whole", "ours-ws", "ours-ad", "ours-ckpt")
        results = {kind: measure(kind, folder) for kind in kinds}
    base = results["baseline"]["peak_mb"]
    print(f"model size {args.mb} MB; peak anonymous memory above the start of each process:")
    for kind, r in results.items():
        print(f"  {kind:11s} {r['peak_mb']:8.0f} MB  {r['peak_mb'] / base:5.2f} x baseline  ({r['seconds']:.1f} s)")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
