"""img2img through our one core against references, same weights, noise and schedule.

1. diffusers' StableDiffusionImg2ImgPipeline with Euler on A1111's sigmas, given the strength that makes it run
   A1111's steps (t_enc = int(strength * steps); the last t_enc + 1 steps of the full schedule).
2. A1111's loop (tests/fixtures/a1111_loop.py) for samplers of every kind: its step arithmetic, its init latents.
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
from sdui.request import Img2ImgRequest
from sdui.settings.snapshot import Settings
from tests.fixtures import a1111_loop
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.fixtures.diffusers_reference import a1111_sigmas, decode, euler_scheduler, img2img_strength, keep_latents
from tests.helpers import CPU32, Events, process_with_latents

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Should have")]  # fidelity

OPTIONS = Settings.defaults(samples_save=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("i2i")
    return {
        arch: load_sd_model(build_tiny_checkpoint(root / f"{arch}.safetensors", arch=arch), CPU32)
        for arch in ("sd1", "sd2")
    }


@pytest.fixture(scope="module")
def model(models):
    return models["sd1"]


def init_image(w=64, h=64) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h)], -1).astype(np.uint8)
    return Image.fromarray(rgb)


def request(**fields) -> Img2ImgRequest:
    base = dict(
        prompt="a watercolor of a harbour",
        negative_prompt="blurry",
        seed=321,
        sampler_name="Euler",
        steps=8,
        cfg_scale=6.0,
        width=64,
        height=64,
        init_images=[init_image()],
        denoising_strength=0.75,
    )
    return Img2ImgRequest(**{**base, **fields})


def init_latents(model, req) -> torch.Tensor:
    """The init image as latents: the VAE posterior's mean (A1111 and diffusers both take the mode)."""
    return vae_io.encode(model.vae, image_to_tensor(req.init_images))


@pytest.mark.parametrize("strength", [0.5, 0.75])
def test_img2img_equals_diffusers(model, strength):
    req = request(denoising_strength=strength)
    result, ours = process_with_latents(req, model, policy=CPU32, settings=OPTIONS)
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
    theirs = pipe(
        prompt=req.prompt,
        negative_prompt=req.negative_prompt,
        image=init_latents(model, req),  # diffusers takes 4-channel input as ready latents
        strength=img2img_strength(req.steps, strength),
        guidance_scale=req.cfg_scale,
        generator=[torch.Generator().manual_seed(req.seed)],
        sigmas=a1111_sigmas(model, req.steps),
        callback_on_step_end=keep_latents(captured),
    ).images[0]
    scale = captured["latents"].abs().max().item()
    assert (ours - captured["latents"]).abs().max().item() <= 1e-4 * scale
    assert np.abs(np.asarray(result.images[0], dtype=np.int16) - np.asarray(theirs, dtype=np.int16)).max() <= 1
    assert "Denoising strength: " + str(strength) in result.infotexts[0]


@pytest.mark.parametrize("arch", ["sd1", "sd2"])
@pytest.mark.parametrize(
    "sampler,schedule",
    [
        ("Euler a", "Automatic"),
        ("DPM++ 2M", "Automatic"),
        ("DPM++ SDE", "Karras"),
        ("DPM++ 2M SDE", "Automatic"),
        ("DPM2 a", "Exponential"),
        ("Heun", "Karras"),
        ("LMS", "Automatic"),
        ("DPM fast", "Automatic"),
        ("DPM adaptive", "Automatic"),
        ("Restart", "Automatic"),
        ("DDIM", "Automatic"),
        ("PLMS", "Automatic"),
    ],
)
@pytest.mark.parametrize("strength", [0.4, 0.75])
def test_img2img_equals_a1111s_loop(models, arch, sampler, schedule, strength):
    model = models[arch]
    req = request(sampler_name=sampler, scheduler=schedule, denoising_strength=strength)
    result, ours = process_with_latents(req, model, policy=CPU32, settings=OPTIONS)
    theirs = a1111_loop.reference(model, req, init_latents=init_latents(model, req), denoising=strength)
    scale = theirs.abs().max().item()
    assert (ours - theirs).abs().max().item() <= 1e-3 * scale, f"{arch} {sampler}/{schedule} at {strength}"
    assert np.abs(np.asarray(result.images[0], dtype=np.int16) - decode(model, theirs)).max() <= 2


def test_a1111_step_count(model):
    """steps 20, strength 0.75 -> 16 steps run (t_enc 15 + 1), starting at index 4 of the 20-step schedule;
    with "fix steps" (img2img_fix_steps) a 26-step schedule of which the last 20 run."""
    req = request(steps=20, denoising_strength=0.75)
    events = Events()
    process(req, model, policy=CPU32, settings=OPTIONS, events=events)
    assert events.batches_announced == [(1, 16)] and events.steps[-1] == (16, 16)
    events = Events()
    process(req, model, policy=CPU32, settings=OPTIONS.replace({"img2img_fix_steps": True}), events=events)
    assert events.batches_announced == [(1, 20)] and events.steps[-1] == (20, 20)


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
