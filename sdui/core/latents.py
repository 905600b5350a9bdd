"""Step 4 of a generation: a batch's starting latents, from each image's own seed (CPU noise by default, so a seed
gives the same image on every device), and the noise the sampler draws later, as A1111 makes them."""

from __future__ import annotations

import torch

from sdui.core import rng, schedules
from sdui.core.run import Batch
from sdui.core.sampler_setup import SamplerSetup
from sdui.core.sampling import MaskBlend
from sdui.devices import DevicePolicy
from sdui.imaging.vae import JobVae
from sdui.models.sd_model import SDModel
from sdui.modes import inpaint
from sdui.request import GenerationRequest
from sdui.settings.snapshot import Settings


def latent_shape(model: SDModel, width: int, height: int) -> tuple[int, int, int]:
    return (model.latent_channels, height // model.vae_scale_factor, width // model.vae_scale_factor)


def noise(
    request: GenerationRequest,
    model: SDModel,
    batch: Batch,
    settings: Settings,
    policy: DevicePolicy,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Each image's first draw (A1111's ImageRNG.first()): its initial noise, with variation and seed resize."""
    width, height = size or (request.width, request.height)
    return rng.create_noise(
        latent_shape(model, width, height),
        batch.seeds,
        batch.subseeds,
        request.subseed_strength,
        request.seed_resize_from_h,
        request.seed_resize_from_w,
        source=settings.randn_source,
        device=policy.device,
    )


def sampler_noise(setup: SamplerSetup, batch: Batch, settings: Settings, policy: DevicePolicy, x: torch.Tensor):
    """The noise the sampler draws while it runs: a Brownian tree per image for the SDE samplers, else each
    image's generator continuing after its first draw (from seed + ENSD when that is set)."""
    if setup.brownian and not settings.no_dpmpp_sde_batch_determinism:
        sigmas = setup.sigmas
        return rng.BrownianNoise(x, sigmas[sigmas > 0].min(), sigmas.max(), batch.seeds, source=settings.randn_source)
    return rng.ImageNoise(
        batch.seeds,
        x.shape[1:],
        source=settings.randn_source,
        device=policy.device,
        ensd=int(settings.eta_noise_seed_delta),
    )


def txt2img_start(setup: SamplerSetup, noise: torch.Tensor, settings: Settings) -> torch.Tensor:
    """Pure noise at the first step's level: scaled by sigma for k-diffusion samplers (by sqrt(1 + sigma^2) with
    the SGM noise multiplier setting), as it is for DDIM/PLMS/UniPC."""
    if setup.kind == "timesteps":
        return noise
    sigma = setup.walk[0]
    if settings.sgm_noise_multiplier:
        return noise * (1 + sigma**2) ** 0.5
    return noise * sigma


def img2img_start(
    setup: SamplerSetup, init_latents: torch.Tensor, noise: torch.Tensor, train_sigmas: torch.Tensor, extra: float
) -> torch.Tensor:
    """The init latents noised to the level where the run starts (plus A1111's "extra noise")."""
    if setup.kind == "timesteps":
        a = float(1 / (1 + train_sigmas[setup.start_timestep].double() ** 2))
        x = init_latents * a**0.5 + noise * (1 - a) ** 0.5
        return x + noise * extra * a**0.5 if extra > 0 else x
    x = init_latents + noise * setup.walk[0]
    return x + noise * extra if extra > 0 else x


def batch_start(
    request,
    init,
    model: SDModel,
    setup: SamplerSetup,
    noise: torch.Tensor,
    batch: Batch,
    first_seeds: list[int],
    settings: Settings,
    policy: DevicePolicy,
    vae: JobVae,
):
    """(starting latents, extra UNet channels, inpaint blend, which init image each uses)."""
    noise = noise.to(policy.device, torch.float32)
    if init is None:  # txt2img
        latents = txt2img_start(setup, noise, settings)
        return latents, inpaint.txt2img_channels(model.variant, latents.shape, vae, policy.dtype), None, None
    first = batch.index * request.batch_size
    picks = [(first + j) % init.latents.shape[0] for j in range(len(batch))]
    base = init.latents[picks].float()
    masks = init.latent_masks[picks].float() if init.latent_masks is not None else None
    if masks is not None and request.inpainting_fill == 2:
        # "latent noise": the masked area starts as noise, drawn from the first images' seeds (as A1111)
        fill = rng.create_noise(base.shape[1:], first_seeds[: len(batch)], source=settings.randn_source)
        base = base * (1 - masks) + fill.to(base) * masks
    elif masks is not None and request.inpainting_fill == 3:  # "latent nothing"
        base = base * (1 - masks)
    noise = noise * float(request.initial_noise_multiplier)
    train_sigmas = schedules.training_sigmas(model.scheduler_config)
    latents = img2img_start(setup, base, noise, train_sigmas, float(settings.img2img_extra_noise))
    if init.extra_channels is not None:
        extra = init.extra_channels[picks]
    else:
        extra = inpaint.txt2img_channels(model.variant, latents.shape, vae, policy.dtype)
    blend = MaskBlend(base, masks) if masks is not None else None
    return latents, extra, blend, picks
