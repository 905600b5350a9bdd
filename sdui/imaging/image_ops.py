"""Pixel-side image operations for img2img and its relatives: resizing with A1111's four resize modes, alpha
flattening, and PIL -> tensor.

A1111 v1.10 resamples with LANCZOS when it shrinks and with its img2img upscaler (option "Upscaler for img2img",
default none -> LANCZOS) when it enlarges. Here LANCZOS is used both ways unless the caller passes an `upscaler`;
masks ('L') always use LANCZOS, as in A1111.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from sdui.errors import InvalidRequestError

LANCZOS = Image.Resampling.LANCZOS


# (image, width, height) -> image of about that size; only asked to enlarge
Upscaler = Callable[[Image.Image, int, int], Image.Image]


def _resample(image: Image.Image, width: int, height: int, upscaler: Upscaler | None) -> Image.Image:
    if (width, height) == image.size:
        return image.copy()
    enlarging = width > image.width or height > image.height
    if upscaler is not None and enlarging and image.mode != "L":
        image = upscaler(image, width, height)
        if image.size == (width, height):
            return image
    return image.resize((width, height), resample=LANCZOS)


def _edge_band(image: Image.Image, side: str, size: tuple[int, int]) -> Image.Image:
    """A band of `size` made by stretching one outermost row/column of `image` across it.

    A zero-width source box resampled bicubically, as A1111 does (PIL's default filter there): bicubic weights around
    the edge extrapolate a little from the two outermost rows, so this gives A1111's exact pixels; a band next to a
    uniform edge takes exactly the edge colour.
    """
    w, h = image.size
    box = {"top": (0, 0, w, 0), "bottom": (0, h, w, h), "left": (0, 0, 0, h), "right": (w, 0, w, h)}[side]
    return image.resize(size, resample=Image.Resampling.BICUBIC, box=box)


def resize_image(
    mode: int, image: Image.Image, width: int, height: int, *, upscaler: Upscaler | None = None
) -> Image.Image:
    """`image` brought to width x height by A1111's resize mode (keeps the image's mode):

    0 "Just resize": stretch to the new size.
    1 "Crop and resize": scale to cover the new size keeping the aspect ratio, then cut the centre out.
    2 "Resize and fill": scale to fit inside keeping the aspect ratio, centre it, and fill the empty bands by
      stretching the image's outermost rows (or columns) across them.
    3 "Just resize (latent upscale)": on the pixel side a plain stretch; the latent upscale itself happens in latent
      space. (A1111 never pixel-resizes the init image in this mode: it encodes it at its own size and stretches the
      latents bilinearly, so the composition is the same as a stretch.)
    """
    if mode not in (0, 1, 2, 3):
        raise InvalidRequestError(
            f"resize_mode must be 0 (Just resize), 1 (Crop and resize), 2 (Resize and fill) "
            f"or 3 (Just resize (latent upscale)), got {mode!r}"
        )
    if width <= 0 or height <= 0:
        raise InvalidRequestError(f"cannot resize an image to {width}x{height}: width and height must be positive")
    if mode in (0, 3):
        return _resample(image, width, height, upscaler)

    target_ratio = width / height
    source_ratio = image.width / image.height
    # the scaled size, in A1111's integer arithmetic so that offsets (and hence pixels) match
    if mode == 1:
        wider_target = target_ratio > source_ratio
        # (at least 1: a sliver of an image meeting a very flat target would round to nothing, a PIL error)
        scaled_w = width if wider_target else max(1, image.width * height // image.height)
        scaled_h = height if not wider_target else max(1, image.height * width // image.width)
        scaled = _resample(image, scaled_w, scaled_h, upscaler)
        left, top = scaled_w // 2 - width // 2, scaled_h // 2 - height // 2
        return scaled.crop((left, top, left + width, top + height))

    wider_source = target_ratio < source_ratio
    scaled_w = width if wider_source else max(1, image.width * height // image.height)
    scaled_h = height if not wider_source else max(1, image.height * width // image.width)
    scaled = _resample(image, scaled_w, scaled_h, upscaler)
    left, top = width // 2 - scaled_w // 2, height // 2 - scaled_h // 2
    canvas = Image.new(image.mode, (width, height))
    canvas.paste(scaled, (left, top))
    if scaled_h < height:  # bands above and below
        below = height - top - scaled_h
        if top > 0:
            canvas.paste(_edge_band(scaled, "top", (width, top)), (0, 0))
        if below > 0:
            canvas.paste(_edge_band(scaled, "bottom", (width, below)), (0, top + scaled_h))
    elif scaled_w < width:  # bands left and right
        right = width - left - scaled_w
        if left > 0:
            canvas.paste(_edge_band(scaled, "left", (left, height)), (0, 0))
        if right > 0:
            canvas.paste(_edge_band(scaled, "right", (right, height)), (left + scaled_w, 0))
    return canvas


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def flatten(image: Image.Image, bgcolor: str | tuple = "#ffffff") -> Image.Image:
    """RGB without transparency: transparent parts show `bgcolor` (A1111's img2img_background_color, default white)."""
    if not has_alpha(image):
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, bgcolor)
    return Image.alpha_composite(background, rgba).convert("RGB")


def image_to_tensor(images: Image.Image | Sequence[Image.Image]) -> torch.Tensor:
    """RGB image(s) of one size as a float32 NCHW tensor in [-1, 1] (what the VAE encoder takes)."""
    if isinstance(images, Image.Image):
        images = [images]
    if not images:
        raise ValueError("image_to_tensor needs at least one image")
    size = images[0].size
    arrays = []
    for image in images:
        if image.size != size:
            raise InvalidRequestError(
                f"images of one batch must share a size: got {image.size[0]}x{image.size[1]} "
                f"and {size[0]}x{size[1]}; resize them to the request's width and height first"
            )
        arrays.append(np.asarray(image.convert("RGB"), dtype=np.float32))
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return (batch / 127.5 - 1.0).contiguous()
