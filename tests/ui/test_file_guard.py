"""Gradio events may name only files Gradio received or files inside the allowed folders (an attacker's page must
not read PNG text, or images, from anywhere on the disk through PNG Info or img2img)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from PIL import Image, PngImagePlugin

import webui
from sdui.ui.file_guard import GradioFileGuard, file_paths
from tests.helpers import LOCAL, make_ctx


def secret_png(path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "SECRET\nSteps: 1, Sampler: Euler, Seed: 1")
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    return path


@pytest.fixture
def ui_client(tmp_path):
    ctx = make_ctx(tmp_path / "data")
    with TestClient(webui.create_app(ctx), base_url=LOCAL) as client:
        yield ctx, client
    ctx.jobs.shutdown()


def png_info_event(client) -> int:
    config = client.get("/config").json()
    ids = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
    return next(d["id"] for d in config["dependencies"] if any(ids.get(t[0]) == "pnginfo_image" for t in d["targets"]))


def join(client, fn_index: int, path: str, url: str | None = None):
    data = [{"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": "x.png", "url": url}]
    return client.post(
        "/gradio_api/queue/join",
        json={"data": data, "fn_index": fn_index, "session_hash": "s1", "event_data": None, "trigger_id": None},
    )


def test_a_path_outside_the_allowed_folders_is_refused(ui_client, tmp_path):
    _, client = ui_client
    outside = secret_png(tmp_path / "elsewhere.png")
    response = join(client, png_info_event(client), str(outside))
    assert response.status_code == 403 and "File refused" in response.json()["detail"]
    assert (
        client.post(
            "/gradio_api/queue/join",
            json={
                "data": [{"path": "http://example.com/a.png", "meta": {"_type": "gradio.FileData"}}],
                "fn_index": 0,
                "session_hash": "s",
            },
        ).status_code
        == 403
    )


def test_an_uploaded_file_and_the_outputs_folder_are_allowed(ui_client, tmp_path):
    ctx, client = ui_client
    source = secret_png(tmp_path / "upload.png")
    with open(source, "rb") as f:
        uploaded = client.post("/gradio_api/upload", files={"files": ("upload.png", f, "image/png")}).json()[0]
    fn = png_info_event(client)
    assert join(client, fn, uploaded).status_code == 200
    # what the page sends for an upload: the saved path, and the URL it shows the file from (which Gradio ignores)
    assert join(client, fn, uploaded, f"{LOCAL}/gradio_api/file={uploaded}").status_code == 200
    inside = ctx.paths.outputs_dir / "txt2img-images" / "a.png"
    inside.parent.mkdir(parents=True)
    secret_png(inside)
    assert join(client, fn, str(inside)).status_code == 200


def test_symbolic_links_are_followed_before_the_check(tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    target = secret_png(tmp_path / "outside.png")
    (allowed / "link.png").symlink_to(target)
    guard = GradioFileGuard(app=None, allowed_dirs=[allowed])
    assert guard.allowed_path(str(allowed / "inside.png"))
    assert not guard.allowed_path(str(allowed / "link.png"))
    assert not guard.allowed_path(str(allowed / ".." / "outside.png"))


def test_every_file_reference_in_an_event_is_found():
    event = {
        "data": [
            None,
            {"image": {"path": "/a", "orig_name": "a"}, "layers": [{"path": "/b", "meta": {}}]},
            [{"url": "http://x/y.png", "path": None}],
            {"path": "/c", "url": "http://127.0.0.1/gradio_api/file=/c", "orig_name": "c"},
        ]
    }
    # a URL is what Gradio fetches only where no path is given
    assert sorted(file_paths(event)) == ["/a", "/b", "/c", "http://x/y.png"]
