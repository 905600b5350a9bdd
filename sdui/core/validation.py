"""Step 0 of a generation: a client's mistake gets a message that says what to change, before any work is done."""

from __future__ import annotations

from sdui.errors import InvalidRequestError
from sdui.models.sd_model import SDModel
from sdui.request import GenerationRequest, Img2ImgRequest
from sdui.settings.snapshot import Settings


def validate(request: GenerationRequest, model: SDModel | None, settings: Settings) -> None:
    """Raise InvalidRequestError listing every problem of `request` for `model`, or return."""
    problems = []
    max_pixels = int(settings.max_image_pixels)
    factor = model.vae_scale_factor if model is not None else 8
    for name in ("width", "height"):
        value = getattr(request, name)
        if not isinstance(value, int) or value < factor or value % factor:
            problems.append(
                f"{name} must be a positive multiple of {factor} (got {value}); "
                f"try {max(factor, (int(value) // factor) * factor) if isinstance(value, (int, float)) else 512}"
            )
    if not isinstance(request.steps, int) or request.steps < 1:
        problems.append(f"steps must be at least 1 (got {request.steps})")
    if request.batch_size < 1 or request.n_iter < 1:
        problems.append(
            f"batch size and batch count must be at least 1 (got {request.batch_size} and {request.n_iter})"
        )
    if not (0.0 <= float(request.subseed_strength) <= 1.0):
        problems.append(
            f"variation strength (subseed_strength) must be between 0 and 1 (got {request.subseed_strength})"
        )
    if (
        isinstance(request.width, int)
        and isinstance(request.height, int)
        and request.width * request.height > max_pixels
    ):
        problems.append(
            f"{request.width}x{request.height} is larger than the configured limit of {max_pixels} pixels "
            f"(setting max_image_pixels)"
        )
    if isinstance(request, Img2ImgRequest):
        if not request.init_images:
            problems.append("img2img needs an init image (init_images is empty)")
        if not (0.0 <= float(request.denoising_strength) <= 1.0):
            problems.append(f"denoising strength must be between 0 and 1 (got {request.denoising_strength})")
        for image in request.init_images:
            if getattr(image, "width", 0) * getattr(image, "height", 0) > max_pixels:
                problems.append(
                    f"the init image is {image.width}x{image.height}, larger than the configured limit "
                    f"of {max_pixels} pixels (setting max_image_pixels); scale it down first"
                )
        if request.resize_mode not in (0, 1, 2, 3):
            problems.append(
                f"resize_mode must be 0 (just resize), 1 (crop and resize), 2 (resize and fill) or "
                f"3 (latent upscale), not {request.resize_mode}"
            )
    if model is not None and model.variant == "depth" and not isinstance(request, Img2ImgRequest):
        problems.append(
            "this is a depth checkpoint (SD2 depth): it turns an image into another with the same depth, "
            "so use img2img (depth2img) with an init image"
        )
    img2img = isinstance(request, Img2ImgRequest)
    if img2img and request.depth_map is not None and model is not None and model.variant != "depth":
        problems.append(
            "a depth map was given but this checkpoint is not a depth model: pick an SD2 depth "
            "checkpoint (e.g. 512-depth-ema) for depth2img"
        )
    if img2img and request.mask is not None and model is not None and model.variant == "depth":
        problems.append("depth checkpoints do not inpaint: send no mask, or pick another checkpoint")
    if problems:
        raise InvalidRequestError("Invalid request: " + "; ".join(problems) + ".")
