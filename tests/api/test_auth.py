"""Passwords: one flag protects the whole app (page, Gradio routes, API, docs); with both flags each protects its
part; repeated wrong passwords are slowed down."""

from __future__ import annotations

UI_ROUTES = ("/config", "/gradio_api/info")
API_ROUTES = ("/sdapi/v1/options", "/sdapi/v1/sd-models", "/docs", "/redoc", "/openapi.json")


def test_api_auth_alone_protects_the_page_and_gradios_routes_too(app_client):
    client = app_client("--api-auth", "bob:pw")
    for path in API_ROUTES:
        assert client.get(path).status_code == 401, path
        assert client.get(path, auth=("bob", "pw")).status_code == 200, path
    for path in UI_ROUTES:
        assert client.get(path).status_code == 401, path
    assert client.post("/gradio_api/queue/join", json={"data": [], "fn_index": 0, "session_hash": "x"}).status_code in (
        401,
        403,
    )
    assert client.post("/login", data={"username": "bob", "password": "pw"}).status_code == 200
    assert client.get("/config").status_code == 200


def test_gradio_auth_alone_protects_the_api_too(app_client):
    client = app_client("--gradio-auth", "alice:s3:cret")
    for path in API_ROUTES:
        assert client.get(path).status_code == 401, path
        assert client.get(path, auth=("alice", "s3:cret")).status_code == 200, path
    assert client.get("/internal/ping").status_code == 200  # health checks stay open, as in A1111


def test_with_both_flags_each_protects_its_part(app_client):
    client = app_client("--api-auth", "bob:pw", "--gradio-auth", "alice:ui")
    assert client.get("/sdapi/v1/options", auth=("alice", "ui")).status_code == 401
    assert client.get("/sdapi/v1/options", auth=("bob", "pw")).status_code == 200
    assert client.get("/openapi.json", auth=("bob", "pw")).status_code == 200
    assert client.post("/login", data={"username": "bob", "password": "pw"}).status_code >= 400
    assert client.post("/login", data={"username": "alice", "password": "ui"}).status_code == 200


def test_repeated_wrong_passwords_are_slowed_down(app_client):
    client = app_client("--nowebui", "--api-auth", "bob:pw")
    for _ in range(5):
        assert client.get("/sdapi/v1/options", auth=("bob", "guess")).status_code == 401
    blocked = client.get("/sdapi/v1/options", auth=("bob", "pw"))
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert "Too many wrong passwords" in blocked.json()["detail"]
    assert client.get("/internal/ping").status_code == 200  # requests without credentials still pass
