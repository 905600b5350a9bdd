"""The real `webuiapi` client (PyPI, 0.9.17), every method that maps to an /sdapi/v1 route, against a live server.

Each test is one of the client's flows as its README shows them; results are checked as its users would read them
(PIL images, info dicts), plus what the server did (files, settings)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import webuiapi
from PIL import Image, PngImagePlugin

from tests.helpers import BUILT_IN_SCRIPTS

pytestmark = pytest.mark.slow  # a real server


@pytest.fixture(scope="module")
def api(live_server):
    return webuiapi.WebUIApi(host="127.0.0.1", port=live_server.port, sampler="Euler a", steps=2)


def noise(width: int = 64, height: int = 64, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_txt2img_returns_images_and_the_info_dict(api):
    result = api.txt2img(prompt="a lighthouse", negative_prompt="fog", seed=42, width=64, height=64, cfg_scale=5)
    assert result.image.size == (64, 64) and len(result.images) == 1
    assert result.info["seed"] == 42 and result.info["all_seeds"] == [42]
    assert result.info["sampler_name"] == "Euler a" and result.info["steps"] == 2
    assert "Negative prompt: fog" in result.info["infotexts"][0]
    assert result.parameters["prompt"] == "a lighthouse"
    again = api.txt2img(prompt="a lighthouse", negative_prompt="fog", seed=42, width=64, height=64, cfg_scale=5)
    assert np.array_equal(np.asarray(again.image), np.asarray(result.image))  # same seed, same pixels


def test_txt2img_with_hires_fix_and_the_clients_upscaler_names(api):
    for upscaler in (webuiapi.HiResUpscaler.Latent, webuiapi.HiResUpscaler.Lanczos, webuiapi.HiResUpscaler.none):
        result = api.txt2img(
            prompt="x", seed=1, width=64, height=64, enable_hr=True, hr_scale=1.5, hr_upscaler=upscaler,
            denoising_strength=0.5, hr_second_pass_steps=1,
        )  # fmt: skip
        assert result.image.size == (96, 96), upscaler
        assert f"Hires upscaler: {upscaler.value}" in result.info["infotexts"][0]


def test_a_model_upscaler_without_its_file_is_a_clear_client_error(api):
    with pytest.raises(RuntimeError) as err:
        api.txt2img(prompt="x", width=64, height=64, enable_hr=True, hr_upscaler=webuiapi.HiResUpscaler.ESRGAN_4x)
    status, text = err.value.args
    assert status == 422 and "R-ESRGAN 4x+" in text and "Lanczos" in text


def test_txt2img_batch_and_saving(api, live_server):
    result = api.txt2img(prompt="x", seed=7, width=64, height=64, batch_size=2, save_images=True)
    assert len(result.images) == 3 and result.images[0].size == (128, 64)  # grid first, as A1111
    assert result.info["all_seeds"] == [7, 8]
    saved = sorted((live_server.ctx.paths.data_dir / "outputs" / "txt2img-images").rglob("*-7.png"))
    assert saved and Image.open(saved[-1]).info["parameters"].startswith("x\n")


def test_img2img_and_inpainting(api):
    source = noise()
    result = api.img2img(images=[source], prompt="x", seed=3, width=64, height=64, denoising_strength=0.5)
    assert result.image.size == (64, 64) and result.info["denoising_strength"] == 0.5
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))
    inpainted = api.img2img(
        images=[source], mask_image=mask, prompt="x", seed=3, width=64, height=64, inpaint_full_res=False,
        mask_blur=0, denoising_strength=0.9,
    )  # fmt: skip
    out = np.asarray(inpainted.image.convert("RGB"))
    assert np.array_equal(out[:, 40:], np.asarray(source)[:, 40:])  # outside the mask: the source's pixels
    assert not np.array_equal(out[:, :24], np.asarray(source)[:, :24])


def test_extras_single_and_batch(api):
    single = api.extra_single_image(image=noise(32, 16), upscaler_1="Lanczos", upscaling_resize=2)
    assert single.image.size == (64, 32)
    batch = api.extra_batch_images(images=[noise(32, 16), noise(16, 16, 1)], upscaler_1="Nearest", upscaling_resize=3)
    assert [image.size for image in batch.images] == [(96, 48), (48, 48)]


def test_png_info_of_a_generated_image(api, tmp_path):
    generated = api.txt2img(prompt="a red fox", seed=11, width=64, height=64).image
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", generated.info["parameters"])
    generated.save(tmp_path / "fox.png", pnginfo=info)
    result = api.png_info(Image.open(tmp_path / "fox.png"))
    assert result.info.startswith("a red fox\n") and "Seed: 11" in result.info
    assert result.parameters["Seed"] == "11"


def test_interrogate_without_its_model_says_which_files_are_missing(api):
    with pytest.raises(RuntimeError) as err:
        api.interrogate(noise(), model="clip")
    status, text = err.value.args
    assert 400 <= status < 500 and "models/" in text


def test_options_get_set_and_the_model_utilities(api, live_server):
    options = api.get_options()
    assert options["samples_format"] == "png" and "sd_model_checkpoint" in options
    api.set_options({"jpeg_quality": 77, "send_seed": False})
    assert api.get_options()["jpeg_quality"] == 77 and api.get_options()["send_seed"] is False
    names = api.util_get_model_names()
    assert len(names) == 1 and names[0].startswith("tiny.safetensors")
    api.util_set_model("tiny")  # the client picks the closest title and posts it as sd_model_checkpoint
    assert api.util_get_current_model().startswith("tiny.safetensors [")
    api.util_wait_for_ready(check_interval=0.1)  # returns once progress reports an idle server
    api.set_options({"jpeg_quality": 80, "send_seed": True})


def test_listings(api):
    assert "Euler a" in api.util_get_sampler_names() and "DPM++ 2M" in api.util_get_sampler_names()
    assert "Automatic" in [s["label"] for s in api.get_schedulers()]
    assert {"Karras", "Uniform"} <= {s["label"] for s in api.get_schedulers()}
    assert [u["name"] for u in api.get_upscalers()][:3] == ["None", "Lanczos", "Nearest"]
    assert "Latent (nearest-exact)" in [m["name"] for m in api.get_latent_upscale_modes()]
    assert api.get_sd_vae() == [] and api.get_loras() == [] and api.get_hypernetworks() == []
    assert api.get_face_restorers() == [] and api.get_realesrgan_models() == []
    assert api.get_prompt_styles() == [
        {"name": "Cinematic", "prompt": "{prompt}, film grain", "negative_prompt": "blurry"}
    ]
    assert api.get_embeddings() == {"loaded": {}, "skipped": {}}
    assert api.get_scripts() == BUILT_IN_SCRIPTS
    assert api.get_cmd_flags()["nowebui"] is True
    assert set(api.get_memory()) == {"ram", "cuda"}
    api.refresh_checkpoints()
    assert api.get_sd_models()[0]["model_name"] == "tiny"


def test_img2img_sd_upscale_through_the_client(api):
    result = api.img2img(
        images=[noise()], prompt="x", seed=2, width=64, height=64, denoising_strength=0.3,
        script_name="SD upscale", script_args=[None, 16, "Lanczos", 1.5],
    )  # fmt: skip
    assert result.image.size == (96, 96)
    assert "SD upscale upscaler: Lanczos" in result.info["infotexts"][0]


def test_progress_interrupt_and_skip_during_a_generation(api):
    outcome = {}

    def generate():
        outcome["result"] = api.txt2img(prompt="x", seed=5, width=64, height=64, steps=200, n_iter=3)

    worker = threading.Thread(target=generate)
    worker.start()
    deadline = time.monotonic() + 60
    while api.get_progress()["state"]["sampling_step"] < 1:  # this client's job is sampling its first batch
        assert time.monotonic() < deadline
    api.skip()  # the first batch ends early; the job goes on
    api.interrupt()  # and now it stops
    worker.join(120)
    result = outcome["result"]
    assert 1 <= len(result.images) <= 2  # what was made before the interrupt is returned
    state = api.get_progress()
    assert state["progress"] == 0 and state["state"]["job_count"] == 0
