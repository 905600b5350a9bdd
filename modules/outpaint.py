"""Outpaint = inpaint on a grown canvas: the new area is pre-filled, masked, and inpainted through the same core."""
from __future__ import annotations

import dataclasses

from modules.errors import InvalidRequestError
from modules.masking import outpaint_canvas
from modules.request import Img2ImgRequest

# how the new area is pre-filled, by the request's "masked content" (inpainting_fill)
CANVAS_FILL = {0: "fill", 1: "edge", 2: "none", 3: "none"}


def outpaint_request(request: Img2ImgRequest, *, left: int = 0, right: int = 0, up: int = 0,
                     down: int = 0) -> Img2ImgRequest:
    """The request grown by the given pixels on each side: canvas as the init image, the new area (plus twice the
    mask blur into the original, so the seam fades over original pixels) as the mask, size = the canvas."""
    if not request.init_images:
        raise InvalidRequestError("outpaint needs an image: send it in init_images")
    canvas = outpaint_canvas(request.init_images[0], left=left, right=right, up=up, down=down,
                             fill=CANVAS_FILL.get(request.inpainting_fill, "fill"), overlap=2 * request.mask_blur_x)
    width, height = canvas.image.size
    if width % 8 or height % 8:
        raise InvalidRequestError(f"the outpainted canvas would be {width}x{height}; its sides must be multiples of 8, "
                                  f"so send an image whose width and height are multiples of 8")
    return dataclasses.replace(request, init_images=[canvas.image], mask=canvas.mask, width=width, height=height,
                               resize_mode=0, inpaint_full_res=False, inpainting_mask_invert=0)
