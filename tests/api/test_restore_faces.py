"""restore_faces in txt2img (A1111's field and face_restoration setting): the installed restorer runs on every image
and the infotext says which; without one the image is made unrestored (as A1111) and nothing breaks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.fixtures.face_restoration import write_face_helpers, write_restoreformer
from tests.helpers import decode_png, install_checkpoint

REQUEST = {"prompt": "a face", "steps": 2, "width": 64, "height": 64, "seed": 9, "save_images": False}


def test_without_a_restorer_the_image_is_made_unrestored(make_client, data_dir, tiny_sd1_checkpoint):
    install_checkpoint(tiny_sd1_checkpoint, data_dir, "tiny.safetensors")
    _, client = make_client(data_dir)
    plain = client.post("/sdapi/v1/txt2img", json=REQUEST).json()
    asked = client.post("/sdapi/v1/txt2img", json={**REQUEST, "restore_faces": True})
    assert asked.status_code == 200
    assert np.array_equal(np.asarray(decode_png(asked.json()["images"][0])), np.asarray(decode_png(plain["images"][0])))
    info = json.loads(asked.json()["info"])
    assert "Face restoration" not in info["infotexts"][0]
    assert any("no face restorer is installed" in note for note in info["notes"])


@pytest.mark.slow
def test_the_installed_restorer_runs_and_is_named(make_client, data_dir, tiny_sd1_checkpoint, monkeypatch):
    import facexlib.utils.misc

    from sdui.upscalers.face_restoration import FACE_RESTORERS

    monkeypatch.setattr(facexlib.utils.misc, "download_url_to_file", lambda *a, **k: pytest.fail("download"))
    monkeypatch.setattr(FACE_RESTORERS, "max_faces", 1)  # random detection weights see faces everywhere
    install_checkpoint(tiny_sd1_checkpoint, data_dir, "tiny.safetensors")
    folder = write_face_helpers(data_dir / "models" / "GFPGAN")
    write_restoreformer(folder / "RestoreFormer.pth")
    _, client = make_client(data_dir)
    # face_restoration_model is CodeFormer (A1111's default), not installed: the installed one is used
    answer = client.post("/sdapi/v1/txt2img", json={**REQUEST, "restore_faces": True})
    assert answer.status_code == 200, answer.text
    assert "Face restoration: RestoreFormer" in answer.json()["info"]
