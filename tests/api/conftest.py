"""Fixtures of the API tests: apps built as webui.py builds them, served through FastAPI's TestClient."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import webui
from tests.helpers import LOCAL, install_checkpoint, make_ctx


@pytest.fixture
def make_client():
    made = []

    def make(data_dir, *flags):
        ctx = make_ctx(data_dir, "--nowebui", *flags)
        client = TestClient(webui.create_app(ctx), base_url=LOCAL)
        made.append(ctx)
        return ctx, client

    yield make
    for ctx in made:
        ctx.jobs.shutdown()


@pytest.fixture
def app_client(tmp_path):
    """A client of a whole app (UI and API) built from these flags; `base_url` is where the client says it is."""
    made = []

    def make(*flags, base_url=LOCAL):
        ctx = make_ctx(tmp_path / f"data{len(made)}", *flags)
        made.append(ctx)
        return TestClient(webui.create_app(ctx), base_url=base_url)

    yield make
    for ctx in made:
        ctx.jobs.shutdown()


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_sd1_checkpoint):
    """One app with one checkpoint for the generation tests (the model loads once)."""
    data = tmp_path_factory.mktemp("data")
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    ctx = make_ctx(data, "--nowebui")
    yield ctx, TestClient(webui.create_app(ctx), base_url=LOCAL)
    ctx.jobs.shutdown()
