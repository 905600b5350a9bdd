"""What img2img adds to a generation: the init images in latent space, their masks and extra UNet channels.
(Where on the schedule img2img starts is the sampler's plan: core/sampler_setup.py.)"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from sdui.devices import DevicePolicy
from sdui.imaging.image_ops import flatten, image_to_tensor, resize_image
from sdui.imaging.vae import JobVae
from sdui.models.depth_estimator import depth_to_pil
from sdui.models.sd_model import SDModel
from sdui.modes import inpaint
from sdui.modes.depth import depth_conditioning
from sdui.request import Img2ImgRequest


@dataclass
class InitInputs:
    """Everything img2img derives from its init images, one entry per init image."""

    latents: torch.Tensor  # (N, 4, h, w) VAE latents, scaled
    latent_masks: torch.Tensor | None = None  # (N, 1, h, w) 1 = repaint (A1111's latent mask)
    extra_channels: torch.Tensor | None = None  # (N, 5, h, w) for inpainting checkpoints
    work: list | None = None  # inpaint.MaskedWork per image, for pasting back
    depth_maps: list = field(default_factory=list)  # depth2img: the maps used, as images to show or save
    infotext: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


@torch.no_grad()
def prepare_init(
    request: Img2ImgRequest, model: SDModel, policy: DevicePolicy, vae: JobVae, *, background: str = "#ffffff"
) -> InitInputs:
    """Encode the init images (flattened onto `background`, A1111's img2img_background_color)."""
    latent_hw = (request.height // model.vae_scale_factor, request.width // model.vae_scale_factor)
    if request.mask is None:
        resized = [
            resize_image(request.resize_mode, flatten(image, background), request.width, request.height)
            for image in request.init_images
        ]
        pixels = image_to_tensor(resized)
        # float32, as the sampler keeps latents: a half/bf16 UNet must not round a float32 VAE's latents
        inputs = InitInputs(latents=vae.encode(pixels).float())
        if model.variant == "depth":
            depth = depth_conditioning(request, model, pixels, latent_hw)
            inputs.extra_channels = depth.to(policy.device, policy.dtype)
            inputs.depth_maps = [depth_to_pil(d) for d in depth]
        return inputs
    prepared = [inpaint.prepare(request, image, background=background) for image in request.init_images]
    work = [w for w, _ in prepared]
    params = prepared[0][1]
    inputs = InitInputs(
        latents=vae.encode(image_to_tensor([w.image for w in work])).float(),
        latent_masks=inpaint.blend_masks(work, latent_hw, request.mask_round).to(policy.device),
        work=work,
        infotext=params.infotext,
        notes=params.notes,
    )
    if model.variant == "inpaint":
        inputs.extra_channels = inpaint.inpainting_channels(work, latent_hw, vae).to(policy.dtype)
    return inputs
