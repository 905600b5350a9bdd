"""Step 4 of a generation: a batch's starting latents, from each image's own seed (CPU noise by default, so a seed
gives the same image on every device), and the generators the sampler draws its later noise from."""

from __future__ import annotations

import torch

from sdui.core import rng
from sdui.core.run import Batch
from sdui.core.samplers import SamplerSetup
from sdui.core.sampling import LatentBlend
from sdui.devices import DevicePolicy
from sdui.imaging.vae import JobVae
from sdui.models.sd_model import SDModel
from sdui.modes import img2img, inpaint
from sdui.request import GenerationRequest
from sdui.settings.snapshot import Settings


def noise(
    request: GenerationRequest,
    model: SDModel,
    batch: Batch,
    settings: Settings,
    policy: DevicePolicy,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    width, height = size or (request.width, request.height)
    shape = (model.latent_channels, height // model.vae_scale_factor, width // model.vae_scale_factor)
    return rng.create_noise(
        shape,
        batch.seeds,
        batch.subseeds,
        request.subseed_strength,
        request.seed_resize_from_h,
        request.seed_resize_from_w,
        source=settings.randn_source,
        device=policy.device,
    )


def generators(batch: Batch, settings: Settings, policy: DevicePolicy, shape, uses_ensd: bool):
    """Per-image generators for the noise samplers draw at each step: they continue each image's seed after the
    initial noise, or start from seed + ENSD when that is set, as A1111."""
    ensd = int(settings.eta_noise_seed_delta) if uses_ensd else 0
    seeds = [s + ensd for s in batch.seeds] if ensd else batch.seeds
    return rng.make_generators(
        seeds, source=settings.randn_source, device=policy.device, skip_first=not ensd, shape=tuple(shape)
    )


def batch_start(
    request,
    init,
    model: SDModel,
    setup: SamplerSetup,
    begin: int,
    noise: torch.Tensor,
    batch: Batch,
    policy: DevicePolicy,
    vae: JobVae,
):
    """(starting latents, extra UNet channels, latent blend, which init image each uses)."""
    if init is None:  # txt2img: pure noise at the first step's level
        latents = (noise.to(policy.device, torch.float32) * setup.scheduler.init_noise_sigma).to(policy.dtype)
        return latents, inpaint.txt2img_channels(model.variant, latents.shape, vae, policy.dtype), None, None
    first = batch.index * request.batch_size
    picks = [(first + j) % init.latents.shape[0] for j in range(len(batch))]
    noise = noise.to(policy.device, init.latents.dtype) * float(request.initial_noise_multiplier)
    base = init.latents[picks]
    masks = init.latent_masks[picks].to(base.dtype) if init.latent_masks is not None else None
    if masks is not None and request.inpainting_fill == 2:  # "latent noise": the masked area starts as noise
        base = base * (1 - masks) + noise * masks
    elif masks is not None and request.inpainting_fill == 3:  # "latent nothing"
        base = base * (1 - masks)
    latents = img2img.noised_init(setup.scheduler, base, noise, begin)
    if init.extra_channels is not None:
        extra = init.extra_channels[picks]
    else:
        extra = inpaint.txt2img_channels(model.variant, latents.shape, vae, policy.dtype)
    blend = LatentBlend(base, noise, masks) if masks is not None and model.variant != "inpaint" else None
    return latents, extra, blend, picks
