"""Face restoration through the API: /sdapi/v1/face-restorers lists the restorers whose weights are in models/GFPGAN,
/sdapi/v1/extra-single-image runs GFPGAN at gfpgan_visibility, and missing weights are a 422 naming them."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from tests.fixtures.face_restoration import write_face_helpers, write_gfpgan, write_restoreformer
from tests.helpers import decode_png


def _b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    """The guard: facexlib's only way to the network fails the test if it is ever reached."""
    import facexlib.utils.misc

    def refuse(url, *args, **kwargs):
        raise AssertionError(f"facexlib tried to download {url}")

    monkeypatch.setattr(facexlib.utils.misc, "download_url_to_file", refuse)


def _extras(client, **fields):
    source = Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    return client.post("/sdapi/v1/extra-single-image", json={"image": _b64(source), **fields})


def test_listed_by_their_files_and_missing_detection_weights_named(make_client, data_dir):
    folder = data_dir / "models" / "GFPGAN"
    write_restoreformer(folder / "RestoreFormer.pth")
    (folder / "GFPGANv1.4.pth").write_bytes(b"not read before the detection weights are there")
    _, client = make_client(data_dir)
    assert client.get("/sdapi/v1/face-restorers").json() == [
        {"name": "GFPGAN", "cmd_dir": str(folder)},
        {"name": "RestoreFormer", "cmd_dir": str(folder)},
    ]
    response = _extras(client, gfpgan_visibility=0.5)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "detection_Resnet50_Final.pth, parsing_parsenet.pth" in detail and str(folder) in detail, detail
    codeformer = _extras(client, codeformer_visibility=0.5)
    assert codeformer.status_code == 422 and "spandrel_extra_arches" in codeformer.json()["detail"]


@pytest.mark.slow
def test_extras_with_gfpgan_visibility(make_client, data_dir, monkeypatch):
    folder = write_face_helpers(data_dir / "models" / "GFPGAN")
    write_gfpgan(folder / "GFPGANv1.4.pth")
    _, client = make_client(data_dir)
    from sdui.upscalers.face_restoration import FACE_RESTORERS

    monkeypatch.setattr(FACE_RESTORERS, "max_faces", 1)  # random RetinaFace weights find faces everywhere
    first, again = _extras(client, gfpgan_visibility=0.5), _extras(client, gfpgan_visibility=0.5)
    assert first.status_code == 200, first.text
    image = decode_png(first.json()["image"])
    assert image.size == (64, 64) and image.info["postprocessing"] == "GFPGAN visibility: 0.5"
    assert first.json()["image"] == again.json()["image"]  # GFPGAN's noise is seeded: the same answer twice
    unchanged = _extras(client, gfpgan_visibility=0)
    source = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(decode_png(unchanged.json()["image"]).convert("RGB")), source)
