"""--gradio-auth protects the UI's own routes (config, Gradio's API and queue); /sdapi keeps its own --api-auth,
as in A1111."""

from __future__ import annotations

from fastapi.testclient import TestClient

import webui
from tests.helpers import LOCAL, make_ctx


def test_gradio_auth_guards_the_ui_routes(data_dir):
    ctx = make_ctx(data_dir, "--gradio-auth", "alice:s3:cret")
    try:
        client = TestClient(webui.create_app(ctx), base_url=LOCAL)
        for path in ("/config", "/gradio_api/info"):
            assert client.get(path).status_code == 401, path
        assert client.post("/login", data={"username": "alice", "password": "wrong"}).status_code >= 400
        assert client.get("/config").status_code == 401
        # the password may contain colons: only the first one separates the user name
        assert client.post("/login", data={"username": "alice", "password": "s3:cret"}).status_code == 200
        assert client.get("/config").status_code == 200
    finally:
        ctx.jobs.shutdown()
