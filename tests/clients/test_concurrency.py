"""Many clients at once over HTTP: results do not depend on what runs beside them, and one client's interrupt does not
touch another's job."""

from __future__ import annotations

import base64
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from PIL import Image

pytestmark = pytest.mark.slow  # a real server

STEPS = 150  # long enough that client A's job is surely still running when client B acts


def generate(url: str, seed: int, **fields) -> tuple[np.ndarray, dict]:
    body = {"prompt": f"a house number {seed}", "seed": seed, "steps": 2, "width": 64, "height": 64, **fields}
    response = requests.post(f"{url}/sdapi/v1/txt2img", json=body, timeout=600)
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(base64.b64decode(response.json()["images"][0])))
    return np.asarray(image), response.json()


def test_twenty_parallel_requests_equal_their_sequential_results(live_server):
    seeds = list(range(500, 520))
    sequential = {seed: generate(live_server.url, seed)[0] for seed in seeds}
    with ThreadPoolExecutor(max_workers=20) as pool:
        parallel = dict(zip(seeds, pool.map(lambda s: generate(live_server.url, s)[0], seeds), strict=True))
    for seed in seeds:
        assert np.array_equal(parallel[seed], sequential[seed]), seed
    assert len({image.tobytes() for image in sequential.values()}) == 20  # distinct seeds, distinct images


def test_one_clients_interrupt_leaves_another_clients_job_untouched(live_server):
    url = live_server.url
    expected, _ = generate(url, 77, steps=STEPS)  # what client A's request gives undisturbed
    outcome = {}

    def client_a():
        outcome["a"] = generate(url, 77, steps=STEPS)

    worker = threading.Thread(target=client_a)
    worker.start()
    deadline = time.monotonic() + 60
    while requests.get(f"{url}/sdapi/v1/progress").json()["state"]["sampling_step"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # client B (another id) tries to stop and skip whatever runs: it owns no job, so nothing happens
    for route in ("interrupt", "skip"):
        assert requests.post(f"{url}/sdapi/v1/{route}", headers={"X-Client-Id": "client-b"}).status_code == 200
    b_progress = requests.get(f"{url}/sdapi/v1/progress", headers={"X-Client-Id": "client-b"}).json()
    assert b_progress["state"]["job_count"] == 0 and b_progress["current_image"] is None  # B sees none of A's job
    a_progress = requests.get(f"{url}/sdapi/v1/progress").json()  # A (its address) sees its job, still running
    assert a_progress["state"]["job_count"] == 1 and 0 < a_progress["progress"] < 1
    worker.join(300)
    image, body = outcome["a"]
    assert np.array_equal(image, expected)  # every step ran: the same pixels as undisturbed
    assert f"Steps: {STEPS}," in body["info"]
