"""Saving a job's images: every saving setting, checked on disk against what A1111 1.10's setting of the same key
does (folders, file names, formats, metadata read back, .txt files, grids, hooks)."""

from __future__ import annotations

import datetime
import hashlib
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdui.core.hooks import ProcessingHooks
from sdui.core.processing import process
from sdui.imaging.pnginfo import read_info_from_image
from sdui.models.loading import load_sd_model
from sdui.request import GenerationRequest, Img2ImgRequest
from sdui.settings.snapshot import Settings
from tests.helpers import CPU32, Events

BASE = dict(
    prompt="a red cube, on green grass",
    negative_prompt="blurry",
    seed=1234,
    steps=2,
    width=64,
    height=64,
    sampler_name="Euler",
    cfg_scale=5.0,
)
WORDS = "a red cube on green grass"  # A1111's [prompt_words] of BASE's prompt
SPACES = "a red cube, on green grass"  # its [prompt_spaces]


@pytest.fixture(scope="module")
def model(tiny_sd1_checkpoint):
    return load_sd_model(tiny_sd1_checkpoint, CPU32)


def txt2img(**fields) -> GenerationRequest:
    return GenerationRequest(**{**BASE, **fields})


def picture() -> Image.Image:
    y, x = np.mgrid[0:64, 0:64]
    return Image.fromarray(np.stack([x * 4, y * 4, 255 - (x + y) * 2], -1).astype(np.uint8))


def box_mask() -> Image.Image:
    arr = np.zeros((64, 64), np.uint8)
    arr[16:48, 16:48] = 255
    return Image.fromarray(arr)


def img2img(**fields) -> Img2ImgRequest:
    return Img2ImgRequest(**{**BASE, "init_images": [picture()], "denoising_strength": 0.5, **fields})


def generate(model, data_dir: Path, request=None, *, hooks=(), events=None, **settings):
    return process(
        request or txt2img(),
        model,
        policy=CPU32,
        settings=Settings.defaults(**settings),
        data_dir=data_dir,
        hooks=hooks,
        events=events,
    )


def listing(folder: Path) -> list[str]:
    """The files under `folder` (temp files included), relative, a dated folder written as DATE."""
    if not folder.exists():
        return []
    return sorted(
        re.sub(r"(^|/)\d{4}-\d{2}-\d{2}/", r"\1DATE/", p.relative_to(folder).as_posix())
        for p in folder.rglob("*")
        if p.is_file()
    )


def samples(data_dir: Path, mode: str = "txt2img") -> list[str]:
    return listing(data_dir / "outputs" / f"{mode}-images")


def grids(data_dir: Path, mode: str = "txt2img") -> list[str]:
    return listing(data_dir / "outputs" / f"{mode}-grids")


def info_of(path: Path) -> tuple[str | None, dict]:
    with Image.open(path) as im:
        im.load()
        return read_info_from_image(im)


def pixels(image_or_path) -> np.ndarray:
    if isinstance(image_or_path, Path):
        with Image.open(image_or_path) as im:
            return np.asarray(im.convert("RGB"), dtype=int)
    return np.asarray(image_or_path.convert("RGB"), dtype=int)


# ---------------------------------------------------------------------------------------------- images: names


def test_defaults_dated_folder_numbered_seed_names_with_parameters(model, tmp_path):
    before = datetime.date.today().isoformat()
    result = generate(model, tmp_path, txt2img(batch_size=2))
    after = datetime.date.today().isoformat()
    assert samples(tmp_path) == ["DATE/00000-1234.png", "DATE/00001-1235.png"]
    assert grids(tmp_path) == ["DATE/grid-0000.png"]
    day = {p.parent.name for p in result.saved_paths}
    assert day <= {before, after} and len(day) == 1
    sample_paths = [p for p in result.saved_paths if not p.name.startswith("grid-")]
    for path, image, text in zip(sample_paths, result.images[1:], result.infotexts[1:], strict=False):
        assert info_of(path)[0] == text and "Seed: " in text
        assert np.array_equal(pixels(path), pixels(image))  # PNG: the returned pixels exactly


def test_samples_save_off_writes_no_image_files(model, tmp_path):
    result = generate(model, tmp_path, txt2img(batch_size=2), samples_save=False)
    assert samples(tmp_path) == []
    assert grids(tmp_path) == ["DATE/grid-0000.png"]  # grids have their own setting
    assert len(result.images) == 3  # the images are still returned


@pytest.mark.parametrize("fmt, kind", [("png", "PNG"), ("jpg", "JPEG"), ("webp", "WEBP")])
def test_samples_format_sets_suffix_encoding_and_where_the_parameters_go(model, tmp_path, fmt, kind):
    result = generate(
        model,
        tmp_path,
        txt2img(prompt="café ü 狐, a fox"),
        samples_format=fmt,
        save_to_dirs=False,
        samples_filename_pattern="[seed]",
    )
    assert samples(tmp_path) == [f"00000-1234.{fmt}"]
    path = result.saved_paths[0]
    with Image.open(path) as im:
        assert im.format == kind and im.size == (64, 64)
        raw = dict(im.info)
    text, items = info_of(path)
    assert text == result.infotexts[0] and "café ü 狐" in text
    if fmt == "png":
        assert raw["parameters"] == text  # the PNG text chunk
    else:
        assert "parameters" not in raw and items["exif comment"] == text  # EXIF UserComment


def test_samples_filename_pattern_and_max_prompt_words(model, tmp_path):
    generate(model, tmp_path / "a", samples_filename_pattern="[seed]-[steps]-[prompt_words]")
    assert samples(tmp_path / "a") == [f"DATE/00000-1234-2-{WORDS}.png"]
    generate(
        model, tmp_path / "b", samples_filename_pattern="[seed]-[steps]-[prompt_words]", directories_max_prompt_words=2
    )
    assert samples(tmp_path / "b") == ["DATE/00000-1234-2-a red.png"]


def test_save_images_add_number_off_names_files_by_the_pattern_alone(model, tmp_path):
    generate(model, tmp_path / "a", save_images_add_number=False)
    assert samples(tmp_path / "a") == ["DATE/1234.png"]
    # without subfolders A1111's default pattern is [seed]-[prompt_spaces]
    generate(model, tmp_path / "b", save_images_add_number=False, save_to_dirs=False)
    assert samples(tmp_path / "b") == [f"1234-{SPACES}.png"]


def test_replace_action_replace_overwrites_the_file_of_the_same_name(model, tmp_path):
    opts = dict(save_images_add_number=False, save_to_dirs=False, samples_filename_pattern="[seed]")
    generate(model, tmp_path, txt2img(prompt="first"), **opts)
    second = generate(model, tmp_path, txt2img(prompt="second"), save_images_replace_action="Replace", **opts)
    assert samples(tmp_path) == ["1234.png"]
    assert info_of(tmp_path / "outputs" / "txt2img-images" / "1234.png")[0] == second.infotexts[0]


def test_replace_action_add_number_suffix_keeps_the_old_file(model, tmp_path):
    opts = dict(
        save_images_add_number=False,
        save_to_dirs=False,
        samples_filename_pattern="[seed]",
        save_images_replace_action="Add number suffix",
    )
    first = generate(model, tmp_path, txt2img(prompt="first"), **opts)
    second = generate(model, tmp_path, txt2img(prompt="second"), **opts)
    third = generate(model, tmp_path, txt2img(prompt="third"), **opts)
    assert samples(tmp_path) == ["1234-1.png", "1234-2.png", "1234.png"]
    folder = tmp_path / "outputs" / "txt2img-images"
    assert [info_of(folder / n)[0] for n in ("1234.png", "1234-1.png", "1234-2.png")] == [
        first.infotexts[0],
        second.infotexts[0],
        third.infotexts[0],
    ]


def test_save_to_dirs_off_puts_images_straight_into_the_folder(model, tmp_path):
    generate(model, tmp_path, save_to_dirs=False)
    assert samples(tmp_path) == [f"00000-1234-{SPACES}.png"]


def test_directories_filename_pattern_and_max_prompt_words_name_the_subfolder(model, tmp_path):
    generate(model, tmp_path / "a", directories_filename_pattern="[prompt_words]")
    assert samples(tmp_path / "a") == [f"{WORDS}/00000-1234.png"]
    generate(model, tmp_path / "b", directories_filename_pattern="[prompt_words]", directories_max_prompt_words=3)
    assert samples(tmp_path / "b") == ["a red cube/00000-1234.png"]
    generate(model, tmp_path / "c", directories_filename_pattern="[seed]-[steps]")
    assert samples(tmp_path / "c") == ["1234-2/00000-1234.png"]


# ---------------------------------------------------------------------------------------------- grids


def test_grid_save_off_saves_no_grid_but_still_returns_it(model, tmp_path):
    result = generate(model, tmp_path, txt2img(batch_size=2), grid_save=False)
    assert grids(tmp_path) == [] and len(samples(tmp_path)) == 2
    assert len(result.images) == 3 and result.index_of_first_image == 1
    assert result.images[0].size == (128, 64)


@pytest.mark.parametrize("fmt, kind", [("jpg", "JPEG"), ("webp", "WEBP")])
def test_grid_format(model, tmp_path, fmt, kind):
    result = generate(model, tmp_path, txt2img(batch_size=2), grid_format=fmt)
    assert grids(tmp_path) == [f"DATE/grid-0000.{fmt}"]
    assert samples(tmp_path) == ["DATE/00000-1234.png", "DATE/00001-1235.png"]  # samples_format is apart
    path = next(p for p in result.saved_paths if p.suffix == f".{fmt}")
    with Image.open(path) as im:
        assert im.format == kind and im.size == (128, 64)
    assert info_of(path)[1]["exif comment"] == result.infotexts[0]


def test_grid_extended_filename_uses_the_image_name_pattern(model, tmp_path):
    generate(model, tmp_path / "a", txt2img(batch_size=2), grid_extended_filename=True)
    assert grids(tmp_path / "a") == ["DATE/grid-0000-1234.png"]
    generate(
        model,
        tmp_path / "b",
        txt2img(batch_size=2),
        grid_extended_filename=True,
        samples_filename_pattern="[seed]-[steps]",
    )
    assert grids(tmp_path / "b") == ["DATE/grid-0000-1234-2.png"]
    generate(
        model,
        tmp_path / "c",
        txt2img(batch_size=2),
        grid_extended_filename=True,
        save_to_dirs=False,
        grid_save_to_dirs=False,
    )
    assert grids(tmp_path / "c") == [f"grid-0000-1234-{SPACES}.png"]
    # A1111 picks the default pattern by save_to_dirs (the images' setting), also for grids
    generate(model, tmp_path / "d", txt2img(batch_size=2), grid_extended_filename=True, grid_save_to_dirs=False)
    assert grids(tmp_path / "d") == ["grid-0000-1234.png"]


def test_grid_only_if_multiple(model, tmp_path):
    single = generate(model, tmp_path / "a")
    assert grids(tmp_path / "a") == [] and len(single.images) == 1 and single.index_of_first_image == 0
    result = generate(model, tmp_path / "b", grid_only_if_multiple=False)
    assert grids(tmp_path / "b") == ["DATE/grid-0000.png"]
    assert len(result.images) == 2 and result.index_of_first_image == 1
    assert np.array_equal(pixels(result.images[0]), pixels(result.images[1]))  # a grid of one: the image


@pytest.mark.parametrize(
    "batch_size, n_iter, opts, size",
    [
        (3, 1, {}, (128, 128)),  # round(sqrt(3)) = 2 rows: one empty cell
        (3, 1, {"grid_prevent_empty_spots": True}, (192, 64)),  # 1 row, no empty cell
        (3, 2, {}, (192, 128)),  # 6 images: 2 rows of 3
        (3, 2, {"n_rows": 3}, (128, 192)),
        (3, 2, {"n_rows": 0}, (128, 192)),  # 0: as many rows as the batch size
        (2, 3, {"n_rows": 0}, (192, 128)),
    ],
)
def test_grid_rows(model, tmp_path, batch_size, n_iter, opts, size):
    result = generate(model, tmp_path, txt2img(batch_size=batch_size, n_iter=n_iter), **opts)
    grid = next(p for p in result.saved_paths if "grid-" in p.name)
    with Image.open(grid) as im:
        assert im.size == size
    assert result.images[0].size == size
    # the first image is in the top-left cell, the last one in its row-major cell
    cols = size[0] // 64
    last = len(result.images) - 2
    saved = pixels(grid)
    assert np.array_equal(saved[:64, :64], pixels(result.images[1]))
    r, c = divmod(last, cols)
    assert np.array_equal(saved[r * 64 : (r + 1) * 64, c * 64 : (c + 1) * 64], pixels(result.images[-1]))


@pytest.mark.parametrize("color, rgb", [("#ffffff", (255, 255, 255)), ("#2040ff", (32, 64, 255))])
def test_grid_background_color_fills_the_empty_cell(model, tmp_path, color, rgb):
    result = generate(model, tmp_path, txt2img(batch_size=3), grid_background_color=color)
    grid = next(p for p in result.saved_paths if "grid-" in p.name)
    empty = pixels(grid)[64:, 64:]
    assert (empty == rgb).all()


def test_return_grid_off_leaves_the_grid_out_of_the_results_but_saves_it(model, tmp_path):
    result = generate(model, tmp_path, txt2img(batch_size=2), return_grid=False)
    assert [im.size for im in result.images] == [(64, 64), (64, 64)] and result.index_of_first_image == 0
    assert len(result.infotexts) == 2
    assert grids(tmp_path) == ["DATE/grid-0000.png"]
    assert result.saved_paths[-1].name == "grid-0000.png"
    with Image.open(result.saved_paths[-1]) as im:
        assert im.size == (128, 64)
    nothing = generate(model, tmp_path / "b", txt2img(batch_size=2), return_grid=False, grid_save=False)
    assert len(nothing.images) == 2 and grids(tmp_path / "b") == []


def test_grid_save_to_dirs(model, tmp_path):
    generate(model, tmp_path / "a", txt2img(batch_size=2), grid_save_to_dirs=False)
    assert grids(tmp_path / "a") == ["grid-0000.png"]
    assert samples(tmp_path / "a") == ["DATE/00000-1234.png", "DATE/00001-1235.png"]
    generate(model, tmp_path / "b", txt2img(batch_size=2), save_to_dirs=False)  # grids keep their subfolder
    assert grids(tmp_path / "b") == ["DATE/grid-0000.png"]


def test_grid_sequence_numbers_count_on(model, tmp_path):
    generate(model, tmp_path, txt2img(batch_size=2))
    generate(model, tmp_path, txt2img(batch_size=2, seed=50))
    assert grids(tmp_path) == ["DATE/grid-0000.png", "DATE/grid-0001.png"]
    assert samples(tmp_path) == ["DATE/00000-1234.png", "DATE/00001-1235.png", "DATE/00002-50.png", "DATE/00003-51.png"]


# ---------------------------------------------------------------------------------------------- metadata, encoding


def test_enable_pnginfo_off_writes_no_parameters(model, tmp_path):
    result = generate(model, tmp_path, txt2img(batch_size=2), enable_pnginfo=False)
    assert len(result.saved_paths) == 3
    for path in result.saved_paths:
        with Image.open(path) as im:
            assert im.text == {}  # no text chunk at all
        assert info_of(path)[0] is None
    assert all("parameters" not in im.info for im in result.images)
    assert "Seed: 1234" in result.infotexts[0]  # the job still describes its images
    jpg = generate(model, tmp_path / "jpg", enable_pnginfo=False, samples_format="jpg")
    with Image.open(jpg.saved_paths[0]) as im:
        assert "exif" not in im.info
    on = generate(model, tmp_path / "on", txt2img(batch_size=2))
    assert all(im.info["parameters"] == t for im, t in zip(on.images, on.infotexts, strict=False))


def test_save_txt_writes_the_parameters_beside_each_image(model, tmp_path):
    result = generate(model, tmp_path, txt2img(batch_size=2), save_txt=True)
    assert samples(tmp_path) == [
        "DATE/00000-1234.png",
        "DATE/00000-1234.txt",
        "DATE/00001-1235.png",
        "DATE/00001-1235.txt",
    ]
    assert grids(tmp_path) == ["DATE/grid-0000.png", "DATE/grid-0000.txt"]
    for path in result.saved_paths:
        assert path.with_suffix(".txt").read_text(encoding="utf8") == info_of(path)[0] + "\n"  # as A1111 writes it
    assert result.saved_paths[0].with_suffix(".txt").read_text(encoding="utf8") == result.infotexts[1] + "\n"
    generate(model, tmp_path / "off", txt2img(batch_size=2))
    assert not [n for n in samples(tmp_path / "off") + grids(tmp_path / "off") if n.endswith(".txt")]


def test_save_txt_does_not_depend_on_enable_pnginfo(model, tmp_path):
    """A1111 writes the .txt from the infotext whether or not it goes into the image file."""
    result = generate(model, tmp_path, save_txt=True, enable_pnginfo=False, save_to_dirs=False)
    assert samples(tmp_path) == [f"00000-1234-{SPACES}.png", f"00000-1234-{SPACES}.txt"]
    assert result.saved_paths[0].with_suffix(".txt").read_text(encoding="utf8") == result.infotexts[0] + "\n"
    assert info_of(result.saved_paths[0])[0] is None


def test_jpeg_quality_lower_gives_a_smaller_file(model, tmp_path):
    high = generate(model, tmp_path / "hi", samples_format="jpg", jpeg_quality=95)
    low = generate(model, tmp_path / "lo", samples_format="jpg", jpeg_quality=10)
    hi_path, lo_path = high.saved_paths[0], low.saved_paths[0]
    assert lo_path.stat().st_size < hi_path.stat().st_size * 0.7
    # the lower quality is further from the returned pixels
    truth = pixels(high.images[0])
    assert np.abs(pixels(lo_path) - truth).mean() > np.abs(pixels(hi_path) - truth).mean()


def test_webp_lossless_keeps_every_pixel(model, tmp_path):
    lossless = generate(model, tmp_path / "a", samples_format="webp", webp_lossless=True)
    assert np.array_equal(pixels(lossless.saved_paths[0]), pixels(lossless.images[0]))
    assert info_of(lossless.saved_paths[0])[0] == lossless.infotexts[0]
    lossy = generate(model, tmp_path / "b", samples_format="webp", webp_lossless=False)
    assert not np.array_equal(pixels(lossy.saved_paths[0]), pixels(lossy.images[0]))


# ---------------------------------------------------------------------------------------------- folders


def test_outdir_samples_and_grids_override_the_per_mode_folders(model, tmp_path):
    generate(
        model,
        tmp_path,
        txt2img(batch_size=2),
        outdir_samples="mine/all",
        outdir_grids="mine/grids",
        outdir_txt2img_samples="unused/t2i",
        outdir_txt2img_grids="unused/t2i-grids",
    )
    assert listing(tmp_path / "mine") == [
        "all/DATE/00000-1234.png",
        "all/DATE/00001-1235.png",
        "grids/DATE/grid-0000.png",
    ]
    assert not (tmp_path / "unused").exists() and not (tmp_path / "outputs").exists()


def test_outdir_txt2img_folders(model, tmp_path):
    generate(
        model,
        tmp_path,
        txt2img(batch_size=2),
        outdir_txt2img_samples="pics/t2i",
        outdir_txt2img_grids="pics/t2i-grids",
        outdir_img2img_samples="pics/i2i",
    )
    assert listing(tmp_path / "pics") == [
        "t2i-grids/DATE/grid-0000.png",
        "t2i/DATE/00000-1234.png",
        "t2i/DATE/00001-1235.png",
    ]


def test_outdir_absolute_path_is_used_as_it_is(model, tmp_path):
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    generate(
        model,
        data,
        txt2img(batch_size=2),
        outdir_txt2img_samples=str(elsewhere / "s"),
        outdir_grids=str(elsewhere / "g"),
    )
    assert listing(elsewhere) == ["g/DATE/grid-0000.png", "s/DATE/00000-1234.png", "s/DATE/00001-1235.png"]
    assert listing(data) == []


def test_outdir_img2img_samples(model, tmp_path):
    result = generate(model, tmp_path / "a", img2img())
    assert samples(tmp_path / "a", "img2img") == ["DATE/00000-1234.png"]
    assert samples(tmp_path / "a") == []
    assert info_of(result.saved_paths[0])[0] == result.infotexts[0] and "Denoising strength: 0.5" in result.infotexts[0]
    generate(model, tmp_path / "b", img2img(), outdir_img2img_samples="mine/i2i", outdir_txt2img_samples="mine/t2i")
    assert listing(tmp_path / "b") == ["mine/i2i/DATE/00000-1234.png"]


class SavedPaths(ProcessingHooks):
    def __init__(self):
        self.paths: list[Path] = []

    def image_saved(self, params):
        self.paths.append(params.filename)


def test_save_init_img_saves_the_init_image_under_its_md5(model, tmp_path):
    init = picture()
    init.info["Comment"] = "from the user's file"
    digest = hashlib.md5(init.tobytes()).hexdigest()
    hooks = SavedPaths()
    result = generate(model, tmp_path, img2img(init_images=[init]), hooks=[hooks], save_init_img=True)
    assert listing(tmp_path / "outputs" / "init-images") == [f"{digest}.png"]
    saved = tmp_path / "outputs" / "init-images" / f"{digest}.png"
    assert np.array_equal(pixels(saved), pixels(init))
    assert info_of(saved) == (None, {"Comment": "from the user's file"})  # its own text entries kept
    assert hooks.paths == [saved, *result.saved_paths]  # a save like any other, first
    assert f"Init image hash: {digest}" in result.infotexts[0]
    assert info_of(result.saved_paths[-1])[0] == result.infotexts[0]
    # its own folder setting; and off: no init image, no hash
    generate(model, tmp_path / "b", img2img(init_images=[init]), save_init_img=True, outdir_init_images="inits")
    assert listing(tmp_path / "b" / "inits") == [f"{digest}.png"]
    off = generate(model, tmp_path / "c", img2img(init_images=[init]))
    assert listing(tmp_path / "c" / "outputs" / "init-images") == [] and "Init image hash" not in off.infotexts[0]


def test_save_init_img_saves_every_init_image(model, tmp_path):
    """A1111 saves each init image of the request; the infotext names the last one's hash."""
    first, second = picture(), picture().transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    digests = [hashlib.md5(im.tobytes()).hexdigest() for im in (first, second)]
    result = generate(model, tmp_path, img2img(init_images=[first, second], batch_size=2), save_init_img=True)
    assert listing(tmp_path / "outputs" / "init-images") == sorted(f"{d}.png" for d in digests)
    assert f"Init image hash: {digests[1]}" in result.infotexts[1]


# ---------------------------------------------------------------------------------------------- extra files


@pytest.mark.parametrize("save_incomplete", [False, True])
def test_save_incomplete_images(model, tmp_path, save_incomplete):
    events = Events(stop="interrupt", stop_after=1)
    result = generate(model, tmp_path, events=events, save_incomplete_images=save_incomplete)
    assert result.interrupted and len(result.images) == 1 and len(events.steps) == 1
    if save_incomplete:
        assert samples(tmp_path) == ["DATE/00000-1234.png"]
        assert np.array_equal(pixels(result.saved_paths[0]), pixels(result.images[0]))
    else:
        assert samples(tmp_path) == [] and result.saved_paths == []


def test_save_images_before_highres_fix(model, tmp_path):
    hr = dict(enable_hr=True, hr_scale=2.0, denoising_strength=0.5)
    result = generate(model, tmp_path / "a", txt2img(**hr), save_images_before_highres_fix=True)
    assert samples(tmp_path / "a") == ["DATE/00000-1234-before-highres-fix.png", "DATE/00001-1234.png"]
    folder = result.saved_paths[0].parent
    with (
        Image.open(folder / "00000-1234-before-highres-fix.png") as first,
        Image.open(folder / "00001-1234.png") as final,
    ):
        assert first.size == (64, 64) and final.size == (128, 128)
    assert info_of(folder / "00000-1234-before-highres-fix.png")[0] == result.infotexts[0]
    assert "Hires upscale: 2" in result.infotexts[0]
    generate(model, tmp_path / "b", txt2img(**hr))
    assert samples(tmp_path / "b") == ["DATE/00000-1234.png"]


def test_save_mask_and_mask_composite(model, tmp_path):
    request = img2img(mask=box_mask(), mask_blur_x=0, mask_blur_y=0)
    result = generate(model, tmp_path / "a", request, save_mask=True, save_mask_composite=True)
    assert samples(tmp_path / "a", "img2img") == [
        "DATE/00000-1234.png",
        "DATE/00001-1234-mask.png",
        "DATE/00002-1234-mask-composite.png",
    ]
    _, mask_path, composite_path = result.saved_paths
    with Image.open(mask_path) as mask:
        assert mask.mode == "RGB" and mask.size == (64, 64)
        m = np.asarray(mask, dtype=int)
    assert (m[20:44, 20:44] == 255).all() and (m[:8, :8] == 0).all()
    with Image.open(composite_path) as composite:
        assert composite.mode == "RGBA" and composite.size == (64, 64)
        c = np.asarray(composite, dtype=int)
    assert (c[20:44, 20:44, 3] == 255).all() and (c[:8, :8, 3] == 0).all()  # transparent outside the mask
    assert np.array_equal(c[20:44, 20:44, :3], pixels(result.images[0])[20:44, 20:44])
    for path in result.saved_paths:
        assert info_of(path)[0] == result.infotexts[0]
    only_mask = generate(model, tmp_path / "b", request, save_mask=True)
    assert [p.name for p in only_mask.saved_paths] == ["00000-1234.png", "00001-1234-mask.png"]
    generate(model, tmp_path / "c", request)
    assert samples(tmp_path / "c", "img2img") == ["DATE/00000-1234.png"]


@pytest.mark.parametrize("on", [False, True])
def test_samples_log_stdout(model, tmp_path, caplog, on):
    with caplog.at_level(logging.INFO, logger="sdui.core.outputs"):
        result = generate(model, tmp_path, samples_log_stdout=on)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "sdui.core.outputs")
    assert (result.infotexts[0] in logged) == on
    if on:
        assert str(result.saved_paths[0]) in logged


# ---------------------------------------------------------------------------------------------- hooks


class SaveHooks(ProcessingHooks):
    """Edits the parameters before every save and records what the hooks see."""

    def __init__(self):
        self.before: list[tuple[Path, dict]] = []
        self.after: list[tuple[Path, bool, dict]] = []

    def before_image_saved(self, params):
        self.before.append((params.filename, dict(params.pnginfo)))
        params.pnginfo["parameters"] += "\nEdited by: a hook"
        params.pnginfo["extension"] = "kept"

    def image_saved(self, params):
        self.after.append((params.filename, params.filename.exists(), dict(params.pnginfo)))


def test_before_image_saved_edits_what_lands_in_the_file_and_image_saved_gets_the_path(model, tmp_path):
    hooks = SaveHooks()
    result = generate(model, tmp_path, txt2img(batch_size=2), hooks=[hooks], save_txt=True)
    paths = result.saved_paths
    assert len(paths) == 3 and paths[-1].name == "grid-0000.png"
    # before: the name the file will get, and the job's infotext; the grid gets the first image's
    assert [f for f, _ in hooks.before] == paths
    assert [info["parameters"] for _, info in hooks.before] == [*result.infotexts[1:], result.infotexts[0]]
    # after: the final path, already on disk, with the edited parameters
    assert [(f, exists) for f, exists, _ in hooks.after] == [(p, True) for p in paths]
    for path, (_, info) in zip(paths, hooks.before, strict=False):
        edited = info["parameters"] + "\nEdited by: a hook"
        text, items = info_of(path)
        assert text == edited and items["extension"] == "kept"  # every pnginfo entry is a text chunk
        assert path.with_suffix(".txt").read_text(encoding="utf8") == edited + "\n"
    assert all(info["parameters"].endswith("Edited by: a hook") for _, _, info in hooks.after)


def test_hooks_see_the_parameters_when_enable_pnginfo_is_off(model, tmp_path):
    hooks = SaveHooks()
    result = generate(model, tmp_path, hooks=[hooks], enable_pnginfo=False)
    assert hooks.before[0][1]["parameters"] == result.infotexts[0]
    with Image.open(result.saved_paths[0]) as im:
        assert im.text == {}


def test_a_hook_replacing_the_image_changes_what_is_saved(model, tmp_path):
    class Grey(ProcessingHooks):
        def before_image_saved(self, params):
            params.image = Image.new("RGB", params.image.size, (128, 128, 128))

    result = generate(model, tmp_path, hooks=[Grey()])
    assert (pixels(result.saved_paths[0]) == 128).all()
    assert not (pixels(result.images[0]) == 128).all()  # the returned image is the job's own
