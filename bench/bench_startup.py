"""Benchmark: how soon `webui.py` answers after it starts, against the bare import of its libraries, in one run.

  1. baseline: a fresh `python -c "import torch, gradio, diffusers"` (what any server built on them must pay once)
  2. ours, with a tiny checkpoint in the data folder (the model load is measured by bench_txt2img.py):
     - first HTTP answer on "/" (the start-up gate's "starting" page, or the page itself)
     - first 200 from /internal/ping (the app built; requests before it wait)
     - first image from POST /sdapi/v1/txt2img (64x64, 2 steps)
Runs alternate (baseline, ours, baseline, ...) and the medians are printed with their ratios.

    venv/bin/python bench/bench_startup.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bare_import() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, gradio, diffusers"], check=True, cwd=REPO)
    return time.perf_counter() - start


def _request(url: str, body: dict | None = None, accept: str = "*/*", timeout: float = 2.0) -> int:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Accept": accept, "Content-Type": "application/json"}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def ours(data_dir: Path) -> tuple[float, float, float]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "webui.py", "--data-dir", str(data_dir), "--port", str(port), "--skip-install"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        first_answer = first_200 = None
        while first_200 is None and time.perf_counter() - start < 300:
            try:
                if first_answer is None:
                    _request(base + "/", accept="text/html")
                    first_answer = time.perf_counter() - start
                if _request(base + "/internal/ping", timeout=300) == 200:
                    first_200 = time.perf_counter() - start
            except OSError:
                time.sleep(0.02)
        body = {"prompt": "a cat", "steps": 2, "width": 64, "height": 64, "save_images": False}
        status = _request(base + "/sdapi/v1/txt2img", body, timeout=300)
        assert status == 200, status
        return first_answer, first_200, time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(60)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from tests.fixtures.checkpoints import build_tiny_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        build_tiny_checkpoint(data / "models" / "Stable-diffusion" / "tiny.safetensors", arch="sd1")
        bare_import()  # warm the page cache for both
        baseline, answers, pings, images = [], [], [], []
        for _ in range(args.runs):
            baseline.append(bare_import())
            a, p, i = ours(data)
            answers.append(a)
            pings.append(p)
            images.append(i)
    b = statistics.median(baseline)
    print(f"bare import of torch, gradio, diffusers: {b:.2f} s (median of {args.runs})")
    for name, values in (("first HTTP answer", answers), ("first 200 (app built)", pings), ("first image", images)):
        m = statistics.median(values)
        print(f"{name:24s} {m:6.2f} s   ratio to the bare import {m / b:.2f}")


if __name__ == "__main__":
    main()
