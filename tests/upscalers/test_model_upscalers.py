"""Model upscalers (ESRGAN & co through spandrel): found in the models folders, under A1111's names, run tile by tile
with the same result as the network run whole, used by upscale_image, extras and hires fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from sdui.errors import UserError
from sdui.upscalers import upscaling
from sdui.upscalers.model_upscalers import ModelUpscalers, RunSettings, find_model_upscalers, load_upscaler
from sdui.upscalers.tiled import run_tiled
from tests.fixtures.upscalers import tiny_esrgan, write_tiny_esrgan


def _image(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _by_hand(image: Image.Image, scale: int = 2) -> np.ndarray:
    """The network applied to the whole image, outside our code."""
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        y = tiny_esrgan(scale)(x).clamp(0, 1)
    return (y[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


@pytest.fixture
def catalog(tmp_path):
    made = ModelUpscalers()
    made.configure([tmp_path / "ESRGAN", tmp_path / "RealESRGAN"], RunSettings)
    return made


def test_files_are_listed_under_a1111_names_and_other_files_are_ignored(tmp_path):
    write_tiny_esrgan(tmp_path / "ESRGAN" / "4x-UltraSharp.pth")
    write_tiny_esrgan(tmp_path / "RealESRGAN" / "RealESRGAN_x4plus.pth")
    write_tiny_esrgan(tmp_path / "ESRGAN" / "sub" / "2x_Tiny.safetensors")
    (tmp_path / "ESRGAN" / "readme.txt").write_text("not a model")
    found = find_model_upscalers([tmp_path / "ESRGAN", tmp_path / "RealESRGAN", tmp_path / "missing"])
    assert [(m.name, m.path.name, m.nominal_scale) for m in found] == [
        ("2x_Tiny", "2x_Tiny.safetensors", 2),
        ("4x-UltraSharp", "4x-UltraSharp.pth", 4),
        ("R-ESRGAN 4x+", "RealESRGAN_x4plus.pth", 4),
    ]


def test_upscale_equals_the_network_run_whole(tmp_path, catalog):
    write_tiny_esrgan(tmp_path / "ESRGAN" / "tiny.pth")
    image = _image(40, 30)
    entry = catalog.find("TINY")  # names match in any case
    whole = ModelUpscalers()
    whole.configure(catalog.folders, lambda: RunSettings(tile=0))
    result = np.asarray(whole.upscale(image, entry))
    assert result.shape == (60, 80, 3)
    assert np.abs(result.astype(int) - _by_hand(image)).max() <= 1  # float rounding only


def test_tiles_with_enough_context_equal_the_whole_run_and_without_context_they_do_not():
    torch.manual_seed(0)
    model = tiny_esrgan(2)
    x = torch.rand(1, 3, 45, 61)
    with torch.no_grad():
        whole = model(x)
        # the tiny RRDB sees about 19 input pixels around each pixel: 24 pixels of context cover it
        tiled = run_tiled(model, x, 2, tile=16, overlap=24)
        bare = run_tiled(model, x, 2, tile=16, overlap=0)
    assert tiled.shape == whole.shape == (1, 3, 90, 122)
    assert torch.allclose(tiled, whole, atol=1e-5)
    assert (bare - whole).abs().max() > 1e-2  # the control: tiles without context differ at their edges


def test_tiled_progress_counts_every_tile():
    seen = []
    run_tiled(
        lambda t: t.repeat_interleave(2, -1).repeat_interleave(2, -2),
        torch.rand(1, 3, 20, 33),
        2,
        16,
        4,
        lambda done, total: seen.append((done, total)),
    )
    assert seen == [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (6, 6)]


def test_a_file_that_is_no_upscaler_is_refused_with_its_name(tmp_path):
    path = tmp_path / "ESRGAN" / "notes.safetensors"
    path.parent.mkdir()
    save_file({"some.weight": torch.zeros(3)}, str(path))
    with pytest.raises(UserError, match="notes.safetensors is not an upscaler architecture spandrel knows"):
        load_upscaler(path)


def test_a_pickle_with_code_is_not_run(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model.0.weight": torch.zeros(1), "hook": Image.new("RGB", (1, 1))}, path)  # needs unpickling code
    with pytest.raises(UserError, match="cannot read upscaler file evil.pth"):
        load_upscaler(path)


def test_upscale_image_by_name_reaches_the_target_through_the_model(tmp_path):
    from sdui.upscalers.model_upscalers import MODEL_UPSCALERS

    write_tiny_esrgan(tmp_path / "ESRGAN" / "2x_Tiny.pth")
    MODEL_UPSCALERS.configure([tmp_path / "ESRGAN"], lambda: RunSettings(tile=0))
    try:
        image = _image(32, 24)
        assert upscaling.canonical_upscaler("2x_tiny") == "2x_Tiny"
        assert upscaling.resolve_hr_upscaler("2X_TINY") == "2x_Tiny"
        assert "2x_Tiny" in upscaling.upscaler_names()
        # 2x exactly: one pass of the network, no resize after it
        exact = upscaling.upscale_image(image, "2x_Tiny", 64, 48)
        assert np.abs(np.asarray(exact).astype(int) - _by_hand(image)).max() <= 1
        # 3x: the network runs twice (to 128x96), then Lanczos down to the multiple of 8 / the target
        assert upscaling.upscale_image(image, "2x_Tiny", 96, 72).size == (96, 72)
    finally:
        MODEL_UPSCALERS.configure([], RunSettings)


def test_hr_upscaler_names_unknown_upscaler_lists_model_files_too(tmp_path):
    from sdui.errors import InvalidRequestError
    from sdui.upscalers.model_upscalers import MODEL_UPSCALERS

    write_tiny_esrgan(tmp_path / "ESRGAN" / "4x_Real.pth")
    MODEL_UPSCALERS.configure([tmp_path / "ESRGAN"], RunSettings)
    try:
        with pytest.raises(InvalidRequestError, match="use one of: .*Nearest, 4x_Real"):
            upscaling.resolve_hr_upscaler("4x-UltraSharp")
    finally:
        MODEL_UPSCALERS.configure([], RunSettings)
