"""Face restoration: facexlib's alignment and paste-back around our restorer call, blended by visibility; missing
weights refused with the file and folder named, facexlib's download never reached."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sdui.upscalers import face_restoration as fr
from tests.fixtures.face_restoration import write_face_helpers, write_restoreformer


@pytest.fixture(scope="module")
def gfpgan_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "GFPGAN"
    return write_face_helpers(folder)


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    """The guard: facexlib's only way to the network fails the test if it is ever reached."""
    import facexlib.utils.misc

    def refuse(url, *args, **kwargs):
        raise AssertionError(f"facexlib tried to download {url}")

    monkeypatch.setattr(facexlib.utils.misc, "download_url_to_file", refuse)


def _image(size=256, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def _known_face(helper):
    """A face whose 5 points are facexlib's template shrunk 4x at (64, 64): it covers about (64..192)."""
    return helper.face_template * 0.25 + 64


def _white(crop):
    return np.full_like(crop, 255)


def test_paste_back_at_a_known_face_blended_by_visibility(gfpgan_dir):
    helper = fr.make_helper(gfpgan_dir, torch.device("cpu"))
    helper.use_parse = False  # facexlib's rectangular mask: random ParseNet weights would give an arbitrary one
    image = _image()
    restored = fr.restore_at(helper, image, [_known_face(helper)], _white)
    before, after = np.asarray(image).astype(int), np.asarray(restored).astype(int)
    assert restored.size == image.size
    assert (after[120:136, 120:136] >= 254).all()  # the face's centre is the output (facexlib truncates to uint8)
    for region in (np.s_[:40, :], np.s_[216:, :], np.s_[:, :40], np.s_[:, 216:]):  # far from the face: untouched
        assert (after[region] == before[region]).all()

    assert fr.blend(image, restored, 0) is image  # visibility 0: the input exactly
    assert fr.blend(image, restored, 1) is restored
    half = np.asarray(fr.blend(image, restored, 0.5)).astype(int)
    assert np.abs(half[120:136, 120:136] - (before[120:136, 120:136] + 255) / 2).max() <= 1.5


def test_the_parsed_mask_stays_inside_the_face(gfpgan_dir):
    helper = fr.make_helper(gfpgan_dir, torch.device("cpu"))  # as it runs: ParseNet's mask (random here)
    image = _image()
    before = np.asarray(image).astype(int)
    after = np.asarray(fr.restore_at(helper, image, [_known_face(helper)], _white)).astype(int)
    for region in (np.s_[:40, :], np.s_[216:, :], np.s_[:, :40], np.s_[:, 216:]):
        assert (after[region] == before[region]).all()


def test_no_face_leaves_the_image_unchanged(gfpgan_dir):
    helper = fr.make_helper(gfpgan_dir, torch.device("cpu"))
    image = _image()
    assert np.array_equal(np.asarray(fr.restore_at(helper, image, [], _white)), np.asarray(image))


def test_missing_detection_weights_name_the_file_and_folder(tmp_path):
    folder = tmp_path / "models" / "GFPGAN"
    write_restoreformer(folder / "RestoreFormer.pth")
    restorers = fr.FaceRestorers()
    restorers.configure(folder, [folder], lambda: torch.device("cpu"))
    assert [r.name for r in restorers.available()] == ["RestoreFormer"]
    for call in (lambda: restorers.require("RestoreFormer"), lambda: restorers.restore(_image(), "RestoreFormer", 1)):
        with pytest.raises(fr.FaceRestorationError, match="detection_Resnet50_Final.pth, parsing_parsenet.pth") as e:
            call()
        assert str(folder) in str(e.value) and "nothing is downloaded" in str(e.value)
    assert not any(folder.glob("detection*"))  # and nothing fetched into it


def test_missing_restorers_say_why(tmp_path):
    restorers = fr.FaceRestorers()
    restorers.configure(tmp_path, [tmp_path], lambda: torch.device("cpu"))
    with pytest.raises(fr.FaceRestorationError, match=r"GFPGAN is not available: no GFPGAN weights .*GFPGAN\*\.pth"):
        restorers.get("GFPGAN")
    with pytest.raises(fr.FaceRestorationError, match="spandrel_extra_arches"):
        restorers.get("CodeFormer")
    assert restorers.available() == []


def test_restore_crop_runs_the_model_in_its_range(tmp_path):
    model = fr.load_restorer(write_restoreformer(tmp_path / "RestoreFormer.pth"), "RestoreFormer")
    crop = np.asarray(_image(512, seed=3))
    first = fr.restore_crop(model, crop, torch.device("cpu"))
    assert first.shape == (512, 512, 3) and first.dtype == np.uint8 and first.std() > 0
    assert np.array_equal(first, fr.restore_crop(model, crop, torch.device("cpu")))
    with pytest.raises(fr.FaceRestorationError, match="is a RestoreFormer model, not GFPGAN"):
        fr.load_restorer(tmp_path / "RestoreFormer.pth", "GFPGAN")


@pytest.mark.slow
def test_end_to_end_runs_and_is_deterministic(gfpgan_dir, tmp_path):
    folder = tmp_path / "GFPGAN"
    folder.mkdir()
    for name in ("detection_Resnet50_Final.pth", "parsing_parsenet.pth"):
        (folder / name).symlink_to(gfpgan_dir / name)
    write_restoreformer(folder / "RestoreFormer.pth")
    restorers = fr.FaceRestorers()
    restorers.configure(folder, [folder], lambda: torch.device("cpu"))
    restorers.max_faces = 2  # random RetinaFace weights find faces everywhere: two model runs prove the path
    image = _image(128, seed=5)
    first = restorers.restore(image, "RestoreFormer", 1.0)
    assert first.size == image.size
    assert np.array_equal(np.asarray(first), np.asarray(restorers.restore(image, "RestoreFormer", 1.0)))
    assert restorers.restore(image, "restoreformer", 0).tobytes() == image.tobytes()
