"""Benchmark: does the server give memory back after large jobs?

Starts `webui.py --nowebui` on a full-size SD1.5-architecture checkpoint (random weights, built once), loads the model
with one small request, then sends a series of large requests (big txt2img, hires fix, big img2img, and an init image
of 12000x12000 that is refused) and reads the server's resident memory (RSS) after each, and once more after the
server has been idle a few seconds. Printed: each reading and the ratio to the reading after the small request.

    venv/bin/python bench/bench_memory.py [--size 768] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import psutil  # noqa: E402
from PIL import Image  # noqa: E402

from bench.bench_txt2img import build_checkpoint, free_port  # noqa: E402


def post(url: str, body: dict) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=3600) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code


def png_b64(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 90, 200)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=768, help="side of the large images")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the built checkpoint here between runs")
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="sdbench-"))
    ckpt = work / "models" / "Stable-diffusion" / "sd15-random.safetensors"
    if not ckpt.exists():
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        build_checkpoint(ckpt)

    port = free_port()
    base = f"http://127.0.0.1:{port}/sdapi/v1"
    server = subprocess.Popen(
        [sys.executable, str(REPO / "webui.py"), "--nowebui", "--data-dir", str(work), "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rss = lambda: psutil.Process(server.pid).memory_info().rss / 2**20  # noqa: E731
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/internal/ping", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.2)

        small = {"prompt": "a red cube", "steps": 1, "width": 256, "height": 256, "seed": 1}
        assert post(f"{base}/txt2img", small) == 200
        baseline = rss()
        print(f"after a 256x256 job (model loaded): {baseline:.0f} MiB")
        s = args.size
        series = [
            ("txt2img", "txt2img", {**small, "width": s, "height": s}),
            ("hires fix", "txt2img", {**small, "width": s // 2, "height": s // 2, "enable_hr": True, "hr_scale": 2}),
            ("img2img", "img2img", {**small, "width": s, "height": s, "init_images": [png_b64(s * 2, s * 2)]}),
            ("refused init image", "img2img", {**small, "init_images": [png_b64(12000, 12000)]}),
            ("txt2img again", "txt2img", {**small, "width": s, "height": s}),
        ]
        for label, route, body in series:
            status = post(f"{base}/{route}", body)
            now = rss()
            print(f"after {label} ({status}): {now:.0f} MiB ({now / baseline:.2f}x)")
        time.sleep(5)
        idle = rss()
        print(f"idle 5 s later: {idle:.0f} MiB; ratio to the first reading {idle / baseline:.2f}")
    finally:
        server.terminate()
        server.wait(60)


if __name__ == "__main__":
    main()
