"""Request and response bodies of the /sdapi/v1 API, with A1111's field names and defaults.

The generation bodies are made from the request declarations (sdui.request) plus the API-only fields A1111 has.
Every field is optional; unknown keys are ignored (A1111 clients send fields we do not use). A body becomes a
GenerationRequest in `to_generation_request`.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from sdui.errors import InvalidRequestError, NotFoundError
from sdui.modes.outpaint import outpaint_request
from sdui.request import SAME, GenerationRequest, field_spec
from sdui.request import Img2ImgRequest as ProcessingImg2ImgRequest
from sdui.settings.definitions import MAX_IMAGE_PIXELS

log = logging.getLogger(__name__)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())


# Fields the request dataclasses have that are not request-body fields, or are sent in another form (images as base64)
_NOT_IN_BODY = {"extra_generation_params", "mode", "init_images", "mask", "depth_map"}

# A1111 API fields that are not generation fields of ours: accepted with A1111's defaults.
_API_FIELDS: dict[str, tuple[Any, Any]] = {
    "refiner_checkpoint": (str | None, None),
    "refiner_switch_at": (float | None, None),
    "disable_extra_networks": (bool | None, False),
    "firstpass_image": (str | None, None),
    "comments": (dict[str, Any] | None, None),
    "firstphase_width": (int | None, 0),
    "firstphase_height": (int | None, 0),
    "hr_checkpoint_name": (str | None, None),
    "force_task_id": (str | None, None),
    "sampler_index": (str | None, "Euler"),
    "script_name": (str | None, None),
    "script_args": (list[Any], Field(default_factory=list)),
    "send_images": (bool, True),
    "save_images": (bool, False),
    "infotext": (str | None, None),
}
_IMG2IMG_API_FIELDS: dict[str, tuple[Any, Any]] = {
    "init_images": (list[str] | None, None),
    "mask": (str | None, None),
    "mask_blur": (int | None, None),
    "latent_mask": (str | None, None),
    "include_init_images": (bool, False),
    # our additions (A1111 clients never send them): depth2img's depth map, and outpaint by growing the canvas
    "depth_map": (
        str | None,
        Field(
            None,
            description="depth2img: base64 depth image (brighter = nearer); "
            "default: the depth checkpoint's own MiDaS estimate",
        ),
    ),
    **{
        f"outpaint_{side}": (int, Field(0, ge=0, description=f"outpaint: pixels to add {where} (multiple of 8)"))
        for side, where in (
            ("left", "on the left"),
            ("right", "on the right"),
            ("up", "at the top"),
            ("down", "at the bottom"),
        )
    },
}


def _body_fields(cls: type[GenerationRequest], skip: set[str]) -> dict[str, tuple[Any, Any]]:
    """Every request field of `cls` as an optional body field with A1111's API default."""
    hints = typing.get_type_hints(cls)
    fields = {}
    for f in dataclasses.fields(cls):
        if f.name in _NOT_IN_BODY or f.name in skip:
            continue
        api = field_spec(cls, f.name).api
        default = api if api is not SAME else (f.default if f.default is not dataclasses.MISSING else None)
        fields[f.name] = (hints[f.name] | None, default)
    return fields


# POST /sdapi/v1/txt2img and /img2img bodies (A1111's StableDiffusionTxt2ImgProcessingAPI and
# StableDiffusionImg2ImgProcessingAPI): built from the request declarations, so a field is declared once.
Txt2ImgRequest = create_model(
    "StableDiffusionProcessingTxt2Img", __base__=_Lenient, **_body_fields(GenerationRequest, set()), **_API_FIELDS
)
Img2ImgRequest = create_model(
    "StableDiffusionProcessingImg2Img",
    __base__=_Lenient,
    **_body_fields(ProcessingImg2ImgRequest, set()),
    **_API_FIELDS,
    **_IMG2IMG_API_FIELDS,
)

# Fields a client may send with a non-default value that this server does not act on yet: logged, not silent.
_NOT_IMPLEMENTED = {
    "refiner_checkpoint": (None, "", "None"),
    "firstpass_image": (None, ""),
    "hr_checkpoint_name": (None, ""),
}


def to_generation_request(body: BaseModel, mode: str = "txt2img") -> GenerationRequest:
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
        if value not in ignored:
            log.warning("The API field %s=%r is not supported yet and is ignored.", name, value)
    return GenerationRequest(**values)


def to_img2img_request(body: BaseModel, max_pixels: int = MAX_IMAGE_PIXELS) -> ProcessingImg2ImgRequest:
    """Decode the images and build the processing request; the txt2img fields go through to_generation_request."""
    from sdui.imaging.encoding import decode_base64_image

    if not body.init_images:
        raise NotFoundError("Init image not found: send init_images as a list of base64-encoded images.")
    if body.latent_mask:
        raise InvalidRequestError("latent_mask is not supported; send the mask in `mask` (white = repaint).")
    base = to_generation_request(body, mode="img2img")
    values = {f.name: getattr(base, f.name) for f in dataclasses.fields(GenerationRequest)}
    extra = {name: value for name, value in body.model_dump().items() if name in _IMG2IMG_FIELDS and value is not None}
    if body.mask_blur is not None:
        extra["mask_blur_x"] = extra["mask_blur_y"] = body.mask_blur
    extra["init_images"] = [decode_base64_image(data, max_pixels) for data in body.init_images]
    if body.mask:
        extra["mask"] = decode_base64_image(body.mask, max_pixels)
    if body.depth_map:
        extra["depth_map"] = decode_base64_image(body.depth_map, max_pixels)
    request = ProcessingImg2ImgRequest(**values, **extra)
    sides = dict(left=body.outpaint_left, right=body.outpaint_right, up=body.outpaint_up, down=body.outpaint_down)
    if any(sides.values()):
        if body.mask:
            raise InvalidRequestError("send either a mask (inpaint) or outpaint_* sides (outpaint), not both")
        request = outpaint_request(request, **sides, max_pixels=max_pixels)
    return request


_IMG2IMG_FIELDS = (
    {f.name for f in dataclasses.fields(ProcessingImg2ImgRequest)}
    - {f.name for f in dataclasses.fields(GenerationRequest)}
    - _NOT_IN_BODY
)


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
    hash: str | None = None
    sha256: str | None = None
    filename: str
    config: str | None = None


class SamplerItem(BaseModel):
    name: str
    aliases: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)


class SchedulerItem(BaseModel):
    name: str
    label: str
    aliases: list[str] | None = None
    default_rho: float | None = None
    need_inner_model: bool | None = None


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
    current_image: str | None = None
    textinfo: str | None = None
