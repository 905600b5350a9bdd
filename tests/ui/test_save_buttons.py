"""Save / Zip / 📂 under a gallery: the shown images (kept on the server) are saved into outdir_save with their
parameters and a log.csv row each; Zip packs them; 📂 exists only where a desktop could show the folder."""

from __future__ import annotations

import csv
import zipfile

import pytest
from PIL import Image

from sdui.ui.app import create_ui
from tests.helpers import components_by_id, handler, make_ctx

INFO = "a red fox\nNegative prompt: blur\nSteps: 4, Sampler: Euler, CFG scale: 7, Seed: {seed}, Size: 16x8, Model: tiny"


def _results():
    images = [Image.new("RGB", (16, 8), (10 * n, 0, 0)) for n in range(3)]
    return images, [INFO.format(seed=100 + n) for n in range(3)]


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    made = make_ctx(tmp_path / "data")
    yield made
    made.jobs.shutdown()


def test_save_writes_the_selected_image_with_its_parameters_and_a_log_row(ctx):
    demo = create_ui(ctx)
    images, texts = _results()
    files, status = handler(demo, "save_txt2img", "click").fn(images, texts, 1)
    folder = ctx.paths.data_dir / "log" / "images"
    (saved,) = [p for p in folder.iterdir() if p.suffix == ".png"]
    assert saved.name == "00000-101-a red fox.png" and "Saved: 00000-101-a red fox.png" in status
    assert files.value and files.visible
    with Image.open(saved) as image:
        assert image.text["parameters"] == texts[1] and image.getpixel((0, 0)) == (10, 0, 0)
    with open(folder / "log.csv", encoding="utf8") as f:
        rows = list(csv.DictReader(f))
    assert rows == [
        {
            "prompt": "a red fox",
            "seed": "101",
            "width": "16",
            "height": "8",
            "sampler": "Euler",
            "cfgs": "7",
            "steps": "4",
            "filename": saved.name,
            "negative_prompt": "blur",
            "sd_model_name": "tiny",
        }
    ]


def test_zip_with_nothing_selected_packs_every_image(ctx):
    demo = create_ui(ctx)
    images, texts = _results()
    files, status = handler(demo, "save_zip_img2img", "click").fn(images, texts, None)
    archive = next((ctx.paths.data_dir / "log" / "images").glob("images-*.zip"))
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == ["00000-100-a red fox.png", "00001-101-a red fox.png", "00002-102-a red fox.png"]
    assert "images-" in status
    _, status = handler(demo, "save_txt2img", "click").fn([], [], None)
    assert "Nothing to save" in status


@pytest.mark.parametrize("flags, display, shown", [((), ":0", True), ((), None, False), (("--listen",), ":0", False)])
def test_open_folder_only_on_a_local_desktop(tmp_path, monkeypatch, flags, display, shown):
    if display:
        monkeypatch.setenv("DISPLAY", display)
    else:
        monkeypatch.delenv("DISPLAY", raising=False)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    ctx = make_ctx(tmp_path / "data", *flags)
    try:
        blocks = components_by_id(create_ui(ctx))
        assert blocks["open_folder_txt2img"].visible is shown and blocks["open_folder_extras"].visible is shown
    finally:
        ctx.jobs.shutdown()
