"""The holes a hostile web page would use: DNS rebinding (foreign Host), cross-site requests (foreign Origin, forged
X-Forwarded-Host, look-alike origins), CORS permissions handed to foreign pages."""

from __future__ import annotations

import pytest

from tests.helpers import LOCAL

EVIL = "http://evil.example:7860"


@pytest.mark.parametrize("path", ["/sdapi/v1/options", "/config", "/gradio_api/info", "/internal/ping", "/"])
def test_a_rebound_host_name_is_refused_everywhere(app_client, path):
    client = app_client(base_url=EVIL)
    response = client.get(path, headers={"Origin": EVIL})
    assert response.status_code == 403 and "evil.example" in response.json()["detail"]
    assert "access-control-allow-origin" not in response.headers
    assert client.post("/sdapi/v1/options", json={"samples_format": "jpg"}).status_code == 403


@pytest.mark.parametrize(
    "host", ["127.0.0.1:7860", "localhost:7860", "[::1]:7860", "192.168.1.20:7860", "app.localhost"]
)
def test_ip_addresses_and_localhost_names_are_served(app_client, host):
    client = app_client("--nowebui")
    assert client.get("/sdapi/v1/samplers", headers={"Host": host}).status_code == 200


def test_allowed_hosts_and_server_name_add_names(app_client):
    client = app_client("--nowebui", "--allowed-hosts", "sd.lan, other.lan", "--server-name", "studio.local")
    for host in ("sd.lan", "OTHER.lan:7860", "studio.local:7860"):
        assert client.get("/sdapi/v1/samplers", headers={"Host": host}).status_code == 200, host
    assert client.get("/sdapi/v1/samplers", headers={"Host": "evil.example"}).status_code == 403


@pytest.mark.parametrize(
    "origin, extra",
    [
        ("http://evil.example", {}),
        ("http://evil.example", {"X-Forwarded-Host": "evil.example"}),  # a forged proxy header proves nothing
        ("https://127.0.0.1:7860", {}),  # another scheme is another origin
        ("http://user@127.0.0.1:7860", {}),  # no real Origin carries user info
        ("http://127.0.0.1:7861", {}),
        ("null", {}),
    ],
)
def test_cross_site_state_changes_are_refused(app_client, origin, extra):
    client = app_client()
    before = client.get("/sdapi/v1/options").json()["samples_format"]
    response = client.post("/sdapi/v1/options", json={"samples_format": "jpg"}, headers={"Origin": origin, **extra})
    assert response.status_code == 403, origin
    assert client.get("/sdapi/v1/options").json()["samples_format"] == before


def test_foreign_pages_get_no_cors_permission_and_no_preflight(app_client):
    client = app_client("--listen")
    for path in ("/config", "/gradio_api/info", "/sdapi/v1/options"):
        response = client.get(path, headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in response.headers, path
    preflight = client.options(
        "/sdapi/v1/options",
        headers={
            "Origin": "http://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-forwarded-host",
        },
    )
    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    same = client.post("/sdapi/v1/options", json={"samples_format": "jpg"}, headers={"Origin": LOCAL})
    assert same.status_code == 200
