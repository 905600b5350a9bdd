"""Our txt2img against references on the same tiny real-format checkpoints.

1. diffusers' own pipelines (SD1, SD2 v-prediction, SDXL) with Euler on the same sigmas: the parts diffusers
   defines (text encoders, UNet, VAE, CFG) are equal, within 1/255.
2. A1111's loop written in the tests (tests/fixtures/a1111_loop.py: k-diffusion's wrappers and samplers, A1111's
   own samplers, A1111's noise): every sampler with its Automatic schedule, Karras and Exponential, on SD1 (eps)
   and SD2 (v-prediction), within 2/255.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

from sdui.core import rng
from sdui.core.processing import process
from sdui.models.loading import load_sd_model
from sdui.request import GenerationRequest
from sdui.settings.snapshot import Settings
from tests.fixtures import a1111_loop
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.fixtures.diffusers_reference import a1111_sigmas, decode, euler_scheduler, keep_latents
from tests.helpers import CPU32, process_with_latents

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Should have")]  # torchsde's float rounding

OPTIONS = Settings.defaults(samples_save=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("fidelity")
    out = {}
    for arch in ("sd1", "sd2", "sdxl"):
        path = build_tiny_checkpoint(root / f"{arch}.safetensors", arch=arch)
        out[arch] = load_sd_model(path, CPU32)
    return out


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def assert_latents_close(ours: torch.Tensor, theirs: torch.Tensor, what: str, rel: float = 1e-4):
    # Pixels of a tiny random VAE are coarse witnesses (a 1% CFG error moves them by <1/255), so the final
    # latents are compared too: 1e-4 of their scale, where a 0.1 change of CFG scale moves them ~1e-3.
    scale = theirs.abs().max().item()
    diff = (ours - theirs).abs().max().item()
    assert diff <= rel * scale, f"{what}: latents differ by {diff} (scale {scale})"


# --- 1. diffusers' pipelines ----------------------------------------------------------------------------------


def reference_pipeline(model):
    parts = dict(vae=model.vae, unet=model.unet, scheduler=None)
    if model.arch == "sdxl":
        return StableDiffusionXLPipeline(
            text_encoder=model.text_encoders[0],
            text_encoder_2=model.text_encoders[1],
            tokenizer=model.tokenizers[0],
            tokenizer_2=model.tokenizers[1],
            **parts,
        )
    return StableDiffusionPipeline(
        text_encoder=model.text_encoders[0],
        tokenizer=model.tokenizers[0],
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        **parts,
    )


def run_diffusers(model, request: GenerationRequest):
    pipe = reference_pipeline(model)
    pipe.scheduler = euler_scheduler(model)
    h, w = request.height // 8, request.width // 8
    noise = rng.create_noise(
        (model.latent_channels, h, w), [request.seed], [request.seed], 0.0, -1, -1, device=torch.device("cpu")
    )
    negative = request.negative_prompt or None if model.arch == "sdxl" else request.negative_prompt
    captured = {}
    result = pipe(
        prompt=request.prompt,
        negative_prompt=negative,
        height=request.height,
        width=request.width,
        guidance_scale=request.cfg_scale,
        latents=noise,
        sigmas=a1111_sigmas(model, request.steps),
        output_type="pil",
        callback_on_step_end=keep_latents(captured),
    )
    return result.images[0], captured["latents"]


@pytest.mark.parametrize("arch", ["sd1", "sd2", "sdxl"])
def test_txt2img_equals_diffusers_pipeline(models, arch):
    model = models[arch]
    request = GenerationRequest(
        prompt="a photo of a red fox in the snow",
        negative_prompt="blurry",
        seed=1234,
        sampler_name="Euler",
        steps=6,
        cfg_scale=7.0,
        width=64,
        height=64,
    )
    result, result_latents = process_with_latents(request, model, policy=CPU32, settings=OPTIONS)
    theirs, their_latents = run_diffusers(model, request)
    assert_latents_close(result_latents, their_latents, f"{arch} Euler")
    diff = np.abs(pixels(result.images[0]) - pixels(theirs)).max()
    assert diff <= 1, f"{arch}: max pixel difference {diff}/255"
    # the image is not flat: a broken loop that outputs a constant would also "match" a broken reference
    assert pixels(result.images[0]).std() > 1.0


# --- 2. A1111's loop ------------------------------------------------------------------------------------------

SAMPLERS = [*a1111_loop.K_SAMPLERS, *a1111_loop.TIMESTEP_SAMPLERS]
CASES = [
    (arch, sampler, schedule)
    for arch in ("sd1", "sd2")
    for sampler in SAMPLERS
    for schedule in ("Automatic", "Karras", "Exponential")
    # A1111's LCM denoiser reads the UNet's output as eps: a v-prediction model makes no sense with it
    if not (sampler == "LCM" and arch == "sd2")
]


def compare_with_a1111(model, request: GenerationRequest, what: str):
    result, ours = process_with_latents(request, model, policy=CPU32, settings=OPTIONS)
    theirs = a1111_loop.reference(model, request)
    assert_latents_close(ours, theirs, what, rel=1e-3)
    diff = np.abs(pixels(result.images[0]) - decode(model, theirs)).max()
    assert diff <= 2, f"{what}: max pixel difference {diff}/255 against A1111's loop"
    assert pixels(result.images[0]).std() > 1.0
    return result


@pytest.mark.parametrize("arch,sampler,schedule", CASES)
def test_every_sampler_equals_a1111s_loop(models, arch, sampler, schedule):
    request = GenerationRequest(
        prompt="a castle on a hill",
        negative_prompt="fog",
        seed=77,
        sampler_name=sampler,
        scheduler=schedule,
        steps=20 if sampler == "Restart" else 6,  # Restart restarts from 20 steps on
        cfg_scale=5.0,
        width=64,
        height=64,
    )
    result = compare_with_a1111(models[arch], request, f"{arch} {sampler}/{schedule}")
    assert f"Sampler: {sampler}," in result.infotexts[0]


@pytest.mark.parametrize("sampler,eta", [("Euler a", 0.0), ("Euler a", 0.5), ("DPM++ 2M SDE", 0.0), ("DDIM", 0.5)])
def test_eta_equals_a1111s_loop(models, sampler, eta):
    request = GenerationRequest(
        prompt="a lighthouse", seed=8, sampler_name=sampler, steps=6, cfg_scale=6.0, width=64, height=64, eta=eta
    )
    result = compare_with_a1111(models["sd1"], request, f"{sampler} eta {eta}")
    assert (f"Eta DDIM: {eta}" if sampler == "DDIM" else f"Eta: {eta}") in result.infotexts[0]


@pytest.mark.parametrize("sampler", ["DPM++ SDE", "DPM++ 2M SDE", "Euler a", "DPM++ 3M SDE"])
def test_an_image_does_not_depend_on_its_batch(models, sampler):
    """Brownian trees and per-image generators: the second image of a batch equals that seed alone (to the
    rounding of a bigger UNet batch, ~1e-6; another seed's noise would differ by the latents' whole scale)."""
    base = dict(prompt="a boat", sampler_name=sampler, steps=5, width=64, height=64)
    _, batch = process_with_latents(GenerationRequest(seed=40, batch_size=2, **base), models["sd1"], settings=OPTIONS)
    _, alone = process_with_latents(GenerationRequest(seed=41, **base), models["sd1"], settings=OPTIONS)
    assert_latents_close(batch[1], alone[0], f"{sampler}: second of a batch vs alone")
    assert not torch.allclose(batch[0], batch[1], atol=1.0)


def test_a_batch_equals_a1111s_batch(models):
    request = GenerationRequest(
        prompt="a boat", seed=40, batch_size=2, sampler_name="DPM++ 2M SDE", steps=5, width=64, height=64
    )
    _, ours = process_with_latents(request, models["sd1"], policy=CPU32, settings=OPTIONS)
    assert_latents_close(ours, a1111_loop.reference(models["sd1"], request, [40, 41]), "batch of 2", rel=1e-3)


def test_timestep_samplers_ignore_the_schedule(models):
    base = dict(prompt="x", seed=3, sampler_name="DDIM", steps=6, width=64, height=64)
    a = process(GenerationRequest(scheduler="Automatic", **base), models["sd1"], policy=CPU32, settings=OPTIONS)
    b = process(GenerationRequest(scheduler="Beta", **base), models["sd1"], policy=CPU32, settings=OPTIONS)
    assert np.array_equal(pixels(a.images[0]), pixels(b.images[0]))
    assert "Schedule type: Beta" in b.infotexts[0]


def test_same_request_twice_gives_identical_pixels(models):
    request = GenerationRequest(prompt="x", seed=5, sampler_name="DPM++ SDE", steps=4, width=64, height=64)
    a = process(copy.deepcopy(request), models["sd1"], policy=CPU32, settings=OPTIONS).images[0]
    b = process(copy.deepcopy(request), models["sd1"], policy=CPU32, settings=OPTIONS).images[0]
    assert np.array_equal(pixels(a), pixels(b))


@pytest.mark.parametrize("arch", ["sd1", "sd2"])
@pytest.mark.parametrize("variant", ["bh1", "bh2"])
def test_unipc_equals_diffusers_unipc(models, arch, variant):
    """A1111's UniPC takes as many steps as A1111's DDIM timesteps (26 steps: 27 of them, 1000 // 26 = 38 apart)
    over continuous time from 1 to 1/1000; there its model times are whole timesteps (999, 962, ..., 0), the ones
    diffusers' UniPCMultistepScheduler walks with 27 steps (linspace spacing, ending at sigma_min): the two ports
    of the UniPC paper's solver must agree there. (diffusers lowers the final orders only below 15 steps.)"""
    from diffusers import UniPCMultistepScheduler

    model = models[arch]
    request = GenerationRequest(
        prompt="a harbour at dusk", seed=21, sampler_name="UniPC", steps=26, cfg_scale=6.0, width=64, height=64
    )
    opts = Settings.defaults(samples_save=False, uni_pc_variant=variant, uni_pc_lower_order_final=False)
    _, ours = process_with_latents(request, model, settings=opts)
    pipe = reference_pipeline(model)
    pipe.scheduler = UniPCMultistepScheduler.from_config(
        model.scheduler_config,
        timestep_spacing="linspace",
        final_sigmas_type="sigma_min",
        solver_order=3,
        solver_type=variant,
        lower_order_final=False,
        predict_x0=True,
        prediction_type=model.prediction_type,
    )
    noise = rng.create_noise((4, 8, 8), [21], [21], 0.0, -1, -1, device=torch.device("cpu"))
    captured = {}
    pipe(
        prompt=request.prompt,
        negative_prompt="",
        num_inference_steps=27,
        guidance_scale=request.cfg_scale,
        latents=noise,
        height=64,
        width=64,
        callback_on_step_end=keep_latents(captured),
    )
    assert pipe.scheduler.timesteps.tolist() == [999 - 37 * i for i in range(27)]
    assert_latents_close(ours, captured["latents"], f"UniPC {variant}", rel=1e-3)
