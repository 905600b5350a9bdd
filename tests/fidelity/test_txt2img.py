"""Our txt2img against reference implementations, on the same tiny real-format checkpoints.

1. diffusers' own pipelines (StableDiffusionPipeline / StableDiffusionXLPipeline) with the same weights, noise,
   scheduler and settings: max pixel difference <= 1/255.
2. A plain re-implementation of A1111's k-diffusion Euler loop ("Euler" + schedule "Automatic").
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

from sdui.core import rng
from sdui.core.processing import process
from sdui.core.samplers import build_scheduler
from sdui.models.loading import load_sd_model
from sdui.request import GenerationRequest
from sdui.settings.snapshot import Settings
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.helpers import CPU32, process_with_latents

pytestmark = pytest.mark.slow  # fidelity: equality with diffusers' pipelines

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


def run_reference(model, request: GenerationRequest, sampler_setup):
    """diffusers' pipeline, given our noise and a scheduler of the same class, config and schedule."""
    pipe = reference_pipeline(model)
    ours = sampler_setup.scheduler
    pipe.scheduler = type(ours).from_config(ours.config)
    h, w = request.height // 8, request.width // 8
    noise = rng.create_noise(
        (model.latent_channels, h, w),
        [request.seed],
        [request.seed],
        0.0,
        -1,
        -1,
        source="CPU",
        device=torch.device("cpu"),
    )
    generators = rng.make_generators(
        [request.seed], source="CPU", device=torch.device("cpu"), skip_first=True, shape=(model.latent_channels, h, w)
    )
    kwargs = dict(sampler_setup.pipeline_kwargs)
    if model.arch == "sdxl":
        kwargs["negative_prompt"] = request.negative_prompt or None
    else:
        kwargs["negative_prompt"] = request.negative_prompt
    captured = {}

    def keep_latents(_pipe, _step, _t, tensors):
        captured["latents"] = tensors["latents"]
        return tensors

    result = pipe(
        prompt=request.prompt,
        height=request.height,
        width=request.width,
        guidance_scale=request.cfg_scale,
        latents=noise,
        generator=generators,
        output_type="pil",
        callback_on_step_end=keep_latents,
        **kwargs,
    )
    return result.images[0], captured["latents"]


def assert_latents_close(ours: torch.Tensor, theirs: torch.Tensor, what: str):
    # Pixels of a tiny random VAE are coarse witnesses (a 1% CFG error moves them by <1/255), so the final
    # latents are compared too: 1e-4 of their scale, where a 0.1 change of CFG scale moves them ~1e-3.
    scale = theirs.abs().max().item()
    diff = (ours - theirs).abs().max().item()
    assert diff <= 1e-4 * scale, f"{what}: latents differ by {diff} (scale {scale})"


@pytest.mark.parametrize("arch", ["sd1", "sd2", "sdxl"])
@pytest.mark.parametrize(
    "sampler,schedule",
    [("Euler", "Automatic"), ("Euler a", "Automatic"), ("DPM++ 2M", "Karras"), ("DDIM", "Automatic")],
)
def test_txt2img_equals_diffusers_pipeline(models, arch, sampler, schedule):
    model = models[arch]
    request = GenerationRequest(
        prompt="a photo of a red fox in the snow",
        negative_prompt="blurry",
        seed=1234,
        sampler_name=sampler,
        scheduler=schedule,
        steps=6,
        cfg_scale=7.0,
        width=64,
        height=64,
    )
    result, result_latents = process_with_latents(request, model, policy=CPU32, settings=OPTIONS)
    ours = result.images[0]
    setup = build_scheduler(
        sampler, schedule, request.steps, model.scheduler_config, seeds=[request.seed], is_sdxl=model.is_sdxl
    )
    theirs, their_latents = run_reference(model, request, setup)
    assert_latents_close(result_latents, their_latents, f"{arch} {sampler}/{schedule}")
    diff = np.abs(pixels(ours) - pixels(theirs)).max()
    assert diff <= 1, f"{arch} {sampler}/{schedule}: max pixel difference {diff}/255"
    # the image is not flat: a broken loop that outputs a constant would also "match" a broken reference
    assert pixels(ours).std() > 1.0


def kdiffusion_sigmas(training_sigmas: torch.Tensor, n: int) -> torch.Tensor:
    log_sigmas = training_sigmas.log()
    t = torch.linspace(len(training_sigmas) - 1, 0, n)
    low, high = t.floor().long(), t.ceil().long()
    w = t - low
    return torch.cat([((1 - w) * log_sigmas[low] + w * log_sigmas[high]).exp(), torch.zeros(1)])


def kdiffusion_sigma_to_t(sigma: torch.Tensor, training_sigmas: torch.Tensor) -> torch.Tensor:
    log_sigmas = training_sigmas.log()
    dists = sigma.log() - log_sigmas
    low = dists.ge(0).cumsum(0).argmax().clamp(max=len(log_sigmas) - 2)
    w = ((log_sigmas[low] - sigma.log()) / (log_sigmas[low] - log_sigmas[low + 1])).clamp(0, 1)
    return (1 - w) * low + w * (low + 1)


def test_euler_automatic_equals_a1111_euler_loop(models):
    """A1111: CFGDenoiser over a k-diffusion DiscreteEpsDDPMDenoiser, sample_euler, CPU noise."""
    model = models["sd1"]
    request = GenerationRequest(
        prompt="a castle on a hill",
        negative_prompt="",
        seed=77,
        sampler_name="Euler",
        scheduler="Automatic",
        steps=8,
        cfg_scale=5.0,
        width=64,
        height=64,
    )
    result, result_latents = process_with_latents(request, model, policy=CPU32, settings=OPTIONS)
    ours = result.images[0]

    cfg = model.scheduler_config
    betas = (
        torch.linspace(
            cfg["beta_start"] ** 0.5, cfg["beta_end"] ** 0.5, cfg["num_train_timesteps"], dtype=torch.float64
        )
        ** 2
    )
    acp = torch.cumprod(1 - betas, 0)
    training_sigmas = ((1 - acp) / acp).sqrt().float()
    sigmas = kdiffusion_sigmas(training_sigmas, request.steps)

    from sdui.text.encoder import PromptEncoder

    enc = PromptEncoder(model)
    cond = enc.encode([request.prompt]).embeds
    uncond = enc.encode([""], is_negative=True).embeds
    x = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(77)) * sigmas[0]
    with torch.no_grad():
        for i in range(request.steps):
            sigma = sigmas[i]
            c_in = 1 / (sigma**2 + 1) ** 0.5
            t = kdiffusion_sigma_to_t(sigma, training_sigmas)
            eps = model.unet(
                torch.cat([x, x]) * c_in, t.expand(2), encoder_hidden_states=torch.cat([uncond, cond])
            ).sample
            den_u, den_c = (torch.cat([x, x]) - eps * sigma).chunk(2)
            denoised = den_u + (den_c - den_u) * request.cfg_scale
            d = (x - denoised) / sigma
            x = x + d * (sigmas[i + 1] - sigma)
        decoded = model.vae.decode(x / model.vae.config.scaling_factor).sample
    assert_latents_close(result_latents, x, "A1111 Euler loop")
    ref = ((decoded[0].permute(1, 2, 0) / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    diff = np.abs(pixels(ours) - ref.astype(np.int16)).max()
    assert diff <= 1, f"max pixel difference {diff}/255 against the A1111 Euler loop"


def test_same_request_twice_gives_identical_pixels(models):
    request = GenerationRequest(prompt="x", seed=5, sampler_name="Euler a", steps=4, width=64, height=64)
    a = process(copy.deepcopy(request), models["sd1"], policy=CPU32, settings=OPTIONS).images[0]
    b = process(copy.deepcopy(request), models["sd1"], policy=CPU32, settings=OPTIONS).images[0]
    assert np.array_equal(pixels(a), pixels(b))
