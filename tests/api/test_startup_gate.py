"""The start-up gate: the port answers before the app exists (a browser gets a "starting" page, other requests wait),
the app's lifespan runs when it arrives and stops with the server, and a build that fails answers 503 at once."""

from __future__ import annotations

import contextlib
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from sdui.api.startup_gate import StartupGate
from tests.fixtures.live_server import free_port


@contextlib.contextmanager
def running(gate: StartupGate):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(gate, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def app_with_lifespan(events: list) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app):
        events.append("startup")
        yield
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)
    app.get("/ping")(lambda: {"ok": True})
    return app


def test_requests_wait_for_the_app_and_browsers_get_a_starting_page():
    gate, events, answers = StartupGate(), [], []
    with running(gate) as url:
        page = httpx.get(url + "/", headers={"accept": "text/html"})
        assert page.status_code == 503 and b"Starting" in page.content and page.headers["retry-after"] == "2"
        waiting = threading.Thread(target=lambda: answers.append(httpx.get(url + "/ping", timeout=30)))
        waiting.start()
        time.sleep(0.3)
        assert answers == []  # still waiting: no app yet
        gate.open(app_with_lifespan(events))
        waiting.join(30)
        assert answers[0].status_code == 200 and answers[0].json() == {"ok": True}
        assert events == ["startup"]
        assert httpx.get(url + "/ping").json() == {"ok": True}
    assert events == ["startup", "shutdown"]


def test_a_failed_build_answers_503_at_once():
    gate = StartupGate(wait_s=60)
    with running(gate) as url:
        gate.fail()
        started = time.monotonic()
        answer = httpx.post(url + "/sdapi/v1/txt2img", json={})
        assert answer.status_code == 503 and "could not start" in answer.json()["detail"]
        assert time.monotonic() - started < 30  # did not sit out the wait


@pytest.mark.parametrize("accept", ["application/json", "*/*"])
def test_non_page_requests_get_a_503_after_the_wait(accept):
    gate = StartupGate(wait_s=0.2)
    with running(gate) as url:
        answer = httpx.get(url + "/internal/ping", headers={"accept": accept})
        assert answer.status_code == 503 and answer.json()["error"] == "Starting"
