"""Step 0 of a generation: a client's mistake gets a message that says what to change, before any work is done.

Every number a client sends is checked here against what it can mean, and every size and count against the job's
bounds (the max_* settings), so that no value reaches code that would fail on it, wrap it around or allocate for it.
"""

from __future__ import annotations

import math

from sdui.errors import InvalidRequestError
from sdui.models.sd_model import SDModel
from sdui.request import (
    MASK_MODES,
    MASKED_CONTENT,
    MAX_CFG_SCALE,
    MAX_MASK_BLUR,
    MAX_MASK_PADDING,
    GenerationRequest,
    Img2ImgRequest,
)
from sdui.settings.snapshot import Settings

# torch generators take 64-bit seeds; seed + i of the last image must still be one
SEED_RANGE = (-(2**63), 2**63 - 1)


def validate(request: GenerationRequest, model: SDModel | None, settings: Settings) -> None:
    """Raise InvalidRequestError listing every problem of `request` for `model`, or return."""
    problems: list[str] = []
    factor = model.vae_scale_factor if model is not None else 8
    max_pixels = int(settings.max_image_pixels)
    _check_numbers(request, problems)
    _check_size(request, factor, max_pixels, problems)
    _check_work(request, settings, problems)
    _check_seeds(request, max_pixels, problems)
    if isinstance(request, Img2ImgRequest):
        _check_img2img(request, max_pixels, problems)
    if request.enable_hr and (request.hr_resize_x < 0 or request.hr_resize_y < 0):
        problems.append(
            f"hires resize must be 0 (use hr_scale) or a size (got {request.hr_resize_x}x{request.hr_resize_y})"
        )
    _check_model(request, model, problems)
    if problems:
        raise InvalidRequestError("Invalid request: " + "; ".join(problems) + ".")


SAMPLER_NUMBERS = ("s_churn", "s_tmin", "s_tmax", "s_noise", "s_min_uncond")
MAX_SAMPLER_NUMBER = 1000  # far above any useful value (A1111's sliders stop at 100 for churn, 999 for tmax)


def _check_numbers(request: GenerationRequest, problems: list[str]) -> None:
    """Numbers that must be finite: NaN or infinity would give black images or fail deep inside."""
    names = ["cfg_scale", "denoising_strength", "subseed_strength", "hr_scale", "eta", *SAMPLER_NUMBERS]
    if isinstance(request, Img2ImgRequest):
        names += ["image_cfg_scale", "initial_noise_multiplier"]
    for name in names:
        value = getattr(request, name)
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
            problems.append(f"{name} must be a finite number (got {value})")
    for name in ("cfg_scale", "image_cfg_scale"):
        value = getattr(request, name, None)
        if isinstance(value, (int, float)) and math.isfinite(value) and abs(value) > MAX_CFG_SCALE:
            problems.append(
                f"{name} must be between -{MAX_CFG_SCALE} and {MAX_CFG_SCALE} (got {value}); beyond that the "
                "image is noise, and in half precision the numbers overflow"
            )
    for name in ("eta", *SAMPLER_NUMBERS):
        value = getattr(request, name)
        if isinstance(value, (int, float)) and math.isfinite(value) and not 0 <= value <= MAX_SAMPLER_NUMBER:
            problems.append(f"{name} must be between 0 and {MAX_SAMPLER_NUMBER} (got {value})")
    strengths = (
        ("subseed_strength", "variation strength (subseed_strength)"),
        ("denoising_strength", "denoising strength"),
    )
    for name, what in strengths:
        value = getattr(request, name)
        if isinstance(value, (int, float)) and math.isfinite(value) and not 0.0 <= value <= 1.0:
            problems.append(f"{what} must be between 0 and 1 (got {value})")
    if (
        request.enable_hr
        and isinstance(request.hr_scale, (int, float))
        and math.isfinite(request.hr_scale)
        and request.hr_scale <= 0
    ):
        problems.append(f"hr_scale must be more than 0 (got {request.hr_scale})")


def _check_size(request: GenerationRequest, factor: int, max_pixels: int, problems: list[str]) -> None:
    for name in ("width", "height"):
        value = getattr(request, name)
        if not isinstance(value, int) or value < factor or value % factor:
            hint = max(factor, (int(value) // factor) * factor) if isinstance(value, (int, float)) else 512
            problems.append(f"{name} must be a positive multiple of {factor} (got {value}); try {hint}")
    w, h = request.width, request.height
    if isinstance(w, int) and isinstance(h, int) and w * h > max_pixels:
        problems.append(
            f"{w}x{h} is larger than the configured limit of {max_pixels} pixels (setting max_image_pixels)"
        )


def _check_work(request: GenerationRequest, settings: Settings, problems: list[str]) -> None:
    """Steps and batches: at least one, at most the job's bounds."""
    max_steps = int(settings.max_sampling_steps)
    for name, value in (("steps", request.steps), ("hr_second_pass_steps", request.hr_second_pass_steps)):
        low = 1 if name == "steps" else 0
        if not isinstance(value, int) or not low <= value <= max_steps:
            problems.append(
                f"{name} must be between {low} and {max_steps} (got {value}; the limit is the "
                "setting max_sampling_steps)"
            )
    bounds = (
        ("batch_size", request.batch_size, settings.max_batch_size),
        ("n_iter (batch count)", request.n_iter, settings.max_batch_count),
    )
    for what, value, most in bounds:
        if not isinstance(value, int) or not 1 <= value <= int(most):
            setting = "max_batch_size" if what == "batch_size" else "max_batch_count"
            problems.append(f"{what} must be between 1 and {most} (got {value}; the limit is the setting {setting})")


def _check_seeds(request: GenerationRequest, max_pixels: int, problems: list[str]) -> None:
    low, high = SEED_RANGE
    sizes = (request.batch_size, request.n_iter)
    count = sizes[0] * sizes[1] if all(isinstance(n, int) and n > 0 for n in sizes) else 1
    for name in ("seed", "subseed"):
        value = getattr(request, name)
        if not isinstance(value, int) or not low <= value <= high - max(count, 1):
            problems.append(
                f"{name} must be -1 (random) or a whole number between {low} and {high - count} (got {value})"
            )
    w, h = request.seed_resize_from_w, request.seed_resize_from_h
    if not (isinstance(w, int) and isinstance(h, int)):
        problems.append(f"seed resize sizes must be whole numbers (got {w}x{h})")
    elif w > 0 and h > 0 and w * h > max_pixels:
        problems.append(
            f"seed resize from {w}x{h} is larger than the configured limit of {max_pixels} pixels "
            "(setting max_image_pixels); use 0 to switch it off"
        )


def _check_img2img(request: Img2ImgRequest, max_pixels: int, problems: list[str]) -> None:
    if not request.init_images:
        problems.append("img2img needs an init image (init_images is empty)")
    for image in request.init_images:
        if image.width * image.height > max_pixels:
            problems.append(
                f"the init image is {image.width}x{image.height}, larger than the configured limit "
                f"of {max_pixels} pixels (setting max_image_pixels); scale it down first"
            )
    if request.resize_mode not in (0, 1, 2, 3):
        problems.append(
            "resize_mode must be 0 (just resize), 1 (crop and resize), 2 (resize and fill) or "
            f"3 (latent upscale), not {request.resize_mode}"
        )
    if request.inpainting_fill not in range(len(MASKED_CONTENT)):
        labels = ", ".join(f"{i} ({label})" for i, label in enumerate(MASKED_CONTENT))
        problems.append(f"inpainting_fill must be one of {labels}, not {request.inpainting_fill}")
    if request.inpainting_mask_invert not in range(len(MASK_MODES)):
        problems.append(
            f"inpainting_mask_invert must be 0 ({MASK_MODES[0]}) or 1 ({MASK_MODES[1]}), not "
            f"{request.inpainting_mask_invert}"
        )
    for name in ("mask_blur_x", "mask_blur_y"):
        value = getattr(request, name)
        if not isinstance(value, int) or not 0 <= value <= MAX_MASK_BLUR:
            problems.append(f"mask blur must be between 0 and {MAX_MASK_BLUR} pixels (got {value})")
            break
    padding = request.inpaint_full_res_padding
    if not isinstance(padding, int) or not 0 <= padding <= MAX_MASK_PADDING:
        # beyond the image it changes nothing (the region stops at the edges, as in A1111), so only absurd values
        # are refused
        problems.append(f"inpaint_full_res_padding must be between 0 and {MAX_MASK_PADDING} pixels (got {padding})")


def _check_model(request: GenerationRequest, model: SDModel | None, problems: list[str]) -> None:
    img2img = isinstance(request, Img2ImgRequest)
    if model is not None and model.variant == "depth" and not img2img:
        problems.append(
            "this is a depth checkpoint (SD2 depth): it turns an image into another with the same depth, "
            "so use img2img (depth2img) with an init image"
        )
    if img2img and request.depth_map is not None and model is not None and model.variant != "depth":
        problems.append(
            "a depth map was given but this checkpoint is not a depth model: pick an SD2 depth "
            "checkpoint (e.g. 512-depth-ema) for depth2img"
        )
    if img2img and request.mask is not None and model is not None and model.variant == "depth":
        problems.append("depth checkpoints do not inpaint: send no mask, or pick another checkpoint")
