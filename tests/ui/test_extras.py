"""The Extras tab's handler on a real app context: one image, uploaded files, a folder; results keep their source's
parameters and gain the postprocessing text, saved as A1111 saves them; folders typed by a visitor are bounded."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from sdui.ui.tabs import extras
from tests.fixtures.upscalers import write_tiny_esrgan
from tests.helpers import make_ctx

SCALE_BY_2_LANCZOS = (extras.SCALE_BY, 2.0, 512, 512, True, "Lanczos", "None", 0.0)


def _png(path, text: str | None = "a cat\nSteps: 2, Seed: 1", size=(24, 16)):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("parameters", text)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, pnginfo=info)
    return path


@pytest.fixture
def ctx(tmp_path):
    made = make_ctx(tmp_path / "data")
    yield made
    made.jobs.shutdown()


def test_single_image_is_upscaled_saved_and_keeps_its_parameters(ctx, tmp_path):
    source = _png(tmp_path / "in.png")
    shown, images, texts, info, status = extras.run(
        ctx, extras.SINGLE, str(source), None, "", "", True, *SCALE_BY_2_LANCZOS
    )
    assert [im.size for im in shown] == [(48, 32)] and texts == ["a cat\nSteps: 2, Seed: 1"]
    assert info == "Postprocess upscale by: 2, Postprocess upscaler: Lanczos"
    saved = sorted((ctx.paths.data_dir / "outputs" / "extras-images").glob("*.png"))
    assert [p.name for p in saved] == ["00000.png"] and "saved in" in status
    with Image.open(saved[0]) as image:
        assert image.size == (48, 32)
        assert image.text == {"parameters": "a cat\nSteps: 2, Seed: 1", "postprocessing": info, "extras": info}


def test_folder_batch_keeps_names_in_the_output_folder_with_a_model_upscaler(ctx, tmp_path):
    write_tiny_esrgan(ctx.paths.data_dir / "models" / "ESRGAN" / "2x_Tiny.pth", scale=2)
    _png(tmp_path / "in" / "b.png")
    _png(tmp_path / "in" / "a.png", text=None)
    (tmp_path / "in" / "notes.txt").write_text("skipped")
    upscale = (extras.SCALE_BY, 2.0, 512, 512, True, "2x_Tiny", "Nearest", 0.5)
    shown, images, _, info, _ = extras.run(
        ctx, extras.FOLDER, None, None, str(tmp_path / "in"), str(tmp_path / "out"), False, *upscale
    )
    assert shown == [] and len(images) == 2  # "Show result images" off: nothing in the gallery
    assert info == "Postprocess upscale by: 2, Postprocess upscaler: 2x_Tiny, Postprocess upscaler 2: Nearest"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]


def test_batch_of_uploaded_files(ctx, tmp_path):
    files = [str(_png(tmp_path / f"{n}.png", size=(10 + n, 8))) for n in range(3)]
    upscale = (extras.SCALE_TO, 1.0, 40, 40, True, "Nearest", "None", 0.0)
    shown, *_, info, _ = extras.run(ctx, extras.BATCH, None, files, "", "", True, *upscale)
    assert [im.size for im in shown] == [(40, 40)] * 3 and "Postprocess crop to: 40x40" in info


@pytest.mark.parametrize(
    "flags, folder, message",
    [
        (("--listen",), "/etc", "must be inside"),
        (("--hide-ui-dir-config",), "in", "--hide-ui-dir-config"),
        ((), "missing", "does not exist"),
    ],
)
def test_folders_a_visitor_may_not_use_are_refused(tmp_path, flags, folder, message):
    ctx = make_ctx(tmp_path / "data", *flags)
    try:
        (ctx.paths.data_dir / "in").mkdir()
        *_, status = extras.run(ctx, extras.FOLDER, None, None, folder, "", True, *SCALE_BY_2_LANCZOS)
        assert message in status
    finally:
        ctx.jobs.shutdown()


def test_mistakes_are_messages(ctx, tmp_path):
    *_, status = extras.run(ctx, extras.SINGLE, None, None, "", "", True, *SCALE_BY_2_LANCZOS)
    assert "No image to process" in status
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    *_, status = extras.run(ctx, extras.SINGLE, str(broken), None, "", "", True, *SCALE_BY_2_LANCZOS)
    assert "Invalid image file broken.png" in status
    too_big = (extras.SCALE_BY, 4.0, 512, 512, True, "Lanczos", "None", 0.0)
    ctx.options.set("max_image_pixels", 4096)
    *_, status = extras.run(ctx, extras.SINGLE, str(_png(tmp_path / "x.png")), None, "", "", True, *too_big)
    assert "larger than the configured limit" in status
