"""Upscaling for hires fix: latent interpolation modes, simple pixel upscalers, and the target-size arithmetic.

Names, sizes and rounding follow A1111 v1.10.1 so that requests, infotexts and output sizes match:
- a "Latent ..." upscaler interpolates the first-pass latents to (target_h // 8, target_w // 8);
- any other name is a pixel upscaler: the decoded image is enlarged to exactly target_w x target_h, then re-encoded;
- hr sizes are NOT rounded to multiples of 8 up front: the latent grid floors them (so the final image is
  8 * floor(target / 8) minus the cover-crop), exactly as A1111 does.
Model upscalers (ESRGAN & co, through spandrel: sdui/upscalers/model_upscalers.py) follow the built-in ones.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from PIL import Image

from sdui.errors import InvalidRequestError
from sdui.upscalers.model_upscalers import MODEL_UPSCALERS

LATENT_FACTOR = 8  # pixels per latent cell of every SD VAE

# A1111 name -> torch.nn.functional.interpolate settings (shared.latent_upscale_modes)
LATENT_UPSCALE_MODES: dict[str, dict] = {
    "Latent": {"mode": "bilinear", "antialias": False},
    "Latent (antialiased)": {"mode": "bilinear", "antialias": True},
    "Latent (bicubic)": {"mode": "bicubic", "antialias": False},
    "Latent (bicubic antialiased)": {"mode": "bicubic", "antialias": True},
    "Latent (nearest)": {"mode": "nearest", "antialias": False},
    "Latent (nearest-exact)": {"mode": "nearest-exact", "antialias": False},
}
DEFAULT_HR_UPSCALER = "Latent"  # what hr_upscaler=None means


def _lanczos_step(image: Image.Image, scale: float) -> Image.Image:
    return image.resize((int(image.width * scale), int(image.height * scale)), resample=Image.Resampling.LANCZOS)


def _nearest_step(image: Image.Image, scale: float) -> Image.Image:
    return image.resize((int(image.width * scale), int(image.height * scale)), resample=Image.Resampling.NEAREST)


# name -> one enlargement step by `scale` (None: no upscaler, a plain Lanczos resize to the target)
_PIXEL_STEPS: dict[str, Callable[[Image.Image, float], Image.Image] | None] = {
    "None": None,
    "Lanczos": _lanczos_step,
    "Nearest": _nearest_step,
}

# GET /sdapi/v1/upscalers entries of the built-ins, in A1111's order (None, Lanczos, Nearest first). `scale` is
# A1111's nominal 4 for these. Copy before handing out: this list is module state.
UPSCALERS: list[dict] = [
    {"name": name, "model_name": None, "model_path": None, "model_url": None, "scale": 4} for name in _PIXEL_STEPS
]


def upscaler_entries() -> list[dict]:
    """Every upscaler as GET /sdapi/v1/upscalers lists it: the built-ins, then the model files found now."""
    models = [
        {
            "name": m.name,
            "model_name": m.path.stem,
            "model_path": str(m.path),
            "model_url": None,
            "scale": m.nominal_scale,
        }
        for m in MODEL_UPSCALERS.refresh()
    ]
    return [dict(entry) for entry in UPSCALERS] + models


def upscaler_names(refresh: bool = False) -> list[str]:
    """Built-in then model upscaler names; `refresh` reads the folders again first."""
    models = MODEL_UPSCALERS.refresh() if refresh else MODEL_UPSCALERS.list()
    return [*_PIXEL_STEPS, *(m.name for m in models)]


def canonical_upscaler(name: str) -> str | None:
    """The listed name of a built-in or model upscaler given by name or file stem, any case (the folders are read
    again for a name not seen yet); None when there is none."""
    for builtin in _PIXEL_STEPS:
        if builtin.lower() == name.lower():
            return builtin
    model = MODEL_UPSCALERS.find(name)
    return model.name if model is not None else None


def _step(name: str) -> Callable[[Image.Image, float], Image.Image] | None:
    """One enlargement step of the named upscaler (None: none); an unknown name is the client's error."""
    if name in _PIXEL_STEPS:
        return _PIXEL_STEPS[name]
    model = MODEL_UPSCALERS.find(name)
    if model is None:
        raise InvalidRequestError(f"upscaler {name!r} is not known; use one of: {', '.join(upscaler_names())}")
    return lambda image, scale: MODEL_UPSCALERS.upscale(image, model)


def is_latent_upscaler(name: str | None) -> bool:
    return (DEFAULT_HR_UPSCALER if name is None else name) in LATENT_UPSCALE_MODES


def resolve_hr_upscaler(name: str | None) -> str:
    """The hires upscaler a request asks for (None -> "Latent"); an unknown name is the client's error."""
    name = DEFAULT_HR_UPSCALER if name is None else name
    if name in LATENT_UPSCALE_MODES:
        return name
    if (canonical := canonical_upscaler(name)) is not None:
        return canonical
    valid = ", ".join([*LATENT_UPSCALE_MODES, *upscaler_names()])
    raise InvalidRequestError(f"hr_upscaler {name!r} is not a known upscaler; use one of: {valid}")


def upscale_latent(latents: torch.Tensor, mode_name: str, target_h8: int, target_w8: int) -> torch.Tensor:
    """Interpolate (B, C, H, W) latents to (B, C, target_h8, target_w8) — sizes in latent cells (pixels // 8)."""
    settings = LATENT_UPSCALE_MODES.get(mode_name)
    if settings is None:
        raise InvalidRequestError(
            f"{mode_name!r} is not a latent upscale mode; use one of: {', '.join(LATENT_UPSCALE_MODES)}"
        )
    if target_h8 < 1 or target_w8 < 1:
        raise InvalidRequestError(
            f"the hires size must be at least {LATENT_FACTOR}x{LATENT_FACTOR} pixels "
            f"(got a latent of {target_w8}x{target_h8}); raise hr_scale or hr_resize_x/y"
        )
    # antialiased kernels have no half-precision CPU implementation; interpolating in float32 is also the more exact
    work = latents if latents.dtype in (torch.float32, torch.float64) else latents.float()
    out = F.interpolate(work, size=(target_h8, target_w8), mode=settings["mode"], antialias=settings["antialias"])
    return out.to(latents.dtype)


def upscale_image(image: Image.Image, name: str, target_w: int, target_h: int) -> Image.Image:
    """Enlarge `image` to exactly target_w x target_h with the named pixel upscaler (A1111 "Just resize" + upscaler).

    Mirrors A1111 step by step because the pixels depend on it: no upscaler (or a greyscale image) is one Lanczos
    resize; otherwise, when enlarging, the upscaler runs (at most 3 steps) until it reaches the cover size rounded
    down to a multiple of 8, is Lanczos-resized to exactly that, and finally Lanczos-resized to the target.
    """
    if target_w < 1 or target_h < 1:
        raise InvalidRequestError(f"cannot upscale to {target_w}x{target_h}; width and height must be positive")
    step = _step(name)
    if step is None or image.mode == "L":
        return image.resize((target_w, target_h), resample=Image.Resampling.LANCZOS)

    scale = max(target_w / image.width, target_h / image.height)
    if scale > 1.0:
        image = _run_upscaler(image, step, scale)
    if image.size != (target_w, target_h):
        image = image.resize((target_w, target_h), resample=Image.Resampling.LANCZOS)
    return image


def upscale_by(image: Image.Image, name: str, scale: float) -> Image.Image:
    """Enlarge `image` about `scale` times with the named upscaler, to sides rounded down to a multiple of 8, as
    A1111's Upscaler.upscale does (SD upscale uses it); "None" leaves the image as it is."""
    step = _step(name)
    return image if step is None else _run_upscaler(image, step, scale)


def _run_upscaler(image: Image.Image, step, scale: float) -> Image.Image:
    # A1111's Upscaler.upscale: repeat a model's native step until big enough, then land on a multiple of 8
    dest_w = max(1, int((image.width * scale) // 8 * 8))
    dest_h = max(1, int((image.height * scale) // 8 * 8))
    for _ in range(3):
        if image.width >= dest_w and image.height >= dest_h:
            break
        before = image.size
        image = step(image, scale)
        if image.size == before:
            break
    if image.size != (dest_w, dest_h):
        image = image.resize((dest_w, dest_h), resample=Image.Resampling.LANCZOS)
    return image


def hires_target_size(
    width: int, height: int, hr_scale: float, hr_resize_x: int, hr_resize_y: int
) -> tuple[int, int, int, int]:
    """A1111's hires target: (target_w, target_h, truncate_x, truncate_y).

    target_* is the size the first pass is upscaled to; truncate_* is how many LATENT cells the cover-crop removes
    afterwards (only when both hr_resize_x and hr_resize_y are set and the aspect ratio differs; see `crop_latent`).
    - both resize 0: int(width * hr_scale) x int(height * hr_scale) (truncation toward zero, no rounding to 8);
    - one of them 0: the other side follows the first-pass aspect ratio (integer floor division);
    - both set: scale to cover hr_resize_x x hr_resize_y keeping the aspect ratio, then crop the overflow.
    """
    if width < 1 or height < 1:
        raise InvalidRequestError(f"first-pass size must be positive (got {width}x{height})")
    if hr_resize_x < 0 or hr_resize_y < 0:
        raise InvalidRequestError(
            f"hr_resize_x/hr_resize_y must be 0 (unused) or positive (got {hr_resize_x}x{hr_resize_y})"
        )
    truncate_x = truncate_y = 0
    if hr_resize_x == 0 and hr_resize_y == 0:
        if not hr_scale > 0:
            raise InvalidRequestError(f"hr_scale must be positive (got {hr_scale}); 2 doubles width and height")
        target_w, target_h = int(width * hr_scale), int(height * hr_scale)
    elif hr_resize_y == 0:
        target_w, target_h = hr_resize_x, hr_resize_x * height // width
    elif hr_resize_x == 0:
        target_w, target_h = hr_resize_y * width // height, hr_resize_y
    else:
        if width / height < hr_resize_x / hr_resize_y:  # first pass is relatively taller: match widths, crop height
            target_w, target_h = hr_resize_x, hr_resize_x * height // width
        else:
            target_w, target_h = hr_resize_y * width // height, hr_resize_y
        truncate_x = (target_w - hr_resize_x) // LATENT_FACTOR
        truncate_y = (target_h - hr_resize_y) // LATENT_FACTOR
    if target_w < LATENT_FACTOR or target_h < LATENT_FACTOR:
        raise InvalidRequestError(
            f"the hires size {target_w}x{target_h} is smaller than "
            f"{LATENT_FACTOR}x{LATENT_FACTOR} pixels; raise hr_scale or hr_resize_x/hr_resize_y"
        )
    return target_w, target_h, truncate_x, truncate_y


def crop_latent(latents: torch.Tensor, truncate_x: int, truncate_y: int) -> torch.Tensor:
    """Remove the cover overflow from (..., H, W) latents: half on each side, the odd cell from the end."""
    h, w = latents.shape[-2:]
    return latents[..., truncate_y // 2 : h - (truncate_y + 1) // 2, truncate_x // 2 : w - (truncate_x + 1) // 2]


def hires_image_size(target_w: int, target_h: int, truncate_x: int, truncate_y: int) -> tuple[int, int]:
    """The (width, height) of the final hires image: the latent grid floors the target, then the crop applies."""
    return (
        (target_w // LATENT_FACTOR - truncate_x) * LATENT_FACTOR,
        (target_h // LATENT_FACTOR - truncate_y) * LATENT_FACTOR,
    )


def hires_steps(steps: int, hr_second_pass_steps: int) -> int:
    """Steps of the second pass: hr_second_pass_steps, or the first pass's when it is 0."""
    return hr_second_pass_steps or steps
