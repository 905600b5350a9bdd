"""Request and response bodies of the /sdapi/v1 API, with A1111's field names and defaults (reference §3.3).

Every txt2img field is optional; unknown keys are ignored (A1111 clients send fields we do not use). A request
body becomes a GenerationRequest in `to_generation_request`.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

from sdui.errors import InvalidRequestError, NotFoundError
from sdui.modes.outpaint import outpaint_request
from sdui.core.request import GenerationRequest
from sdui.core.request import Img2ImgRequest as ProcessingImg2ImgRequest

log = logging.getLogger(__name__)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class Txt2ImgRequest(_Lenient):
    """POST /sdapi/v1/txt2img (A1111's StableDiffusionTxt2ImgProcessingAPI)."""
    prompt: Optional[str] = ""
    negative_prompt: Optional[str] = ""
    styles: Optional[list[str]] = None
    seed: Optional[int] = -1
    subseed: Optional[int] = -1
    subseed_strength: Optional[float] = 0
    seed_resize_from_h: Optional[int] = -1
    seed_resize_from_w: Optional[int] = -1
    sampler_name: Optional[str] = None
    scheduler: Optional[str] = None
    batch_size: Optional[int] = 1
    n_iter: Optional[int] = 1
    steps: Optional[int] = 50
    cfg_scale: Optional[float] = 7.0
    width: Optional[int] = 512
    height: Optional[int] = 512
    restore_faces: Optional[bool] = None
    tiling: Optional[bool] = None
    do_not_save_samples: Optional[bool] = False
    do_not_save_grid: Optional[bool] = False
    eta: Optional[float] = None
    denoising_strength: Optional[float] = 0.75
    s_min_uncond: Optional[float] = None
    s_churn: Optional[float] = None
    s_tmax: Optional[float] = None
    s_tmin: Optional[float] = None
    s_noise: Optional[float] = None
    override_settings: Optional[dict[str, Any]] = None
    override_settings_restore_afterwards: Optional[bool] = True
    refiner_checkpoint: Optional[str] = None
    refiner_switch_at: Optional[float] = None
    disable_extra_networks: Optional[bool] = False
    firstpass_image: Optional[str] = None
    comments: Optional[dict[str, Any]] = None
    enable_hr: Optional[bool] = False
    firstphase_width: Optional[int] = 0
    firstphase_height: Optional[int] = 0
    hr_scale: Optional[float] = 2.0
    hr_upscaler: Optional[str] = None
    hr_second_pass_steps: Optional[int] = 0
    hr_resize_x: Optional[int] = 0
    hr_resize_y: Optional[int] = 0
    hr_checkpoint_name: Optional[str] = None
    hr_sampler_name: Optional[str] = None
    hr_scheduler: Optional[str] = None
    hr_prompt: Optional[str] = ""
    hr_negative_prompt: Optional[str] = ""
    force_task_id: Optional[str] = None
    # API-only fields
    sampler_index: Optional[str] = "Euler"
    script_name: Optional[str] = None
    script_args: list[Any] = Field(default_factory=list)
    send_images: bool = True
    save_images: bool = False
    alwayson_scripts: dict[str, Any] = Field(default_factory=dict)
    infotext: Optional[str] = None


# Fields a client may send with a non-default value that this server does not act on yet: logged, not silent.
_NOT_IMPLEMENTED = {
    "restore_faces": (None, False), "refiner_checkpoint": (None, "", "None"),
    "firstpass_image": (None, ""), "hr_checkpoint_name": (None, ""),
}


def to_generation_request(body: Txt2ImgRequest, mode: str = "txt2img") -> GenerationRequest:
    """The processing request for an API body: every field GenerationRequest knows is copied (None = its default);
    sampler_name falls back to sampler_index as in A1111; save_images=false means nothing is written to outputs/."""
    known = {f.name for f in dataclasses.fields(GenerationRequest)}
    values: dict[str, Any] = {}
    for name, value in body.model_dump().items():
        if name in known and value is not None:
            values[name] = value
    values["sampler_name"] = body.sampler_name or body.sampler_index or "Euler"
    values["scheduler"] = body.scheduler or "Automatic"
    values["styles"] = list(body.styles or [])
    values["override_settings"] = dict(body.override_settings or {})
    if not body.save_images:
        values["do_not_save_samples"] = True
        values["do_not_save_grid"] = True
    values["mode"] = mode
    for name, ignored in _NOT_IMPLEMENTED.items():
        value = getattr(body, name, None)
        if value not in ignored and name not in known:
            log.warning("The API field %s=%r is not supported yet and is ignored.", name, value)
    return GenerationRequest(**values)


class Img2ImgRequest(Txt2ImgRequest):
    """POST /sdapi/v1/img2img (A1111's StableDiffusionImg2ImgProcessingAPI): txt2img's fields plus these."""
    init_images: Optional[list[str]] = None
    resize_mode: Optional[int] = 0
    image_cfg_scale: Optional[float] = None
    mask: Optional[str] = None
    mask_blur_x: Optional[int] = 4
    mask_blur_y: Optional[int] = 4
    mask_blur: Optional[int] = None
    mask_round: Optional[bool] = True
    inpainting_fill: Optional[int] = 0
    inpaint_full_res: Optional[bool] = True
    inpaint_full_res_padding: Optional[int] = 0
    inpainting_mask_invert: Optional[int] = 0
    initial_noise_multiplier: Optional[float] = None
    latent_mask: Optional[str] = None
    include_init_images: bool = False
    # our additions (A1111 clients never send them): depth2img's depth map, and outpaint by growing the canvas
    depth_map: Optional[str] = Field(None, description="depth2img: base64 depth image (brighter = nearer); "
                                                       "default: the depth checkpoint's own MiDaS estimate")
    outpaint_left: int = Field(0, ge=0, description="outpaint: pixels to add on the left (multiple of 8)")
    outpaint_right: int = Field(0, ge=0, description="outpaint: pixels to add on the right (multiple of 8)")
    outpaint_up: int = Field(0, ge=0, description="outpaint: pixels to add at the top (multiple of 8)")
    outpaint_down: int = Field(0, ge=0, description="outpaint: pixels to add at the bottom (multiple of 8)")


def to_img2img_request(body: Img2ImgRequest) -> ProcessingImg2ImgRequest:
    """Decode the images and build the processing request; the txt2img fields go through to_generation_request."""
    from sdui.imaging.encoding import decode_base64_image
    if not body.init_images:
        raise NotFoundError("Init image not found: send init_images as a list of base64-encoded images.")
    if body.latent_mask:
        raise InvalidRequestError("latent_mask is not supported; send the mask in `mask` (white = repaint).")
    base = to_generation_request(body, mode="img2img")
    values = {f.name: getattr(base, f.name) for f in dataclasses.fields(GenerationRequest)}
    extra = {name: value for name, value in body.model_dump().items()
             if name in _IMG2IMG_FIELDS and value is not None}
    if body.mask_blur is not None:
        extra["mask_blur_x"] = extra["mask_blur_y"] = body.mask_blur
    extra["init_images"] = [decode_base64_image(data) for data in body.init_images]
    if body.mask:
        extra["mask"] = decode_base64_image(body.mask)
    if body.depth_map:
        extra["depth_map"] = decode_base64_image(body.depth_map)
    request = ProcessingImg2ImgRequest(**values, **extra)
    sides = dict(left=body.outpaint_left, right=body.outpaint_right, up=body.outpaint_up, down=body.outpaint_down)
    if any(sides.values()):
        if body.mask:
            raise InvalidRequestError("send either a mask (inpaint) or outpaint_* sides (outpaint), not both")
        request = outpaint_request(request, **sides)
    return request


_IMG2IMG_FIELDS = {f.name for f in dataclasses.fields(ProcessingImg2ImgRequest)} - \
    {f.name for f in dataclasses.fields(GenerationRequest)} - {"init_images", "mask", "depth_map"}


class GenerationResponse(BaseModel):
    images: list[str] = Field(default_factory=list, description="base64 PNGs with the parameters text chunk")
    parameters: dict[str, Any]
    info: str


class PngInfoRequest(_Lenient):
    image: str = ""


class PngInfoResponse(BaseModel):
    info: str
    items: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)


class SDModelItem(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    title: str
    model_name: str
    hash: Optional[str] = None
    sha256: Optional[str] = None
    filename: str
    config: Optional[str] = None


class SamplerItem(BaseModel):
    name: str
    aliases: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)


class SchedulerItem(BaseModel):
    name: str
    label: str
    aliases: Optional[list[str]] = None
    default_rho: Optional[float] = None
    need_inner_model: Optional[bool] = None


class ProgressState(BaseModel):
    skipped: bool = False
    interrupted: bool = False
    stopping_generation: bool = False
    job: str = ""
    job_count: int = 0
    job_timestamp: str = "0"
    job_no: int = 0
    sampling_step: int = 0
    sampling_steps: int = 0
    queued: int = 0


class ProgressResponse(BaseModel):
    progress: float
    eta_relative: float
    state: ProgressState
    current_image: Optional[str] = None
    textinfo: Optional[str] = None
