"""Every img2img-family mode: the same request twice gives the same pixels, and the infotext it writes (with the
same init image and mask, which no infotext carries) re-runs to the same pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdui.core.infotext_fields import request_fields
from sdui.core.processing import process
from sdui.infotext import parse_infotext
from sdui.models.loading import load_sd_model
from sdui.modes.outpaint import outpaint_request
from sdui.request import Img2ImgRequest, request_from_fields
from sdui.settings.snapshot import Settings
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.helpers import CPU32

OPTIONS = Settings.defaults()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("modes")
    return {
        "sd1": load_sd_model(build_tiny_checkpoint(root / "sd1.safetensors"), CPU32),
        "inpaint": load_sd_model(build_tiny_checkpoint(root / "inp.safetensors", variant="inpaint"), CPU32),
        "depth": load_sd_model(build_tiny_checkpoint(root / "depth.safetensors", arch="sd2", variant="depth"), CPU32),
    }


def picture(w=64, h=64) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    return Image.fromarray(np.stack([x * 255 // w, y * 255 // h, (x * y) % 256], -1).astype(np.uint8))


def mask() -> Image.Image:
    arr = np.zeros((64, 64), np.uint8)
    arr[12:40, 20:52] = 255
    return Image.fromarray(arr)


BASE = dict(
    prompt="a (small:1.2) boat\non a lake",
    negative_prompt="blur",
    seed=8,
    steps=5,
    cfg_scale=5.5,
    width=64,
    height=64,
    sampler_name="Euler a",
    init_images=[picture()],
    denoising_strength=0.6,
)
CASES = {
    "img2img": ("sd1", Img2ImgRequest(**BASE, resize_mode=1)),
    "inpaint-whole": ("sd1", Img2ImgRequest(**BASE, mask=mask(), mask_blur_x=3, mask_blur_y=3, inpainting_fill=0)),
    "inpaint-only-masked": (
        "inpaint",
        Img2ImgRequest(
            **BASE, mask=mask(), inpaint_full_res=True, inpaint_full_res_padding=4, inpainting_mask_invert=1
        ),
    ),
    "inpaint-latent-noise": ("sd1", Img2ImgRequest(**BASE, mask=mask(), inpainting_fill=2)),
    "outpaint": ("inpaint", outpaint_request(Img2ImgRequest(**{**BASE, "init_images": [picture(48, 64)]}), right=16)),
    "depth2img": ("depth", Img2ImgRequest(**BASE)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_request_same_pixels_and_infotext_reruns(models, case):
    model_key, request = CASES[case]
    model = models[model_key]
    first = process(request, model, policy=CPU32, settings=OPTIONS)
    again = process(request, model, policy=CPU32, settings=OPTIONS)
    assert np.array_equal(np.asarray(first.images[0]), np.asarray(again.images[0]))

    text = first.infotexts[0]
    assert "Denoising strength: 0.6" in text
    fields = request_fields(parse_infotext(text), mode="img2img")
    overrides = fields.pop("override_settings", {})
    # what an infotext cannot carry comes from the original request: the images, and the resize mode
    rerun_request = request_from_fields(
        Img2ImgRequest, fields, init_images=request.init_images, mask=request.mask, resize_mode=request.resize_mode
    )
    rerun = process(rerun_request, model, policy=CPU32, settings=OPTIONS.replace(overrides))
    assert np.array_equal(np.asarray(rerun.images[0]), np.asarray(first.images[0])), case
    assert rerun.infotexts[0] == text
