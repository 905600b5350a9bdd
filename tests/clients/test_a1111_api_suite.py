"""AUTOMATIC1111's own API tests (its test/ folder: test_txt2img, test_img2img, test_extras, test_utils), with the
same payloads, sent over HTTP to our server; where A1111's tests stop at the status code, these also check every
field of the answer against A1111's response models (modules/api/models.py)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import requests
from PIL import Image

pytestmark = pytest.mark.slow  # a real server, about 50 generations


# A1111's payloads send "eta": 0 with "Euler a". Each generation test runs twice: with A1111's payload exactly, and
# with eta left out (then the eta_ancestral setting, 1, applies).
def eta_variant(request, payload: dict) -> dict:
    if request.param != "a1111-eta0":
        del payload["eta"]
    return payload


# A1111's response models: field -> type
TEXT_TO_IMAGE_RESPONSE = {"images": list, "parameters": dict, "info": str}
EXTRAS_SINGLE_RESPONSE = {"html_info": str, "image": str}
PNG_INFO_RESPONSE = {"info": str, "items": dict, "parameters": dict}
# Processed.js() keys, the `info` JSON string
INFO_KEYS = {
    "prompt", "all_prompts", "negative_prompt", "all_negative_prompts", "seed", "all_seeds", "subseed",
    "all_subseeds", "subseed_strength", "width", "height", "sampler_name", "cfg_scale", "steps", "batch_size",
    "restore_faces", "face_restoration_model", "sd_model_name", "sd_model_hash", "sd_vae_name", "sd_vae_hash",
    "seed_resize_from_w", "seed_resize_from_h", "denoising_strength", "extra_generation_params",
    "index_of_first_image", "infotexts", "styles", "job_timestamp", "clip_skip", "is_using_inpainting_conditioning",
    "version",
}  # fmt: skip
LIST_ITEM_FIELDS = {
    "sdapi/v1/samplers": {"name", "aliases", "options"},
    "sdapi/v1/upscalers": {"name", "model_name", "model_path", "model_url", "scale"},
    "sdapi/v1/sd-models": {"title", "model_name", "hash", "sha256", "filename", "config"},
    "sdapi/v1/prompt-styles": {"name", "prompt", "negative_prompt"},
}


def b64_png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def decoded(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


@pytest.fixture(scope="module")
def img2img_basic_image_base64():
    pixels = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return b64_png(Image.fromarray(pixels))


@pytest.fixture(scope="module")
def mask_basic_image_base64():
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    return b64_png(mask)


def assert_model(body: dict, model: dict) -> None:
    assert set(body) >= set(model), set(model) - set(body)
    for field, kind in model.items():
        assert isinstance(body[field], kind), (field, body[field])


def assert_generation(response: requests.Response, count: int, size: tuple[int, int]) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    assert_model(body, TEXT_TO_IMAGE_RESPONSE)
    assert len(body["images"]) == count
    for image in body["images"]:
        assert decoded(image).size == size
    info = json.loads(body["info"])
    assert set(info) >= INFO_KEYS, INFO_KEYS - set(info)
    return info


# ------------------------------------------------------------------------------------------------- test_txt2img


@pytest.fixture()
def url_txt2img(live_server):
    return f"{live_server.url}/sdapi/v1/txt2img"


@pytest.fixture(params=["a1111-eta0", "eta-default"])
def simple_txt2img_request(request):
    return eta_variant(
        request,
        {
            "batch_size": 1,
            "cfg_scale": 7,
            "denoising_strength": 0,
            "enable_hr": False,
            "eta": 0,
            "firstphase_height": 0,
            "firstphase_width": 0,
            "height": 64,
            "n_iter": 1,
            "negative_prompt": "",
            "prompt": "example prompt",
            "restore_faces": False,
            "s_churn": 0,
            "s_noise": 1,
            "s_tmax": 0,
            "s_tmin": 0,
            "sampler_index": "Euler a",
            "seed": -1,
            "seed_resize_from_h": -1,
            "seed_resize_from_w": -1,
            "steps": 3,
            "styles": [],
            "subseed": -1,
            "subseed_strength": 0,
            "tiling": False,
            "width": 64,
        },
    )


def test_txt2img_simple_performed(url_txt2img, simple_txt2img_request):
    info = assert_generation(requests.post(url_txt2img, json=simple_txt2img_request), 1, (64, 64))
    assert info["sampler_name"] == "Euler a" and info["steps"] == 3 and 0 <= info["seed"] < 2**32


def test_txt2img_with_negative_prompt_performed(url_txt2img, simple_txt2img_request):
    simple_txt2img_request["negative_prompt"] = "example negative prompt"
    info = assert_generation(requests.post(url_txt2img, json=simple_txt2img_request), 1, (64, 64))
    assert info["negative_prompt"] == "example negative prompt"


def test_txt2img_with_complex_prompt_performed(url_txt2img, simple_txt2img_request):
    simple_txt2img_request["prompt"] = "((emphasis)), (emphasis1:1.1), [to:1], [from::2], [from:to:0.3], [alt|alt1]"
    info = assert_generation(requests.post(url_txt2img, json=simple_txt2img_request), 1, (64, 64))
    assert info["prompt"] == simple_txt2img_request["prompt"]


def test_txt2img_not_square_image_performed(url_txt2img, simple_txt2img_request):
    simple_txt2img_request["height"] = 128
    assert_generation(requests.post(url_txt2img, json=simple_txt2img_request), 1, (64, 128))


def test_txt2img_with_hrfix_performed(url_txt2img, simple_txt2img_request):
    simple_txt2img_request["enable_hr"] = True
    info = assert_generation(requests.post(url_txt2img, json=simple_txt2img_request), 1, (128, 128))
    assert "Hires upscale: 2" in info["infotexts"][0]


def test_txt2img_with_tiling_performed(url_txt2img, simple_txt2img_request):
    simple_txt2img_request["tiling"] = True
    info = assert_generation(requests.post(url_txt2img, json=simple_txt2img_request), 1, (64, 64))
    assert "Tiling: True" in info["infotexts"][0]


def test_txt2img_with_restore_faces_performed(url_txt2img, simple_txt2img_request):
    simple_txt2img_request["restore_faces"] = True  # no face restorer is installed: generated without, as A1111
    assert_generation(requests.post(url_txt2img, json=simple_txt2img_request), 1, (64, 64))


@pytest.mark.parametrize("sampler", ["PLMS", "DDIM", "UniPC"])
def test_txt2img_with_vanilla_sampler_performed(url_txt2img, simple_txt2img_request, sampler):
    simple_txt2img_request["sampler_index"] = sampler
    info = assert_generation(requests.post(url_txt2img, json=simple_txt2img_request), 1, (64, 64))
    assert info["sampler_name"] == sampler


def test_txt2img_multiple_batches_performed(url_txt2img, simple_txt2img_request):
    simple_txt2img_request["n_iter"] = 2
    # without save_images A1111's API makes no grid (do_not_save_grid), so the two images alone come back
    info = assert_generation(requests.post(url_txt2img, json=simple_txt2img_request), 2, (64, 64))
    assert info["index_of_first_image"] == 0 and info["all_seeds"][1] == info["all_seeds"][0] + 1


def test_txt2img_batch_performed(url_txt2img, simple_txt2img_request):
    simple_txt2img_request["batch_size"] = 2
    info = assert_generation(requests.post(url_txt2img, json=simple_txt2img_request), 2, (64, 64))
    assert info["batch_size"] == 2 and len(info["all_seeds"]) == 2
    simple_txt2img_request["save_images"] = True  # now the grid is made, saved and returned first
    response = requests.post(url_txt2img, json=simple_txt2img_request)
    assert response.status_code == 200 and len(response.json()["images"]) == 3
    grid, *images = (decoded(image) for image in response.json()["images"])
    assert grid.size == (128, 64) and [image.size for image in images] == [(64, 64)] * 2
    assert json.loads(response.json()["info"])["index_of_first_image"] == 1


# ------------------------------------------------------------------------------------------------- test_img2img


@pytest.fixture()
def url_img2img(live_server):
    return f"{live_server.url}/sdapi/v1/img2img"


@pytest.fixture(params=["a1111-eta0", "eta-default"])
def simple_img2img_request(request, img2img_basic_image_base64):
    return eta_variant(
        request,
        {
            "batch_size": 1,
            "cfg_scale": 7,
            "denoising_strength": 0.75,
            "eta": 0,
            "height": 64,
            "include_init_images": False,
            "init_images": [img2img_basic_image_base64],
            "inpaint_full_res": False,
            "inpaint_full_res_padding": 0,
            "inpainting_fill": 0,
            "inpainting_mask_invert": False,
            "mask": None,
            "mask_blur": 4,
            "n_iter": 1,
            "negative_prompt": "",
            "override_settings": {},
            "prompt": "example prompt",
            "resize_mode": 0,
            "restore_faces": False,
            "s_churn": 0,
            "s_noise": 1,
            "s_tmax": 0,
            "s_tmin": 0,
            "sampler_index": "Euler a",
            "seed": -1,
            "seed_resize_from_h": -1,
            "seed_resize_from_w": -1,
            "steps": 3,
            "styles": [],
            "subseed": -1,
            "subseed_strength": 0,
            "tiling": False,
            "width": 64,
        },
    )


def test_img2img_simple_performed(url_img2img, simple_img2img_request):
    response = requests.post(url_img2img, json=simple_img2img_request)
    info = assert_generation(response, 1, (64, 64))
    assert info["denoising_strength"] == 0.75
    assert response.json()["parameters"]["init_images"] is None  # include_init_images false: not echoed


def test_inpainting_masked_performed(url_img2img, simple_img2img_request, mask_basic_image_base64):
    simple_img2img_request["mask"] = mask_basic_image_base64
    response = requests.post(url_img2img, json=simple_img2img_request)
    assert_generation(response, 1, (64, 64))
    out = np.asarray(decoded(response.json()["images"][0]).convert("RGB")).astype(int)
    source = np.asarray(decoded(simple_img2img_request["init_images"][0]).convert("RGB")).astype(int)
    assert np.array_equal(out[:8, :8], source[:8, :8])  # far outside the blurred mask: the original, untouched
    assert not np.array_equal(out[28:36, 28:36], source[28:36, 28:36])


def test_inpainting_with_inverted_masked_performed(url_img2img, simple_img2img_request, mask_basic_image_base64):
    simple_img2img_request["mask"] = mask_basic_image_base64
    simple_img2img_request["inpainting_mask_invert"] = True
    response = requests.post(url_img2img, json=simple_img2img_request)
    assert_generation(response, 1, (64, 64))
    out = np.asarray(decoded(response.json()["images"][0]).convert("RGB")).astype(int)
    source = np.asarray(decoded(simple_img2img_request["init_images"][0]).convert("RGB")).astype(int)
    assert np.array_equal(out[28:36, 28:36], source[28:36, 28:36])  # inverted: the square is kept


def test_img2img_sd_upscale_performed(url_img2img, simple_img2img_request):
    simple_img2img_request["script_name"] = "sd upscale"
    simple_img2img_request["script_args"] = ["", 8, "Lanczos", 2.0]
    info = assert_generation(requests.post(url_img2img, json=simple_img2img_request), 1, (128, 128))
    assert "SD upscale overlap: 8, SD upscale upscaler: Lanczos" in info["infotexts"][0]


# -------------------------------------------------------------------------------------------------- test_extras


def test_simple_upscaling_performed(live_server, img2img_basic_image_base64):
    payload = {
        "resize_mode": 0,
        "show_extras_results": True,
        "gfpgan_visibility": 0,
        "codeformer_visibility": 0,
        "codeformer_weight": 0,
        "upscaling_resize": 2,
        "upscaling_resize_w": 128,
        "upscaling_resize_h": 128,
        "upscaling_crop": True,
        "upscaler_1": "Lanczos",
        "upscaler_2": "None",
        "extras_upscaler_2_visibility": 0,
        "image": img2img_basic_image_base64,
    }
    response = requests.post(f"{live_server.url}/sdapi/v1/extra-single-image", json=payload)
    assert response.status_code == 200, response.text
    assert_model(response.json(), EXTRAS_SINGLE_RESPONSE)
    assert decoded(response.json()["image"]).size == (128, 128)


def test_png_info_performed(live_server, img2img_basic_image_base64):
    # A1111's test of this name posts to extra-single-image with the image alone: upscaler_1 defaults to "None",
    # so the image comes back as it was
    payload = {"image": img2img_basic_image_base64}
    response = requests.post(f"{live_server.url}/sdapi/v1/extra-single-image", json=payload)
    assert response.status_code == 200, response.text
    assert decoded(response.json()["image"]).size == (64, 64)


def test_interrogate_performed(live_server, img2img_basic_image_base64):
    # as above: "model" is not a field of extra-single-image, and is ignored as A1111 ignores it
    payload = {"image": img2img_basic_image_base64, "model": "clip"}
    response = requests.post(f"{live_server.url}/sdapi/v1/extra-single-image", json=payload)
    assert response.status_code == 200, response.text
    assert_model(response.json(), EXTRAS_SINGLE_RESPONSE)


def test_png_info_route_reads_what_txt2img_wrote(live_server, url_txt2img, simple_txt2img_request):
    image = requests.post(url_txt2img, json=simple_txt2img_request).json()["images"][0]
    response = requests.post(f"{live_server.url}/sdapi/v1/png-info", json={"image": image})
    assert response.status_code == 200
    body = response.json()
    assert_model(body, PNG_INFO_RESPONSE)
    assert body["parameters"]["Prompt"] == "example prompt" and body["parameters"]["Steps"] == "3"  # text, as A1111


# --------------------------------------------------------------------------------------------------- test_utils


def test_options_write(live_server):
    url_options = f"{live_server.url}/sdapi/v1/options"
    response = requests.get(url_options)
    assert response.status_code == 200
    pre_value = response.json()["send_seed"]
    assert requests.post(url_options, json={"send_seed": (not pre_value)}).status_code == 200
    response = requests.get(url_options)
    assert response.status_code == 200
    assert response.json()["send_seed"] == (not pre_value)
    assert requests.post(url_options, json={"send_seed": pre_value}).status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "sdapi/v1/cmd-flags",
        "sdapi/v1/samplers",
        "sdapi/v1/upscalers",
        "sdapi/v1/sd-models",
        "sdapi/v1/hypernetworks",
        "sdapi/v1/face-restorers",
        "sdapi/v1/realesrgan-models",
        "sdapi/v1/prompt-styles",
        "sdapi/v1/embeddings",
    ],
)
def test_get_api_url(live_server, url):
    response = requests.get(f"{live_server.url}/{url}")
    assert response.status_code == 200
    body = response.json()
    if url in LIST_ITEM_FIELDS:
        assert body, url
        for item in body:
            assert set(item) == LIST_ITEM_FIELDS[url], (url, item)
    elif url.endswith("embeddings"):
        assert set(body) == {"loaded", "skipped"}
    elif url.endswith("cmd-flags"):
        assert body["nowebui"] is True and body["port"] is None and body["listen"] is False
    else:
        assert isinstance(body, list)
