"""A control map (the preprocessed image) at the size a UNet call works at, with the extension's resize modes.

    tensor = control_tensor(image, width, height, "Crop and Resize")   # (1, 3, height, width) float in [0, 1]

- "Just Resize": stretched to the size.
- "Crop and Resize" (inner fit): scaled until it covers the size, the overhang cropped evenly off both sides.
- "Resize and Fill" (outer fit): scaled until it fits inside, the rest filled with the median colour of its border.
An inpaint unit's map is RGBA, the alpha its mask (white = repaint): the mask follows the picture's geometry (the
fill is masked) and the ControlNet sees the kept pixels and -1 where masked, the extension's inpaint protocol.
The resampling follows the kind of map, as the extension's does: a map of few colours (segmentation, a palette)
keeps its colours (nearest neighbour), a smaller size averages (box), a larger one is bicubic; a black-and-white
map (edges, scribbles) stays black and white. Pure functions of their arguments.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from PIL import Image

from sdui.controlnet.modes import ResizeMode, resize_mode
from sdui.errors import InvalidRequestError

PALETTE_COLOURS = 200  # fewer distinct colours than this (and more than 2): a label map, resized by nearest
MAX_SIDE = 16384  # a map or target side beyond this is refused before any work


def to_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 from a PIL image or an array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); transparency is laid
    over white, as the extension's HWC3 does."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGBA") if "A" in image.getbands() else image.convert("RGB"))
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = np.clip(np.nan_to_num(array.astype(np.float64)), 0, 255).round().astype(np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or 0 in array.shape[:2]:
        raise InvalidRequestError(f"a control image must be H x W with 1, 3 or 4 channels, not {array.shape}")
    if max(array.shape[:2]) > MAX_SIDE:
        raise InvalidRequestError(f"a control image may be at most {MAX_SIDE} pixels on a side, not {array.shape[:2]}")
    if array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    if array.shape[2] == 4:
        alpha = array[:, :, 3:].astype(np.float32) / 255.0
        blended = array[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return blended.clip(0, 255).round().astype(np.uint8)
    return array


def _colour_count(array: np.ndarray, limit: int = PALETTE_COLOURS) -> int:
    packed = (array[:, :, 0].astype(np.uint32) << 16) | (array[:, :, 1].astype(np.uint32) << 8) | array[:, :, 2]
    return len(np.unique(packed)) if packed.size else 0


def resample(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """`array` (H, W, 3) uint8 at (width, height), with the filter that suits the map."""
    if array.shape[1] == width and array.shape[0] == height:
        return array
    colours = _colour_count(array)
    binary = colours == 2 and array.min() < 16 and array.max() > 240
    if 2 < colours < PALETTE_COLOURS:
        method = Image.Resampling.NEAREST
    elif width * height < array.shape[0] * array.shape[1]:
        method = Image.Resampling.BOX
    else:
        method = Image.Resampling.BICUBIC
    resized = np.asarray(Image.fromarray(array).resize((width, height), method))
    if binary:  # back to black and white: an edge map's lines stay lines, not grey ramps
        grey = resized.mean(axis=2).round().astype(np.uint8)
        if grey.min() == grey.max():
            return resized
        # Otsu's level, as the extension thresholds binary maps: a 1-pixel line shrunk 8x is faint grey, which a
        # fixed level of 127 would erase and Otsu keeps
        _, lines = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        resized = np.repeat(lines[:, :, None], 3, axis=2)
    return resized


def resize_map(
    image: Image.Image | np.ndarray,
    width: int,
    height: int,
    mode: ResizeMode | str | int = ResizeMode.CROP_AND_RESIZE,
    *,
    fill: int | None = None,
):
    """The control map at exactly (width, height), (H, W, 3) uint8, by the resize mode. `fill`: the grey of
    "Resize and Fill"'s margins (None: the median colour of the map's border)."""
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise InvalidRequestError(f"a control map size must be 1..{MAX_SIDE} pixels, not {width}x{height}")
    mode = resize_mode(mode)
    array = to_rgb_array(image)
    if mode is ResizeMode.JUST_RESIZE:
        return resample(array, width, height)
    old_h, old_w = array.shape[:2]
    cover = mode is ResizeMode.CROP_AND_RESIZE
    k = max(height / old_h, width / old_w) if cover else min(height / old_h, width / old_w)
    new_w, new_h = max(1, round(old_w * k)), max(1, round(old_h * k))
    scaled = resample(array, new_w, new_h)
    if cover:
        top, left = max(0, (new_h - height) // 2), max(0, (new_w - width) // 2)
        return scaled[top : top + height, left : left + width]
    border = np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = np.median(border, axis=0).astype(np.uint8) if fill is None else fill
    top, left = max(0, (height - new_h) // 2), max(0, (width - new_w) // 2)
    canvas[top : top + new_h, left : left + new_w] = scaled[:height, :width]
    return canvas


def inpaint_hint(
    rgba: np.ndarray, width: int, height: int, mode: ResizeMode | str | int = ResizeMode.CROP_AND_RESIZE
) -> np.ndarray:
    """An inpaint unit's RGBA map at (width, height) as its ControlNet takes it: (H, W, 3) float32, the picture in
    [0, 1] where kept and -1 where the mask (alpha > 127) asks for new content."""
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise InvalidRequestError(f"an inpaint control map must be RGBA (the mask in alpha), not {rgba.shape}")
    picture = resize_map(rgba[:, :, :3], width, height, mode)
    mask = resize_map(rgba[:, :, 3], width, height, mode, fill=255)[:, :, 0] > 127
    return np.where(mask[:, :, None], -1.0, picture.astype(np.float32) / 255.0).astype(np.float32)


def control_tensor(
    image: Image.Image | np.ndarray,
    width: int,
    height: int,
    mode: ResizeMode | str | int = ResizeMode.CROP_AND_RESIZE,
    *,
    inpaint: bool = False,
) -> torch.Tensor:
    """The control map as the ControlNet takes it: (1, 3, height, width) float32 in [0, 1] (an inpaint unit's
    RGBA map: -1 where masked)."""
    if inpaint:
        array = inpaint_hint(
            np.asarray(image.convert("RGBA") if isinstance(image, Image.Image) else image), width, height, mode
        )
    else:
        array = resize_map(image, width, height, mode).astype(np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()
