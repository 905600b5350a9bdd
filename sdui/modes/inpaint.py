"""What a mask adds to img2img: the work image and mask, the inpainting model's extra UNet channels, the latent
blend for ordinary checkpoints, and pasting the result back. Pixel work is in sdui.imaging.masking (A1111's
recipe).

Inpainting checkpoints (9 UNet input channels) see [mask, masked-image latents] beside the latents, as in
A1111 and diffusers' StableDiffusionInpaintPipeline. Ordinary checkpoints get the unmasked area put back after every
step at that step's noise level (diffusers' way for 4-channel UNets; A1111 blends the denoised prediction instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image

from sdui.imaging import masking
from sdui.imaging.image_ops import flatten, image_to_tensor, resize_image
from sdui.imaging.vae import JobVae
from sdui.request import INPAINT_AREAS, MASK_MODES, MASKED_CONTENT, Img2ImgRequest


@dataclass
class MaskedWork:
    """One init image prepared for inpainting at the request's size."""

    image: Image.Image  # what is VAE-encoded (after "fill" if asked)
    mask: Image.Image  # 'L' at the work size, white = repaint
    original: Image.Image  # what the result is pasted onto
    overlay: Image.Image  # the (blurred) mask used for pasting back
    region: tuple | None = None  # "Only masked": the box in `original` the work image came from


@dataclass
class InpaintParams:
    infotext: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


def prepare(
    request: Img2ImgRequest, image: Image.Image, *, background: str = "#ffffff"
) -> tuple[MaskedWork, InpaintParams]:
    """A1111's order: flatten (onto `background`), mask (invert, blur), crop for "Only masked" or resize, then
    "fill"."""
    params = InpaintParams()
    image = flatten(image, background)
    prepared = masking.prepare_mask(
        request.mask,
        invert=bool(request.inpainting_mask_invert),
        blur_x=request.mask_blur_x,
        blur_y=request.mask_blur_y,
        round=request.mask_round,
        size=image.size,
    )
    if prepared.note:
        params.notes.append(prepared.note)
    W, H = request.width, request.height
    if request.inpaint_full_res:
        region = masking.expand_to_aspect(
            masking.crop_region(prepared.mask, request.inpaint_full_res_padding), W, H, *image.size
        )
        work = MaskedWork(
            image=masking.crop_to_region(image, region, W, H),
            mask=masking.crop_to_region(prepared.mask, region, W, H),
            original=image,
            overlay=masking.overlay_mask(prepared.mask, only_masked=True),
            region=region,
        )
        params.infotext.update(
            {"Inpaint area": INPAINT_AREAS[1], "Masked area padding": request.inpaint_full_res_padding}
        )
    else:
        masking.crop_region(prepared.mask)  # an empty mask is refused with a clear message
        resized = resize_image(request.resize_mode, image, W, H)
        mask = resize_image(request.resize_mode, prepared.mask, W, H)
        work = MaskedWork(
            image=resized, mask=mask, original=resized, overlay=masking.overlay_mask(mask, only_masked=False)
        )
    if request.inpainting_fill != 1:
        work.image = masking.fill_masked(work.image, work.mask)
        params.infotext["Masked content"] = MASKED_CONTENT[request.inpainting_fill]
    if request.mask_blur_x == request.mask_blur_y:
        params.infotext["Mask blur"] = request.mask_blur_x
    else:
        params.infotext.update({"Mask blur x": request.mask_blur_x, "Mask blur y": request.mask_blur_y})
    if request.inpainting_mask_invert:
        params.infotext["Mask mode"] = MASK_MODES[1]
    if not request.mask_round:
        params.infotext["Mask rounding"] = False
    return work, params


@torch.no_grad()
def inpainting_channels(work: list[MaskedWork], latent_hw, vae: JobVae) -> torch.Tensor:
    """[mask, masked-image latents] for a 9-channel UNet: the mask rounded and shrunk (nearest) to the latent size,
    the image with the masked area set to 0 (mid grey) encoded by the VAE."""
    masks = torch.cat([masking.mask_to_tensor(w.mask, round=True) for w in work])  # (N,1,H,W) in {0,1}
    pixels = image_to_tensor([w.image for w in work])
    masked = pixels * (masks < 0.5)
    masked_latents = vae.encode(masked)
    small = torch.nn.functional.interpolate(masks, size=latent_hw).to(masked_latents.device, masked_latents.dtype)
    return torch.cat([small, masked_latents], dim=1)


def blend_masks(work: list[MaskedWork], latent_hw, mask_round: bool) -> torch.Tensor:
    """(N,1,h,w) latent masks, 1 = repaint, for ordinary checkpoints (A1111: bicubic shrink, then rounding)."""
    return torch.cat([masking.latent_mask(w.mask, latent_hw, round=mask_round) for w in work])


def paste_back(work: MaskedWork, generated: Image.Image) -> Image.Image:
    """The result on the original: pixels outside the (blurred) mask are the original's, exactly."""
    return masking.composite(work.original, generated, work.overlay, work.region)


@torch.no_grad()
def txt2img_channels(variant: str, latents_shape, vae: JobVae, dtype: torch.dtype) -> torch.Tensor | None:
    """Inpainting checkpoints in txt2img see a fully masked, mid-grey image (what A1111 feeds them); None for
    other checkpoints."""
    if variant != "inpaint":
        return None
    b, _, h, w = latents_shape
    f = 2 ** (len(vae.vae.config.block_out_channels) - 1)
    grey = torch.zeros(1, 3, h * f, w * f)  # 0.5 in [0, 1] = 0 in [-1, 1]
    masked = vae.encode(grey)
    mask = torch.ones(1, 1, h, w, device=masked.device, dtype=masked.dtype)
    return torch.cat([mask, masked], dim=1).repeat(b, 1, 1, 1).to(dtype)
