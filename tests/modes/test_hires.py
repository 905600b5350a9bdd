"""Hires fix: first pass, upscale, second img2img-like pass, through the one core."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionImg2ImgPipeline

from sdui.core.infotext_fields import request_fields
from sdui.core.processing import process
from sdui.errors import InvalidRequestError
from sdui.infotext import parse_infotext
from sdui.models.loading import load_sd_model
from sdui.request import GenerationRequest, request_from_fields
from sdui.settings.snapshot import Settings
from sdui.upscalers import upscaling
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.fixtures.diffusers_reference import a1111_sigmas, euler_scheduler, keep_latents
from tests.helpers import CPU32, Events, process_with_latents

OPTIONS = Settings.defaults(samples_save=False)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_sd_model(build_tiny_checkpoint(tmp_path_factory.mktemp("hr") / "m.safetensors"), CPU32)


def hr_request(**fields) -> GenerationRequest:
    base = dict(
        prompt="a lighthouse",
        negative_prompt="fog",
        seed=21,
        steps=5,
        cfg_scale=5.0,
        width=64,
        height=64,
        sampler_name="Euler",
        enable_hr=True,
        hr_scale=2.0,
        denoising_strength=0.5,
    )
    base.update(fields)
    return GenerationRequest(**base)


@pytest.mark.slow  # fidelity: equality with a diffusers pipeline
def test_latent_hires_equals_first_pass_then_diffusers_img2img(model):
    """The second pass is img2img on the upscaled first-pass latents: diffusers' img2img pipeline, given those
    latents, the same scheduler, schedule and noise seed, must land on the same latents."""
    request = hr_request()
    result, result_latents = process_with_latents(request, model, policy=CPU32, settings=OPTIONS)
    assert result.images[0].size == (128, 128)

    first, first_latents = process_with_latents(
        dataclasses.replace(request, enable_hr=False), model, policy=CPU32, settings=OPTIONS
    )
    upscaled = upscaling.upscale_latent(first_latents, "Latent", 16, 16)
    # A1111's second pass always stretches the schedule ("fix steps"): int(5 / 0.5) = 10 steps, the last 5 run
    steps = int(request.steps / request.denoising_strength)
    pipe = StableDiffusionImg2ImgPipeline(
        vae=model.vae,
        unet=model.unet,
        text_encoder=model.text_encoders[0],
        tokenizer=model.tokenizers[0],
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        scheduler=euler_scheduler(model),
    )
    captured = {}
    pipe(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        image=upscaled,
        strength=(request.steps + 0.5) / steps,
        guidance_scale=request.cfg_scale,
        generator=[torch.Generator().manual_seed(request.seed)],
        callback_on_step_end=keep_latents(captured),
        sigmas=a1111_sigmas(model, steps),
    )
    scale = captured["latents"].abs().max().item()
    assert (result_latents - captured["latents"]).abs().max().item() <= 1e-4 * scale

    text = result.infotexts[0]
    for part in ("Size: 64x64", "Denoising strength: 0.5", "Hires upscale: 2.0", "Hires upscaler: Latent"):
        assert part in text


def test_pixel_upscaler_resize_to_and_second_pass_options(model):
    result, result_latents = process_with_latents(
        hr_request(
            hr_upscaler="Lanczos",
            hr_resize_x=96,
            hr_resize_y=80,
            hr_second_pass_steps=3,
            hr_sampler_name="DPM++ 2M",
            hr_scheduler="Karras",
            hr_prompt="a lighthouse, night",
        ),
        model,
        policy=CPU32,
        settings=OPTIONS,
    )
    assert result.images[0].size == (96, 80)
    text = result.infotexts[0]
    for part in (
        "Hires resize: 96x80",
        "Hires steps: 3",
        "Hires upscaler: Lanczos",
        "Hires sampler: DPM++ 2M",
        "Hires schedule type: Karras",
        'Hires prompt: "a lighthouse, night"',
    ):
        assert part in text


def test_hires_infotext_reproduces_the_image(model):
    result, result_latents = process_with_latents(
        hr_request(hr_upscaler="Latent (nearest-exact)", hr_second_pass_steps=2), model, policy=CPU32, settings=OPTIONS
    )
    fields = request_fields(parse_infotext(result.infotexts[0]))
    assert fields["enable_hr"] is True
    rerun = process(request_from_fields(GenerationRequest, fields), model, policy=CPU32, settings=OPTIONS)
    assert np.array_equal(np.asarray(rerun.images[0]), np.asarray(result.images[0]))


def test_progress_counts_both_passes(model):
    events = Events()
    process(
        hr_request(steps=4, hr_second_pass_steps=4, denoising_strength=0.5),
        model,
        policy=CPU32,
        settings=OPTIONS,
        events=events,
    )
    # second pass: A1111 stretches its schedule to int(4 / 0.5) = 8 steps so that the 4 asked for run
    assert events.batches_announced == [(1, 4 + 4)] and events.steps == [(i, 8) for i in range(1, 9)]


def test_bad_hires_settings_are_refused(model):
    with pytest.raises(InvalidRequestError) as err:
        process(hr_request(hr_upscaler="Nope"), model, policy=CPU32, settings=OPTIONS)
    assert "Nope" in err.value.message and "Lanczos" in err.value.message
    with pytest.raises(InvalidRequestError) as err:
        process(hr_request(hr_scale=100), model, policy=CPU32, settings=OPTIONS)
    assert "max_image_pixels" in err.value.message
