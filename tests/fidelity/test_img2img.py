"""img2img through our one core against diffusers' StableDiffusionImg2ImgPipeline, same weights, noise and schedule.

A1111's step rule (t_enc = int(strength * steps); the last t_enc + 1 steps of the full schedule run) is given to
the reference as the same sigma list plus the strength that makes diffusers start at the same step.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionImg2ImgPipeline
from PIL import Image

from sdui.core.processing import process
from sdui.imaging import vae as vae_io
from sdui.imaging.image_ops import image_to_tensor
from sdui.models.loading import load_sd_model
from sdui.modes import img2img
from sdui.request import Img2ImgRequest
from sdui.settings.snapshot import Settings
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.helpers import CPU32, Events, process_with_latents

pytestmark = pytest.mark.slow  # fidelity: equality with diffusers' pipelines

OPTIONS = Settings.defaults(samples_save=False)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_sd_model(build_tiny_checkpoint(tmp_path_factory.mktemp("i2i") / "sd1.safetensors"), CPU32)


def init_image(w=64, h=64) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h)], -1).astype(np.uint8)
    return Image.fromarray(rgb)


def reference(model, request: Img2ImgRequest):
    from sdui.core.samplers import build_scheduler

    steps, to_run = img2img.schedule_steps(request, fix_steps=False)
    setup = build_scheduler(
        request.sampler_name, request.scheduler, steps, model.scheduler_config, seeds=[request.seed]
    )
    pipe = StableDiffusionImg2ImgPipeline(
        vae=model.vae,
        unet=model.unet,
        text_encoder=model.text_encoders[0],
        tokenizer=model.tokenizers[0],
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        scheduler=type(setup.scheduler).from_config(setup.scheduler.config),
    )
    # the init image as latents (diffusers takes 4-channel input as ready latents): our encoder's posterior mean
    latents = vae_io.encode(model.vae, image_to_tensor(request.init_images))
    generators = [torch.Generator().manual_seed(request.seed)]
    captured = {}

    def keep(_pipe, _i, _t, tensors):
        captured["latents"] = tensors["latents"]
        return tensors

    image = pipe(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        image=latents,
        strength=(to_run + 0.5) / steps,
        guidance_scale=request.cfg_scale,
        generator=generators,
        callback_on_step_end=keep,
        **setup.pipeline_kwargs,
    ).images[0]
    return image, captured["latents"]


@pytest.mark.parametrize(
    "sampler,schedule",
    [("Euler", "Automatic"), ("Euler a", "Automatic"), ("DPM++ 2M", "Karras"), ("DDIM", "Automatic")],
)
@pytest.mark.parametrize("strength", [0.5, 0.75])
def test_img2img_equals_diffusers(model, sampler, schedule, strength):
    request = Img2ImgRequest(
        prompt="a watercolor of a harbour",
        negative_prompt="blurry",
        seed=321,
        sampler_name=sampler,
        scheduler=schedule,
        steps=8,
        cfg_scale=6.0,
        width=64,
        height=64,
        init_images=[init_image()],
        denoising_strength=strength,
    )
    result, result_latents = process_with_latents(request, model, policy=CPU32, settings=OPTIONS)
    theirs, their_latents = reference(model, request)
    scale = their_latents.abs().max().item()
    assert (result_latents - their_latents).abs().max().item() <= 1e-4 * scale
    ours = np.asarray(result.images[0], dtype=np.int16)
    assert np.abs(ours - np.asarray(theirs, dtype=np.int16)).max() <= 1
    assert "Denoising strength: " + str(strength) in result.infotexts[0]


def test_a1111_step_count(model):
    """steps 20, strength 0.75 -> 16 steps run (t_enc 15 + 1), starting at index 4 of the 20-step schedule."""
    request = Img2ImgRequest(
        prompt="x",
        steps=20,
        denoising_strength=0.75,
        init_images=[init_image()],
        width=64,
        height=64,
        sampler_name="Euler",
    )
    assert img2img.schedule_steps(request, fix_steps=False) == (20, 16)
    assert img2img.schedule_steps(request, fix_steps=True) == (26, 20)

    events = Events()
    process(request, model, policy=CPU32, settings=OPTIONS, events=events)
    assert events.batches_announced == [(1, 16)] and events.steps[-1] == (16, 16)


def test_strength_zero_keeps_the_image_close_and_one_ignores_it(model):
    base = dict(prompt="x", steps=6, init_images=[init_image()], width=64, height=64, sampler_name="Euler", seed=9)
    low = process(Img2ImgRequest(denoising_strength=0.0, **base), model, policy=CPU32, settings=OPTIONS)
    high_a = process(Img2ImgRequest(denoising_strength=1.0, **base), model, policy=CPU32, settings=OPTIONS)
    other = Image.fromarray(255 - np.asarray(init_image()))
    high_b = process(
        Img2ImgRequest(denoising_strength=1.0, **{**base, "init_images": [other]}),
        model,
        policy=CPU32,
        settings=OPTIONS,
    )
    roundtrip = process(Img2ImgRequest(denoising_strength=0.0, **base), model, policy=CPU32, settings=OPTIONS)
    assert np.array_equal(np.asarray(low.images[0]), np.asarray(roundtrip.images[0]))
    # strength 1 (0.999 as A1111 caps it) leaves almost nothing of the init image: two inits, near-equal outputs
    diff_high = np.abs(np.asarray(high_a.images[0], dtype=int) - np.asarray(high_b.images[0], dtype=int)).mean()
    diff_low = np.abs(
        np.asarray(low.images[0], dtype=int)
        - np.asarray(
            process(
                Img2ImgRequest(denoising_strength=0.0, **{**base, "init_images": [other]}),
                model,
                policy=CPU32,
                settings=OPTIONS,
            ).images[0],
            dtype=int,
        )
    ).mean()
    assert diff_high < diff_low / 4
