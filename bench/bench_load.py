"""Benchmark: checkpoint load time against reading the file, and switching to a model in the RAM cache.

On a full-size SD1.5-architecture checkpoint (random weights, fp16 safetensors in the original layout, ~2 GiB):
  1. raw read: every byte of the file read into memory (the floor any loader pays)
  2. load_sd_model (detection, conversion, dtype cast), alone and followed by one read of every parameter (so
     the lazy memory-mapped float16 path pays for its page faults too), for each CPU precision: float16 (the
     file's own: no cast), bfloat16 (same size), float32 (twice the size: every byte is written once more)
  3. warm (file in the page cache) and cold (the file's pages dropped with posix_fadvise before each run)
  4. ModelStore with a RAM cache of 2: switching back to a model already loaded
Each measurement is repeated and the best run kept; ratios are to the raw read measured in the same process.

    venv/bin/python bench/bench_load.py [--workdir DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from bench.bench_txt2img import build_checkpoint, time_read  # noqa: E402


def drop_from_page_cache(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def touch_every_parameter(model) -> None:
    """Read each weight once (what the first generation step does), so lazily mapped pages are paid for here."""
    modules = [model.unet, model.vae, *model.text_encoders]
    for module in modules:
        for p in module.parameters():
            p.detach().sum()


def best(fn, repeat: int, before=None) -> float:
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from sdui.devices import DevicePolicy
    from sdui.models.loading import load_sd_model
    from sdui.models.store import ModelStore

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_load_"))
    folder = workdir / "models" / "Stable-diffusion"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sd15-random.safetensors"
    if not path.exists():
        print("building a full-size SD1.5 checkpoint (random weights)...", flush=True)
        build_checkpoint(path)
    size_gib = path.stat().st_size / 2**30
    print(f"checkpoint: {path} ({size_gib:.2f} GiB), torch threads {torch.get_num_threads()}")

    def policy(dtype):
        return DevicePolicy(device=torch.device("cpu"), dtype=dtype, vae_dtype=dtype)

    def load_and_touch(dtype):
        model = load_sd_model(path, policy(dtype))
        touch_every_parameter(model)

    for label, before in (("warm", None), ("cold", lambda: drop_from_page_cache(path))):
        read = best(lambda: time_read(path), args.repeat, before)
        print(f"\n[{label}] raw read: {read:.3f} s ({size_gib / read:.2f} GiB/s)")
        for name, dtype in (("float16", torch.float16), ("bfloat16", torch.bfloat16), ("float32", torch.float32)):
            loaded = best(lambda dtype=dtype: load_sd_model(path, policy(dtype)), args.repeat, before)
            touched = best(lambda dtype=dtype: load_and_touch(dtype), args.repeat, before)
            print(
                f"[{label}] {name:8s}: load {loaded:.3f} s = {loaded / read:.2f}x raw read; "
                f"load + first read of every weight {touched:.3f} s = {touched / read:.2f}x"
            )

    # 4. the RAM cache: a second checkpoint (a copy), then back to the first
    second = folder / "sd15-random-copy.safetensors"
    if not second.exists():
        shutil.copyfile(path, second)
    folders = SimpleNamespace(ckpt_dirs=(folder,), ckpt_file=folder / "none.safetensors")
    store = ModelStore(folders, policy(torch.float32), load_sd_model, cache_size=2, no_hashing=True)
    first_title, second_title = (c.title for c in store.refresh()[:2])
    start = time.perf_counter()
    store.get(first_title)
    first_load = time.perf_counter() - start
    store.get(second_title)
    switch = best(lambda: (store.get(first_title), store.get(second_title)), args.repeat) / 2
    print(
        f"\nfirst load through the store: {first_load:.3f} s; switch to a cached model: {switch * 1000:.1f} ms "
        f"= {switch / first_load:.4f}x a load"
    )


if __name__ == "__main__":
    main()
