"""End to end: start `python webui.py` as a user would, generate through the HTTP API, find the saved file."""

from __future__ import annotations

import base64
import datetime
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from PIL import Image

from tests.helpers import REPO_DIR, install_checkpoint

pytestmark = pytest.mark.slow  # starts real processes

START_TIMEOUT = 120  # seconds; generous: the test machine's CPUs are shared


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, timeout: float = 120):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture
def server(tmp_path, tiny_sd1_checkpoint):
    data = tmp_path / "data"
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    port = free_port()
    log_path = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "COMMANDLINE_ARGS"}
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [
                sys.executable,
                "webui.py",
                "--data-dir",
                str(data),
                "--port",
                str(port),
                "--skip-install",
                "--skip-torch-cuda-test",
            ],
            cwd=REPO_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    ready_after = None
    try:
        while time.perf_counter() - started < START_TIMEOUT:
            if proc.poll() is not None:
                pytest.fail(f"webui.py exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
            try:
                status, _ = http("GET", base + "/internal/ping", timeout=2)
                if status == 200:
                    ready_after = time.perf_counter() - started
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        else:
            pytest.fail(f"no answer on {base} within {START_TIMEOUT} s:\n{log_path.read_text(errors='replace')}")
        print(f"time to first HTTP 200 on /internal/ping: {ready_after:.1f} s")
        yield {"base": base, "data": data, "proc": proc, "log": log_path, "port": port, "ready_after": ready_after}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def test_server_starts_generates_saves_and_stops(server):
    base, data = server["base"], server["data"]
    seed = 4242
    body = {
        "prompt": "a lighthouse",
        "negative_prompt": "fog",
        "seed": seed,
        "steps": 2,
        "width": 64,
        "height": 64,
        "sampler_name": "Euler a",
        "cfg_scale": 6,
        "save_images": True,
    }
    status, raw = http("POST", base + "/sdapi/v1/txt2img", body)
    assert status == 200, raw[:2000]
    answer = json.loads(raw)
    image = Image.open(io.BytesIO(base64.b64decode(answer["images"][0])))
    assert image.size == (64, 64)

    today = datetime.date.today().isoformat()
    saved = data / "outputs" / "txt2img-images" / today / f"00000-{seed}.png"
    assert saved.is_file(), sorted(p.name for p in (data / "outputs").rglob("*"))
    with Image.open(saved) as on_disk:
        text = on_disk.info["parameters"]
    assert text.startswith("a lighthouse\nNegative prompt: fog\nSteps: 2, Sampler: Euler a")
    assert f"Seed: {seed}" in text and "Size: 64x64" in text
    assert text == json.loads(answer["info"])["infotexts"][0]

    # the UI is mounted at / next to the API (helper module present in this tree)
    status, page = http("GET", base + "/")
    assert status == 200 and b"<html" in page.lower()

    log_text = server["log"].read_text(errors="replace")
    assert f"Running on local URL:  http://127.0.0.1:{server['port']}" in log_text
    assert "Checkpoints found: 1 (tiny.safetensors)" in log_text
    # the precision the default flags chose here (on a CPU: bfloat16 where it has native bf16), and why
    assert re.search(r"Device: device=\w+ dtype=\w+ vae=\w+ attention=\w+ \((bfloat16|float16|float32): ", log_text)

    proc = server["proc"]
    # Ctrl+C: a graceful stop, exit status 0, no traceback
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    log_text = server["log"].read_text(errors="replace")
    assert "Application shutdown complete" in log_text and "Traceback" not in log_text
