"""A real HTTP server for the client tests: the app webui.py builds, served by uvicorn on a free local port, with
one tiny checkpoint. Clients talk to it over sockets exactly as they talk to A1111."""

from __future__ import annotations

import pytest

from tests.fixtures.live_server import LiveServer, free_port
from tests.helpers import install_checkpoint, make_ctx


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
