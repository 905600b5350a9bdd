"""Tiled VAE in real jobs: the setting `tiled_vae_megapixels` reaches the job's VAE, which decodes (txt2img) and
encodes (img2img) big images in tiles of the VAE's own size (sample_size 512 for SD1: at most 64 latents, overlap
16; a 768x512 image is two tiles of 448x512 px)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from sdui.core.patches import vae_tiling
from sdui.core.processing import process
from sdui.imaging.vae import decode, to_pil
from sdui.imaging.vae_tiles import NEVER, VaeTiling
from sdui.models.loading import load_sd_model
from sdui.request import GenerationRequest, Img2ImgRequest
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.helpers import CPU32, process_with_latents, settings

TILED = settings(tiled_vae_megapixels=0.1)  # 768x512 is 0.39 megapixels
BIG = {"prompt": "a red cube", "seed": 3, "steps": 2, "width": 768, "height": 512, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_sd_model(build_tiny_checkpoint(tmp_path_factory.mktemp("tiledvae") / "m.safetensors"), CPU32)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=int)


def test_the_setting_becomes_the_jobs_threshold_and_seamless_tiling_turns_it_off():
    def run(megapixels, seamless=False):
        return SimpleNamespace(
            request=SimpleNamespace(tiling=seamless), settings=settings(tiled_vae_megapixels=megapixels)
        )

    assert vae_tiling(run(4.0)) == VaeTiling(above_pixels=4_000_000)
    assert vae_tiling(run(0.0)) == NEVER and not vae_tiling(run(0.0)).applies(8192, 8192)
    # a tile's circular padding would wrap around the tile, not the image: the texture would no longer wrap
    assert vae_tiling(run(4.0, seamless=True)) == NEVER
    assert settings().tiled_vae_megapixels == 4.0  # the default: 2048x2048 (4.2) is tiled, 1536x1536 (2.4) is not


@pytest.mark.slow
def test_a_big_txt2img_is_decoded_in_tiles_close_to_the_untiled_decode(model):
    tiled_job, final = process_with_latents(GenerationRequest(**BIG), model, settings=TILED)
    image = pixels(tiled_job.images[0])
    untiled = pixels(to_pil(decode(model.vae, final[:1]))[0])
    assert np.array_equal(image, pixels(to_pil(decode(model.vae, final[:1], VaeTiling(above_pixels=1)))[0]))
    assert not np.array_equal(image, untiled)  # it was tiled ...
    assert np.abs(image - untiled).mean() <= 2  # ... and is close (measured: 0.93 levels of 255, at most 7)
    # the same job under the default threshold decodes as before, bit for bit
    default_job = process(GenerationRequest(**BIG), model, policy=CPU32, settings=settings())
    assert np.array_equal(pixels(default_job.images[0]), untiled)


@pytest.mark.slow
def test_a_big_img2img_is_encoded_in_tiles_close_to_the_untiled_encode(model):
    rng = np.random.default_rng(0)
    gradient = np.linspace(0, 255, 768)[None, :, None] * np.ones((512, 1, 3))
    init = Image.fromarray((gradient * 0.8 + rng.integers(0, 50, (512, 768, 3))).astype(np.uint8))
    request = Img2ImgRequest(**BIG, init_images=[init], denoising_strength=0.5)
    tiled = pixels(process(request, model, policy=CPU32, settings=TILED).images[0])
    untiled = pixels(process(request, model, policy=CPU32, settings=settings()).images[0])
    assert not np.array_equal(tiled, untiled)
    assert np.abs(tiled - untiled).mean() <= 2  # measured (encoded and decoded in tiles): 0.92 of 255, at most 7
