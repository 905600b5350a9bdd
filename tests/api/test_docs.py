"""/docs and /redoc work offline: Swagger UI's and ReDoc's files are served by the app (never a CDN), only the
listed ones, behind the API password like the docs pages; in a real browser with every other host blocked the API's
routes are listed."""

from __future__ import annotations

import pytest


def test_docs_page_uses_local_assets(make_client, data_dir):
    _, client = make_client(data_dir)
    page = client.get("/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in page and "cdn.jsdelivr" not in page
    bundle = client.get("/docs-assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200
    for name in ("index.html", "..%2F..%2F__init__.py", "swagger-ui-bundle.js.map"):
        assert client.get(f"/docs-assets/{name}").status_code == 404, name
    redoc = client.get("/redoc").text
    assert (
        "/docs-assets/redoc.standalone.js" in redoc and "cdn.jsdelivr" not in redoc and "fonts.googleapis" not in redoc
    )
    assert client.get("/docs-assets/redoc.standalone.js").status_code == 200


def test_docs_assets_are_behind_the_api_password(make_client, data_dir):
    _, client = make_client(data_dir, "--api-auth", "user:pass")
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 401
    assert client.get("/docs-assets/swagger-ui-bundle.js", auth=("user", "pass")).status_code == 200


@pytest.mark.slow
@pytest.mark.browser
def test_docs_render_offline_in_the_browser(page, tmp_path):
    from tests.fixtures.live_server import LiveServer, free_port
    from tests.helpers import make_ctx

    with LiveServer(make_ctx(tmp_path / "data", "--nowebui"), free_port()) as server:
        page.goto(server.url + "/docs")
        page.get_by_text("/sdapi/v1/txt2img").first.wait_for()
        page.goto(server.url + "/redoc")
        page.get_by_text("/sdapi/v1/txt2img").first.wait_for()
    assert page.outside_requests == [] and page.console_errors == []
