"""Outpaint = inpaint on a grown canvas: the new area is pre-filled, masked, and inpainted through the same core.
Used by the Outpaint tab and by the API's outpaint_* fields, so both grow canvases the same way."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from sdui.errors import InvalidRequestError
from sdui.imaging.masking import OutpaintCanvas, outpaint_canvas
from sdui.request import MAX_MASK_BLUR, Img2ImgRequest
from sdui.settings.definitions import MAX_IMAGE_PIXELS

# how the new area is pre-filled, by the request's "masked content" (inpainting_fill): "original" has nothing
# original there, so the outermost pixels are stretched outward; the latent modes replace it anyway
CANVAS_FILL = {0: "fill", 1: "edge", 2: "none", 3: "none"}


def _ceil8(value: int) -> int:
    return -(-value // 8) * 8


def canvas_size(image_size: tuple[int, int], *, left=0, right=0, up=0, down=0) -> tuple[int, int]:
    """The result's size: the image grown on each side, then up to a multiple of 8 (the VAE's cell)."""
    w, h = image_size
    return _ceil8(w + left + right), _ceil8(h + up + down)


def _round_up(canvas: OutpaintCanvas, sides: dict) -> OutpaintCanvas:
    """Grow the canvas by the few pixels that make its sides multiples of 8, where it grows anyway (else right /
    down); those pixels are new area too. Nothing is stretched, so the original stays pixel-exact."""
    w, h = canvas.image.size
    dx, dy = (-w) % 8, (-h) % 8
    if not (dx or dy):
        return canvas
    left = dx if sides["left"] and not sides["right"] else 0
    up = dy if sides["up"] and not sides["down"] else 0
    pad = ((up, dy - up), (left, dx - left))
    image = np.pad(np.asarray(canvas.image), (*pad, (0, 0)), mode="edge")
    mask = np.pad(np.asarray(canvas.mask), pad, constant_values=255)
    return OutpaintCanvas(Image.fromarray(image, "RGB"), Image.fromarray(mask, "L"))


def outpaint_request(
    request: Img2ImgRequest,
    *,
    left: int = 0,
    right: int = 0,
    up: int = 0,
    down: int = 0,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> Img2ImgRequest:
    """The request grown by the given pixels (multiples of 8) on each side: the canvas is the init image, the new
    area (plus twice the mask blur into the original, so the seam fades over original pixels, as A1111) the mask,
    and the size the canvas's. The canvas size is checked against `max_pixels` before anything is allocated."""
    if not request.init_images:
        raise InvalidRequestError("outpaint needs an image: send it in init_images")
    sides = dict(left=left, right=right, up=up, down=down)
    if any(not isinstance(v, int) or v < 0 for v in sides.values()):
        raise InvalidRequestError(f"outpaint sides must be 0 or more pixels (got {sides})")
    if not isinstance(request.mask_blur_x, int) or not 0 <= request.mask_blur_x <= MAX_MASK_BLUR:
        raise InvalidRequestError(f"mask blur must be between 0 and {MAX_MASK_BLUR} pixels (got {request.mask_blur_x})")
    w, h = canvas_size(request.init_images[0].size, **sides)
    if w * h > max_pixels:
        raise InvalidRequestError(
            f"outpainting {request.init_images[0].width}x{request.init_images[0].height} by {sides} gives a "
            f"{w}x{h} canvas, larger than the configured limit of {max_pixels} pixels (setting max_image_pixels)"
        )
    canvas = outpaint_canvas(
        request.init_images[0],
        **sides,
        fill=CANVAS_FILL.get(request.inpainting_fill, "fill"),
        overlap=2 * request.mask_blur_x,
    )
    canvas = _round_up(canvas, sides)
    return dataclasses.replace(
        request,
        init_images=[canvas.image],
        mask=canvas.mask,
        width=canvas.image.width,
        height=canvas.image.height,
        resize_mode=0,
        inpaint_full_res=False,
        inpainting_mask_invert=0,
    )
