"""A real HTTP server for the client tests: the app webui.py builds, served by uvicorn on a free local port, with
one tiny checkpoint. Clients talk to it over sockets exactly as they talk to A1111."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn

import webui
from tests.helpers import install_checkpoint, make_ctx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, ctx, port: int):
        self.ctx = ctx
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(webui.create_app(ctx), host="127.0.0.1", port=port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="live-server", daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(30)
        self.ctx.jobs.shutdown()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, tiny_sd1_checkpoint):
    data = tmp_path_factory.mktemp("live")
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    (data / "styles.csv").write_text('name,prompt,negative_prompt\nCinematic,"{prompt}, film grain",blurry\n')
    with LiveServer(make_ctx(data, "--nowebui"), free_port()) as server:
        yield server


@pytest.fixture
def make_live_server(tmp_path_factory, tiny_sd1_checkpoint):
    """A server of its own with extra flags (e.g. --api-auth)."""
    started = []

    def make(*flags: str) -> LiveServer:
        data = tmp_path_factory.mktemp("live")
        install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
        server = LiveServer(make_ctx(data, "--nowebui", *flags), free_port()).__enter__()
        started.append(server)
        return server

    yield make
    for server in started:
        server.__exit__(None, None, None)
