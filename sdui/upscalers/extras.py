"""Extras (A1111's postprocessing tab and /sdapi/v1/extra-* routes): upscale an image by a factor or to a size, with a
second upscaler blended in, then faces restored with GFPGAN and CodeFormer (A1111's script order: upscale, GFPGAN,
CodeFormer; `upscale_first` is accepted and, as in A1111's current code, changes nothing); the parameters it writes as
A1111 does ("Postprocess upscale by: 2, ..., GFPGAN visibility: 0.5")."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from PIL import Image

from sdui.errors import InvalidRequestError
from sdui.upscalers.face_restoration import FACE_RESTORERS, FaceRestorationError
from sdui.upscalers.upscaling import canonical_upscaler, upscale_image, upscaler_names

NO_UPSCALER = "None"


@dataclass(frozen=True)
class ExtrasOptions:
    """A1111's ExtrasBaseRequest fields, with its defaults."""

    resize_mode: int = 0  # 0: scale by upscaling_resize; 1: to upscaling_resize_w x _h
    upscaling_resize: float = 2.0
    upscaling_resize_w: int = 512
    upscaling_resize_h: int = 512
    upscaling_crop: bool = True  # mode 1: cover the size and crop, instead of stretching
    upscaler_1: str = NO_UPSCALER
    upscaler_2: str = NO_UPSCALER
    extras_upscaler_2_visibility: float = 0.0
    gfpgan_visibility: float = 0.0
    codeformer_visibility: float = 0.0
    codeformer_weight: float = 0.0
    upscale_first: bool = False


def check(options: ExtrasOptions, image_size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    """The size the image will be upscaled to; InvalidRequestError for values A1111 refuses or we cannot honour."""
    problems = []
    for field in ("upscaler_1", "upscaler_2"):
        name = getattr(options, field)
        if canonical_upscaler(name) is None:
            problems.append(f"{field} {name!r} is not an upscaler here; choose one of: {', '.join(upscaler_names())}")
    for field in ("extras_upscaler_2_visibility", "gfpgan_visibility", "codeformer_visibility", "codeformer_weight"):
        value = getattr(options, field)
        if not math.isfinite(value) or not 0 <= value <= 1:
            problems.append(f"{field} must be between 0 and 1 (got {value})")
    for field, name in (("gfpgan_visibility", "GFPGAN"), ("codeformer_visibility", "CodeFormer")):
        if getattr(options, field) > 0:
            try:
                FACE_RESTORERS.require(name)
            except FaceRestorationError as e:
                problems.append(f"{field}: {e}")
    if options.resize_mode not in (0, 1):
        problems.append(
            f"resize_mode must be 0 (scale by upscaling_resize) or 1 (to a size), not {options.resize_mode}"
        )
    if options.resize_mode == 0 and not (math.isfinite(options.upscaling_resize) and options.upscaling_resize > 0):
        problems.append(f"upscaling_resize must be more than 0 (got {options.upscaling_resize})")
    if options.resize_mode == 1 and (options.upscaling_resize_w < 1 or options.upscaling_resize_h < 1):
        problems.append(
            f"upscaling_resize_w and _h must be at least 1 (got {options.upscaling_resize_w}x"
            f"{options.upscaling_resize_h})"
        )
    if problems:
        raise InvalidRequestError("Invalid extras request: " + "; ".join(problems) + ".")
    w, h = image_size
    if options.resize_mode == 0:
        size = (int(w * options.upscaling_resize), int(h * options.upscaling_resize))
    else:
        size = (options.upscaling_resize_w, options.upscaling_resize_h)
    if size[0] < 1 or size[1] < 1:
        raise InvalidRequestError(f"upscaling {w}x{h} gives {size[0]}x{size[1]}: no pixels left; scale by more")
    if size[0] * size[1] > max_pixels:
        raise InvalidRequestError(
            f"upscaling {w}x{h} gives {size[0]}x{size[1]}, larger than the configured limit of "
            f"{max_pixels} pixels (setting max_image_pixels)"
        )
    return size


def run(image: Image.Image, options: ExtrasOptions, max_pixels: int) -> tuple[Image.Image, dict]:
    """(the processed image, A1111's "Postprocess ..." parameters). With upscaler_1 "None" nothing is upscaled."""
    size = check(options, image.size, max_pixels)
    options = dataclasses.replace(  # the names as listed, whatever case or file stem the client sent
        options, upscaler_1=canonical_upscaler(options.upscaler_1), upscaler_2=canonical_upscaler(options.upscaler_2)
    )
    image = image.convert("RGB")
    result, info = _upscale_step(image, options, size) if options.upscaler_1 != NO_UPSCALER else (image, {})
    if options.gfpgan_visibility > 0:
        result = FACE_RESTORERS.restore(result, "GFPGAN", options.gfpgan_visibility)
        info["GFPGAN visibility"] = round(options.gfpgan_visibility, 3)
    if options.codeformer_visibility > 0:
        result = FACE_RESTORERS.restore(
            result, "CodeFormer", options.codeformer_visibility, codeformer_weight=options.codeformer_weight
        )
        info["CodeFormer visibility"] = round(options.codeformer_visibility, 3)
        info["CodeFormer weight"] = round(options.codeformer_weight, 3)
    return result, info


def _upscale_step(image: Image.Image, options: ExtrasOptions, size: tuple[int, int]) -> tuple[Image.Image, dict]:
    w, h = image.size
    if options.resize_mode == 1 and options.upscaling_crop:
        scale = max(size[0] / w, size[1] / h)  # cover the size, then crop the overflow (centred)
        target = (math.ceil(w * scale), math.ceil(h * scale))
    else:
        target = size
    result = _upscale(image, options, target)
    if options.resize_mode == 0:
        by = options.upscaling_resize
        info = {"Postprocess upscale by": int(by) if float(by).is_integer() else by}  # "2", as A1111's UI writes it
    else:
        info = {"Postprocess upscale to": f"{size[0]}x{size[1]}"}
    if options.resize_mode == 1 and options.upscaling_crop and result.size != size:
        left, top = (result.width - size[0]) // 2, (result.height - size[1]) // 2
        result = result.crop((left, top, left + size[0], top + size[1]))
        info["Postprocess crop to"] = f"{size[0]}x{size[1]}"
    info["Postprocess upscaler"] = options.upscaler_1
    if options.upscaler_2 != NO_UPSCALER and options.extras_upscaler_2_visibility > 0:
        info["Postprocess upscaler 2"] = options.upscaler_2
    return result, info


def _upscale(image: Image.Image, options: ExtrasOptions, target: tuple[int, int]) -> Image.Image:
    first = upscale_image(image, options.upscaler_1, *target)
    if options.upscaler_2 == NO_UPSCALER or options.extras_upscaler_2_visibility <= 0:
        return first
    second = upscale_image(image, options.upscaler_2, *target)
    return Image.blend(first, second, options.extras_upscaler_2_visibility)


def info_text(info: dict) -> str:
    """The parameters as A1111's extras shows them: "Key: value, Key: value"."""
    return ", ".join(f"{k}: {v}" for k, v in info.items())
