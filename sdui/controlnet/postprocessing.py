"""What some ControlNet modules do to the decoded picture, as sd-webui-controlnet's postprocess_batch does: recolor
puts the map's lightness back, inpaint_only keeps the unmasked pixels of the unit's image.

    picture = after_decode(module, picture, control_map)   # HWC float32 in [0, 1] -> same; the map at that size

Pure functions: the picture and the unit's map (already fitted to the generation size, control_image.py) in, the
corrected picture out. tile_colorfix's correction acts on the model's prediction during sampling (not here).
"""

from __future__ import annotations

import cv2
import numpy as np

INPAINT_BLUR = 7  # pixels: the extension's "control_net_inpaint_blur_sigma" default (a square dilate, then box blur)


def recolor(picture: np.ndarray, grey_map: np.ndarray, module: str) -> np.ndarray:
    """The picture's colours with the map's lightness: LAB's L for recolor_luminance, HSV's V for
    recolor_intensity (in 8 bits, as the extension converts)."""
    pixels = (picture * 255).clip(0, 255).astype(np.uint8)
    to_space, back = (
        (cv2.COLOR_RGB2LAB, cv2.COLOR_LAB2RGB) if "luminance" in module else (cv2.COLOR_RGB2HSV, cv2.COLOR_HSV2RGB)
    )
    converted = cv2.cvtColor(pixels, to_space)
    converted[:, :, 0 if "luminance" in module else 2] = grey_map[:, :, 0] if grey_map.ndim == 3 else grey_map
    return (cv2.cvtColor(converted, back).astype(np.float32) / 255.0).clip(0, 1)


def inpaint_only_restore(picture: np.ndarray, rgba_map: np.ndarray, blur: int = INPAINT_BLUR) -> np.ndarray:
    """The unit's image where it was not masked, the generated picture where it was, blended over a seam the mask
    grows by (dilated, then box-blurred, `blur` pixels)."""
    mask = (rgba_map[:, :, 3] > 127).astype(np.float32)
    if blur > 0:
        mask = cv2.blur(cv2.dilate(mask, np.ones((blur, blur), np.uint8)), (blur, blur))
    mask = mask[:, :, None]
    original = rgba_map[:, :, :3].astype(np.float32) / 255.0
    return (mask * picture.clip(0, 1) + (1 - mask) * original).clip(0, 1).astype(np.float32)


def after_decode(module: str, picture: np.ndarray, control_map: np.ndarray) -> np.ndarray:
    """The picture as the module leaves it (unchanged for modules without such a step)."""
    if module in ("recolor_luminance", "recolor_intensity"):
        return recolor(picture, control_map, module)
    if module == "inpaint_only" and control_map.ndim == 3 and control_map.shape[2] == 4:
        return inpaint_only_restore(picture, control_map)
    return picture
