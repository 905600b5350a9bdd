"""Hires fix (A1111): the first pass's result, upscaled in latent space or in pixels, is the init of a second,
img2img-like pass at the larger size with fresh noise from the same seeds. This file plans it and upscales;
the passes themselves run through the same loop as everything else (sdui/core/processing.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from sdui.errors import InvalidRequestError
from sdui.imaging.image_ops import image_to_tensor
from sdui.imaging.vae import JobVae
from sdui.request import GenerationRequest, Img2ImgRequest
from sdui.upscalers import upscaling

SAME_SAMPLER = ("", "Use same sampler")
SAME_SCHEDULER = ("", "Use same scheduler")


@dataclass
class HiresPlan:
    request: Img2ImgRequest  # the second pass, as an img2img request at the target size (init in latents)
    upscaler: str
    target_w: int  # what the first pass is upscaled to, before the cover-crop
    target_h: int
    truncate_x: int  # latent cells the cover-crop removes
    truncate_y: int
    infotext: dict = field(default_factory=dict)


def plan(request: GenerationRequest) -> HiresPlan | None:
    if not request.enable_hr:
        return None
    if isinstance(request, Img2ImgRequest):
        raise InvalidRequestError("hires fix (enable_hr) is a txt2img feature; for img2img raise width/height instead")
    upscaler = upscaling.resolve_hr_upscaler(request.hr_upscaler)
    target_w, target_h, tx, ty = upscaling.hires_target_size(
        request.width, request.height, request.hr_scale, request.hr_resize_x, request.hr_resize_y
    )
    width, height = upscaling.hires_image_size(target_w, target_h, tx, ty)
    sampler = request.hr_sampler_name if request.hr_sampler_name not in (None, *SAME_SAMPLER) else None
    scheduler = request.hr_scheduler if request.hr_scheduler not in (None, *SAME_SCHEDULER) else None
    fields = {f.name: getattr(request, f.name) for f in dataclasses.fields(GenerationRequest)}
    fields.update(
        width=width,
        height=height,
        enable_hr=False,
        init_images=[],
        steps=upscaling.hires_steps(request.steps, request.hr_second_pass_steps),
        sampler_name=sampler or request.sampler_name,
        scheduler=scheduler or request.scheduler,
        prompt=request.hr_prompt or request.prompt,
        negative_prompt=request.hr_negative_prompt or request.negative_prompt,
    )
    second = Img2ImgRequest(**fields)

    info = {"Denoising strength": request.denoising_strength}
    if request.hr_resize_x or request.hr_resize_y:
        info["Hires resize"] = f"{request.hr_resize_x}x{request.hr_resize_y}"
    else:
        info["Hires upscale"] = request.hr_scale
    if request.hr_second_pass_steps:
        info["Hires steps"] = request.hr_second_pass_steps
    info["Hires upscaler"] = upscaler
    if sampler and sampler != request.sampler_name:
        info["Hires sampler"] = sampler
    if scheduler and scheduler != request.scheduler:
        info["Hires schedule type"] = scheduler
    if request.hr_prompt and request.hr_prompt != request.prompt:
        info["Hires prompt"] = request.hr_prompt
    if request.hr_negative_prompt and request.hr_negative_prompt != request.negative_prompt:
        info["Hires negative prompt"] = request.hr_negative_prompt
    return HiresPlan(
        request=second,
        upscaler=upscaler,
        target_w=target_w,
        target_h=target_h,
        truncate_x=tx,
        truncate_y=ty,
        infotext=info,
    )


@torch.no_grad()
def upscale(latents: torch.Tensor, hires: HiresPlan, vae: JobVae, scale_factor: int) -> torch.Tensor:
    """First-pass latents -> init latents of the second pass (latent interpolation, or decode/upscale/encode)."""
    f = scale_factor
    if upscaling.is_latent_upscaler(hires.upscaler):
        upscaled = upscaling.upscale_latent(latents, hires.upscaler, hires.target_h // f, hires.target_w // f)
    else:
        pixels = [
            upscaling.upscale_image(image, hires.upscaler, hires.target_w, hires.target_h)
            for image in vae.decode_to_pil(latents)
        ]
        upscaled = vae.encode(image_to_tensor(pixels))
    return upscaling.crop_latent(upscaled, hires.truncate_x, hires.truncate_y).to(latents.dtype)
