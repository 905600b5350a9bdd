"""What img2img adds to a generation: the init image in latent space and where on the schedule to start.

A1111 semantics: with `steps` and denoising strength d, t_enc = int(min(d, 0.999) * steps) and the last
t_enc + 1 steps of the full schedule run, starting from init latent + noise at that step's noise level
("fix steps" option: the schedule is stretched so that about `steps` steps run).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from sdui.modes import inpaint
from sdui.devices import DevicePolicy
from sdui.errors import InvalidRequestError
from sdui.imaging.image_ops import image_to_tensor, resize_image
from sdui.models.depth_estimator import depth_from_image, depth_to_pil, estimate_depth
from sdui.models.sd_model import SDModel
from sdui.core.request import Img2ImgRequest


def schedule_steps(request: Img2ImgRequest, fix_steps: bool) -> tuple[int, int]:
    """(steps of the full schedule, steps that run)."""
    strength = min(float(request.denoising_strength), 0.999)
    steps = int(request.steps / strength) if fix_steps and strength > 0 else request.steps
    return steps, int(strength * steps) + 1


def begin_index(scheduler, steps: int, steps_to_run: int) -> int:
    """Index into scheduler.timesteps where img2img starts (second-order schedulers list most steps twice)."""
    order = getattr(scheduler, "order", 1)
    begin = (steps - steps_to_run) * order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return begin


@torch.no_grad()
def encode_images(model: SDModel, pixels: torch.Tensor, policy: DevicePolicy) -> torch.Tensor:
    """VAE latents of [-1, 1] images, scaled for the UNet. The posterior's mean, not a sample: the same init image
    gives the same latents on every run (A1111 samples with the global RNG; the difference is far below 1/255)."""
    posterior = model.vae.encode(pixels.to(policy.device, model.vae.dtype)).latent_dist
    return (posterior.mean * model.vae.config.scaling_factor).to(policy.dtype)


def noised_init(scheduler, init_latents: torch.Tensor, noise: torch.Tensor, begin: int) -> torch.Tensor:
    """The init latents at the noise level of the first step that runs."""
    t = scheduler.timesteps[begin:begin + 1]
    return scheduler.add_noise(init_latents, noise.to(init_latents.dtype), t.repeat(init_latents.shape[0]))


@dataclass
class InitInputs:
    """Everything img2img derives from its init images, one entry per init image."""
    latents: torch.Tensor                      # (N, 4, h, w) VAE latents, scaled
    latent_masks: torch.Tensor | None = None   # (N, 1, h, w) 1 = repaint (A1111's latent mask)
    extra_channels: torch.Tensor | None = None # (N, 5, h, w) for inpainting checkpoints
    work: list | None = None                   # inpaint.MaskedWork per image, for pasting back
    depth_maps: list = field(default_factory=list)   # depth2img: the maps used, as images to show or save
    infotext: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


@torch.no_grad()
def prepare_init(request: Img2ImgRequest, model: SDModel, policy: DevicePolicy) -> InitInputs:
    latent_hw = (request.height // model.vae_scale_factor, request.width // model.vae_scale_factor)
    if request.mask is None:
        resized = [resize_image(request.resize_mode, image, request.width, request.height)
                   for image in request.init_images]
        pixels = image_to_tensor(resized)
        inputs = InitInputs(latents=encode_images(model, pixels, policy))
        if model.variant == "depth":
            depth = depth_conditioning(request, model, pixels, latent_hw)
            inputs.extra_channels = depth.to(policy.device, policy.dtype)
            inputs.depth_maps = [depth_to_pil(d) for d in depth]
        return inputs
    prepared = [inpaint.prepare(request, image) for image in request.init_images]
    work = [w for w, _ in prepared]
    params = prepared[0][1]
    inputs = InitInputs(latents=encode_images(model, image_to_tensor([w.image for w in work]), policy),
                        latent_masks=inpaint.blend_masks(work, latent_hw, request.mask_round).to(policy.device),
                        work=work, infotext=params.infotext, notes=params.notes)
    if model.variant == "inpaint":
        inputs.extra_channels = inpaint.inpainting_channels(model, work, latent_hw, policy, encode_images)
    return inputs


def depth_conditioning(request: Img2ImgRequest, model: SDModel, pixels: torch.Tensor, latent_hw) -> torch.Tensor:
    """(N,1,h,w) in [-1, 1]: the uploaded depth map, else the checkpoint's own MiDaS estimate (A1111's depth2img)."""
    n = pixels.shape[0]
    if request.depth_map is not None:
        return depth_from_image(request.depth_map, latent_hw).repeat(n, 1, 1, 1)
    if model.depth_estimator is None:
        raise InvalidRequestError("This depth checkpoint carries no depth estimator (no depth_model.* weights): "
                                  "upload a depth map (depth_map), or use a checkpoint that includes MiDaS, such as "
                                  "512-depth-ema.")
    device = next(model.depth_estimator.parameters()).device
    return estimate_depth(model.depth_estimator, pixels.to(device), latent_hw)
