"""SD upscale (A1111's script): each tile is exactly the img2img of that part of the enlarged image, with A1111's
seeds; the tiles blend into one image that carries the script's settings in its infotext."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdui.core.processing import process
from sdui.core.sd_upscale import SdUpscaleArgs, sd_upscale
from sdui.errors import InvalidRequestError
from sdui.models.loading import load_sd_model
from sdui.request import Img2ImgRequest
from sdui.upscalers.upscaling import upscale_by
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.helpers import CPU32, Events
from tests.imaging.test_tiles import noise_image


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_sd_model(build_tiny_checkpoint(tmp_path_factory.mktemp("sdup") / "m.safetensors"), CPU32)


def request(**changes) -> Img2ImgRequest:
    fields = dict(prompt="a castle", seed=5, steps=2, width=64, height=64, sampler_name="Euler", cfg_scale=5.0)
    fields.update(init_images=[noise_image(64, 64, seed=1)], denoising_strength=0.6)
    return Img2ImgRequest(**{**fields, **changes})


def alone(model, tile: Image.Image, seed: int) -> np.ndarray:
    """The img2img of one tile by itself."""
    return np.asarray(process(request(init_images=[tile], seed=seed), model, policy=CPU32).images[0])


def test_each_tile_is_the_img2img_of_its_part_with_a1111s_seeds(model, tmp_path):
    args = SdUpscaleArgs(overlap=16, upscaler="Lanczos", scale=2.0)
    result = sd_upscale(request(), model, args=args, policy=CPU32, data_dir=tmp_path)
    (image,) = result.images
    assert image.size == (128, 128)  # 64x64 by 2; tiles at x, y = 0, 32, 64
    out = np.asarray(image)
    enlarged = upscale_by(noise_image(64, 64, seed=1), "Lanczos", 2.0)
    # the first tile alone covers the top-left 32x32; the third (seed 5 + 2) alone the top-right beyond x = 80
    assert np.array_equal(out[:32, :32], alone(model, enlarged.crop((0, 0, 64, 64)), 5)[:32, :32])
    assert np.array_equal(out[:32, 80:], alone(model, enlarged.crop((64, 0, 128, 64)), 7)[:32, 16:])

    text = image.info["parameters"]
    assert "Seed: 5," in text and "Size: 64x64" in text
    assert "SD upscale overlap: 16, SD upscale upscaler: Lanczos" in text
    assert result.seed == 5 and result.info == text
    (saved,) = result.saved_paths
    assert saved.is_file() and Image.open(saved).size == (128, 128)


def test_batches_of_tiles_start_one_seed_above_the_previous_batch(model):
    args = SdUpscaleArgs(overlap=16, upscaler="Lanczos", scale=2.0)
    result = sd_upscale(request(batch_size=2), model, args=args, policy=CPU32)
    out = np.asarray(result.images[0])
    enlarged = upscale_by(noise_image(64, 64, seed=1), "Lanczos", 2.0)
    # tiles 0, 1 get seeds 5, 6; tiles 2, 3 get 6, 7 (A1111 moves on by one seed per batch, not per image);
    # a UNet batch of 4 rounds differently from one of 2 (1e-6), so a pixel may differ by one level
    tile = alone(model, enlarged.crop((64, 0, 128, 64)), 6)[:32, 16:].astype(int)
    assert np.abs(out[:32, 80:].astype(int) - tile).max() <= 1


def test_an_interrupt_keeps_the_enlarged_pixels_where_tiles_were_not_made(model):
    events = Events(stop="interrupt", stop_after=2)  # the first tile's two steps, then stop
    args = SdUpscaleArgs(overlap=16, upscaler="Lanczos", scale=2.0)
    result = sd_upscale(request(), model, args=args, policy=CPU32, events=events)
    assert result.interrupted
    enlarged = np.asarray(upscale_by(noise_image(64, 64, seed=1), "Lanczos", 2.0))
    assert np.array_equal(np.asarray(result.images[0])[64:, 64:], enlarged[64:, 64:])


@pytest.mark.parametrize(
    "script_args, words",
    [
        (["", 64, "Lanczos", 2.0], "overlap (64) must be smaller than the tile"),
        (["", 8, "Bicubic++", 2.0], "unknown upscaler 'Bicubic++'"),
        (["", 8, 99, 2.0], "upscaler index 99 is out of range"),
        (["", -1, "Lanczos", 2.0], "overlap must be 0 to 256"),
        (["", 8, "Lanczos", float("nan")], "scale factor must be 1 to 16"),
        (["", 8, "Lanczos", 16.0], "512x512 scaled by 16 is 8192x8192, larger than the configured limit"),
        (["", 0, "Lanczos", 1.0], "128x128 tiles of 8x8 in batches of 1, 1 time(s), is 16384 img2img runs, more than"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(model, tmp_path, script_args, words):
    if "512x512" in words:
        big = request(init_images=[noise_image(512, 512)])
    elif "runs" in words:
        big = request(init_images=[noise_image(1024, 1024)], width=8, height=8)
    else:
        big = request()
    with pytest.raises(InvalidRequestError) as err:
        sd_upscale(big, model, args=SdUpscaleArgs.from_script_args(script_args), policy=CPU32, data_dir=tmp_path)
    assert words in err.value.message
    assert list(tmp_path.rglob("*")) == []


def test_script_args_take_names_or_indexes_and_default_like_a1111():
    assert SdUpscaleArgs.from_script_args(["", 8, "lanczos", 2]) == SdUpscaleArgs(8, "Lanczos", 2.0)
    assert SdUpscaleArgs.from_script_args(["", 8, 2, 3]) == SdUpscaleArgs(8, "Nearest", 3.0)
    assert SdUpscaleArgs.from_script_args([]) == SdUpscaleArgs(64, "None", 2.0)
