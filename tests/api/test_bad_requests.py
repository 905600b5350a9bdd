"""Client mistakes get a 4xx JSON answer that names the valid range, never a 500; the server keeps working, nothing
is written, and no number reaches code that would allocate for it."""

from __future__ import annotations

import base64
import functools
import io
import json
import warnings

import pytest
from PIL import Image

from tests.helpers import output_files, small


def b64_image(w: int = 64, h: int = 64) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (w, h), "red").save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@functools.cache
def huge_image() -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return b64_image(12000, 12000)


def post(client, route: str, raw: str):
    return client.post(f"/sdapi/v1/{route}", content=raw, headers={"content-type": "application/json"})


BASE = '"prompt": "x", "steps": 2, "width": 64, "height": 64'

TXT2IMG = [
    ('"denoising_strength": NaN, "enable_hr": true', "denoising_strength must be a finite number"),
    ('"hr_scale": Infinity, "enable_hr": true', "hr_scale must be a finite number"),
    ('"hr_scale": -2, "enable_hr": true', "hr_scale must be more than 0"),
    ('"cfg_scale": NaN', "cfg_scale must be a finite number"),
    ('"subseed_strength": 1.5', "must be between 0 and 1"),
    ('"seed": 100000000000000000000', "seed must be -1 (random) or a whole number between"),
    ('"seed": 9223372036854775808', "seed must be -1 (random) or a whole number between"),
    ('"seed": 9223372036854775807, "batch_size": 2', "seed must be -1 (random)"),
    ('"subseed": 100000000000000000000, "subseed_strength": 0.5', "subseed must be -1 (random)"),
    ('"seed_resize_from_h": 16777216, "seed_resize_from_w": 16777216', "seed resize from 16777216x16777216"),
    ('"steps": 100000', "steps must be between 1 and 1000"),
    ('"batch_size": 100000', "batch_size must be between 1 and 64"),
    ('"n_iter": 5000', "n_iter (batch count) must be between 1 and 1000"),
    ('"enable_hr": true, "hr_second_pass_steps": -1', "hr_second_pass_steps must be between 0 and 1000"),
    ('"enable_hr": true, "hr_resize_x": -64', "hires resize must be 0"),
    ('"eta": -1, "sampler_name": "DDIM"', "eta must be between 0 and 1000"),
    ('"s_churn": -0.5, "sampler_name": "Euler"', "s_churn must be between 0 and 1000"),
    (
        '"override_settings": {"eta_noise_seed_delta": 100000000000000000000000}',
        "'eta_noise_seed_delta' must be between",
    ),
    ('"override_settings": {"CLIP_stop_at_last_layers": NaN}', "CLIP_stop_at_last_layers"),
    ('"override_settings": {"eta_ddim": Infinity}', "'eta_ddim' expects a finite number"),
    ('"cfg_scale": 1180591620717411303424', "cfg_scale must be between -100 and 100"),  # found by the fuzzer
]


@pytest.mark.parametrize("fields, message", TXT2IMG)
def test_txt2img_mistakes_are_422_with_the_valid_range(served, fields, message):
    ctx, client = served
    before = output_files(ctx.paths.data_dir)
    response = post(client, "txt2img", "{" + BASE + ", " + fields + ', "save_images": true}')
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert output_files(ctx.paths.data_dir) == before
    assert client.post("/sdapi/v1/txt2img", json=small(steps=1)).status_code == 200  # still serving


IMG2IMG = [
    ({"mask": "MASK", "inpainting_fill": 7}, "inpainting_fill must be one of 0 (fill), 1 (original)"),
    ({"mask": "MASK", "mask_blur": -3}, "mask blur must be between 0 and 256"),
    ({"mask": "MASK", "mask_blur": 100000}, "mask blur must be between 0 and 256"),
    ({"mask": "MASK", "inpaint_full_res_padding": -3}, "inpaint_full_res_padding must be between 0 and 16384"),
    ({"mask": "MASK", "inpainting_mask_invert": 5}, "inpainting_mask_invert must be 0"),
    ({"denoising_strength": float("nan")}, "denoising_strength must be a finite number"),
    ({"resize_mode": 9}, "resize_mode must be 0"),
    ({"outpaint_left": 1000000}, "gives a 1000064x64 canvas, larger than the configured limit"),
    ({"outpaint_down": 935096}, "larger than the configured limit"),
    ({"outpaint_left": 8, "mask_blur": 10**9}, "mask blur must be between 0 and 256"),
]


@pytest.mark.parametrize("fields, message", IMG2IMG)
def test_img2img_mistakes_are_422_before_any_allocation(served, fields, message):
    ctx, client = served
    body = {"prompt": "x", "steps": 2, "width": 64, "height": 64, "init_images": [b64_image()], **fields}
    if body.get("mask") == "MASK":
        body["mask"] = b64_image()
    response = post(client, "img2img", json.dumps(body))
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]


@pytest.mark.parametrize(
    "route, field",
    [("img2img", "init_images"), ("img2img", "mask"), ("extra-single-image", "image"), ("png-info", "image")],
)
def test_an_oversized_image_is_refused_from_its_header(served, route, field):
    """12000x12000 is 144 Mpx: refused before its pixels are decoded (the answer names the header's size)."""
    _, client = served
    huge = huge_image()
    assert len(huge) < 1_000_000  # a small file: the cost would only come from decoding it
    body = {"prompt": "x", "steps": 2, "width": 64, "height": 64, "init_images": [b64_image()]}
    body[field] = [huge] if field == "init_images" else huge
    response = post(client, route, json.dumps(body))
    assert response.status_code == 422, response.text
    assert "The image is 12000x12000, larger than the configured limit" in response.json()["detail"]


def test_a_nan_setting_is_refused_and_options_stay_readable(served):
    _, client = served
    response = post(client, "options", '{"eta_ddim": NaN}')
    assert response.status_code == 422 and "finite" in response.json()["detail"]
    assert client.get("/sdapi/v1/options").status_code == 200


def test_an_override_checkpoint_given_as_a_number_is_a_name(served):
    _, client = served
    response = client.post("/sdapi/v1/txt2img", json=small(override_settings={"sd_model_checkpoint": 987654321}))
    assert response.status_code in (400, 404) and "987654321" in response.json()["detail"]


def test_a_folder_that_cannot_be_written_still_returns_the_images(served):
    """As on a full disk: the save fails, the client gets its images and a note naming the folder, no partial file."""
    ctx, client = served
    blocker = ctx.paths.data_dir / "not-a-folder"
    blocker.write_text("a file where the outputs folder should be")
    try:
        response = client.post(
            "/sdapi/v1/txt2img",
            json=small(
                save_images=True,
                override_settings={
                    "outdir_txt2img_samples": "not-a-folder/images",
                    "outdir_txt2img_grids": "not-a-folder/grids",
                },
            ),
        )
        assert response.status_code == 200, response.text
        assert len(response.json()["images"]) == 1
        notes = json.loads(response.json()["info"])["notes"]
        assert any(str(blocker / "images") in note and "unsaved" in note for note in notes), notes
        assert blocker.read_text().startswith("a file")
    finally:
        blocker.unlink()


def test_api_images_follow_samples_format(served):
    from sdui.imaging.pnginfo import read_info_from_image

    _, client = served
    for fmt, kind in (("jpg", "JPEG"), ("webp", "WEBP"), ("png", "PNG")):
        response = client.post("/sdapi/v1/txt2img", json=small(override_settings={"samples_format": fmt}))
        image = Image.open(io.BytesIO(base64.b64decode(response.json()["images"][0])))
        assert image.format == kind
        text, _ = read_info_from_image(image)
        assert text.startswith("a red cube\nNegative prompt: blurry\nSteps: 2"), fmt
