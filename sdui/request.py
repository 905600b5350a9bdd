"""What a generation asks for, with A1111's field names, each field declared once.

A field's declaration carries, beside its type and default (what a request that leaves it out gets), the three
things other layers need to know about it, in its `metadata` (read with `field_spec`):
  - `api`: the default of A1111's API when a client leaves the field out, where it differs (the /sdapi/v1 request
    models are built from these declarations: sdui.api.models);
  - `infotext`: the key of the "parameters" text that carries it, and for radio-like fields the label -> value
    `choices` (pasting an infotext reads these: sdui.core.infotext_fields);
  - `widget`: how the web UI shows it (sdui.ui.widgets builds the Gradio component from it).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

RESIZE_MODES = ("Just resize", "Crop and resize", "Resize and fill", "Just resize (latent upscale)")
MASK_MODES = ("Inpaint masked", "Inpaint not masked")
MASKED_CONTENT = ("fill", "original", "latent noise", "latent nothing")
INPAINT_AREAS = ("Whole picture", "Only masked")
MAX_MASK_BLUR = 256  # pixels; a larger blur would only cost time and memory (A1111's slider stops at 64)
MAX_CFG_SCALE = 100  # A1111's slider stops at 30; far beyond, sampling overflows (NaN) in half precision
MAX_MASK_PADDING = 16384  # pixels; the region stops at the image edges anyway (A1111 clamps too)


class _Same:
    def __repr__(self) -> str:
        return "SAME"


SAME: Any = _Same()  # a FieldSpec's `api`: A1111's API default is the request's own default


@dataclass(frozen=True)
class Widget:
    """A UI widget, as plain data. `elem_id` may hold "{tab}"; `value` is the UI's own default (A1111's UI and
    API defaults differ for some fields); choices None on a dropdown means the UI supplies them (samplers...)."""

    kind: str  # slider | number | dropdown | radio | textbox | checkbox
    label: str
    elem_id: str
    value: Any = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None


@dataclass(frozen=True)
class FieldSpec:
    name: str
    api: Any = SAME  # A1111's API default, where it differs from the request's
    infotext: str | None = None  # the infotext key
    choices: tuple[tuple[str, Any], ...] = ()  # label -> value, for radios and their infotext labels
    widget: Widget | None = None

    def label_of(self, value: Any) -> str | None:
        return next((label for label, v in self.choices if v == value), None)

    def value_of(self, label: str, default: Any = None) -> Any:
        return next((v for lab, v in self.choices if lab == label), default)


def spec(**kwargs) -> dict:
    """`metadata` for a request field (see FieldSpec); the name is filled in by field_spec."""
    return {"spec": kwargs}


def _indexed(labels: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    return tuple((label, i) for i, label in enumerate(labels))


def _slider(label, elem_id, minimum, maximum, step, value=None) -> Widget:
    return Widget("slider", label, elem_id, value, minimum, maximum, step)


@dataclass
class GenerationRequest:
    prompt: str = field(default="", metadata=spec(infotext="Prompt"))
    negative_prompt: str = field(default="", metadata=spec(infotext="Negative prompt"))
    styles: list[str] = field(default_factory=list, metadata=spec(api=None))
    seed: int = field(
        default=-1, metadata=spec(infotext="Seed", widget=Widget("number", "Seed", "{tab}_seed", -1, minimum=-1))
    )
    subseed: int = field(
        default=-1,
        metadata=spec(
            infotext="Variation seed", widget=Widget("number", "Variation seed", "{tab}_subseed", -1, minimum=-1)
        ),
    )
    subseed_strength: float = field(
        default=0.0,
        metadata=spec(
            infotext="Variation seed strength",
            widget=_slider("Variation strength", "{tab}_subseed_strength", 0, 1, 0.01, 0),
        ),
    )
    seed_resize_from_h: int = field(
        default=-1,
        metadata=spec(
            infotext="Seed resize from-2",
            widget=_slider("Resize seed from height", "{tab}_seed_resize_from_h", 0, 2048, 8, 0),
        ),
    )
    seed_resize_from_w: int = field(
        default=-1,
        metadata=spec(
            infotext="Seed resize from-1",
            widget=_slider("Resize seed from width", "{tab}_seed_resize_from_w", 0, 2048, 8, 0),
        ),
    )
    sampler_name: str = field(
        default="Euler a",
        metadata=spec(
            api=None, infotext="Sampler", widget=Widget("dropdown", "Sampling method", "{tab}_sampling", "DPM++ 2M")
        ),
    )
    scheduler: str = field(
        default="Automatic",
        metadata=spec(
            api=None,
            infotext="Schedule type",
            widget=Widget("dropdown", "Schedule type", "{tab}_scheduler", "Automatic"),
        ),
    )
    batch_size: int = field(
        default=1, metadata=spec(infotext="Batch size", widget=_slider("Batch size", "{tab}_batch_size", 1, 8, 1, 1))
    )
    n_iter: int = field(default=1, metadata=spec(widget=_slider("Batch count", "{tab}_batch_count", 1, 100, 1, 1)))
    steps: int = field(
        default=20,
        metadata=spec(api=50, infotext="Steps", widget=_slider("Sampling steps", "{tab}_steps", 1, 150, 1, 20)),
    )
    cfg_scale: float = field(
        default=7.0,
        metadata=spec(infotext="CFG scale", widget=_slider("CFG Scale", "{tab}_cfg_scale", 1.0, 30.0, 0.5, 7.0)),
    )
    width: int = field(
        default=512, metadata=spec(infotext="Size-1", widget=_slider("Width", "{tab}_width", 64, 2048, 8, 512))
    )
    height: int = field(
        default=512, metadata=spec(infotext="Size-2", widget=_slider("Height", "{tab}_height", 64, 2048, 8, 512))
    )
    tiling: bool | None = None  # None: the "tiling" setting (which carries its infotext key)
    restore_faces: bool | None = None  # None: the "face_restoration" setting; True restores every image's faces
    eta: float | None = None  # None: the sampler's eta setting (eta_ddim, eta_ancestral)
    # Euler/Heun/DPM2 churn and the samplers' noise scale; None: A1111's defaults (a setting away from its default
    # overrides them, as in A1111)
    s_churn: float | None = None
    s_tmin: float | None = None
    s_tmax: float | None = None
    s_noise: float | None = None
    s_min_uncond: float | None = None  # "Negative Guidance minimum sigma" (NGMS); None: the setting
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    override_settings: dict[str, Any] = field(default_factory=dict, metadata=spec(api=None))
    override_settings_restore_afterwards: bool = True
    extra_generation_params: dict[str, Any] = field(default_factory=dict)
    # extensions' always-on scripts: {title: {"args": [...]}} (A1111's API field; titles in any case)
    alwayson_scripts: dict[str, Any] = field(default_factory=dict)
    mode: str = "txt2img"  # names the outputs folder: outputs/<mode>-images
    # hires fix (txt2img): a second, img2img-like pass at a larger size
    enable_hr: bool = field(
        default=False, metadata=spec(widget=Widget("checkbox", "Enable hires. fix", "txt2img_enable_hr", False))
    )
    denoising_strength: float = field(
        default=0.75,
        metadata=spec(
            infotext="Denoising strength",
            widget=_slider("Denoising strength", "{tab}_denoising_strength", 0.0, 1.0, 0.01, 0.75),
        ),
    )
    hr_scale: float = field(
        default=2.0,
        metadata=spec(infotext="Hires upscale", widget=_slider("Upscale by", "txt2img_hr_scale", 1.0, 4.0, 0.05, 2.0)),
    )
    hr_upscaler: str | None = field(
        default=None,
        metadata=spec(  # None = "Latent"
            infotext="Hires upscaler", widget=Widget("dropdown", "Upscaler", "txt2img_hr_upscaler", "Latent")
        ),
    )
    hr_second_pass_steps: int = field(
        default=0,
        metadata=spec(  # 0 = same as steps
            infotext="Hires steps", widget=_slider("Hires steps", "txt2img_hires_steps", 0, 150, 1, 0)
        ),
    )
    hr_resize_x: int = field(
        default=0,
        metadata=spec(
            infotext="Hires resize-1", widget=_slider("Resize width to", "txt2img_hr_resize_x", 0, 2048, 8, 0)
        ),
    )
    hr_resize_y: int = field(
        default=0,
        metadata=spec(
            infotext="Hires resize-2", widget=_slider("Resize height to", "txt2img_hr_resize_y", 0, 2048, 8, 0)
        ),
    )
    hr_sampler_name: str | None = field(
        default=None,
        metadata=spec(  # None / "Use same sampler"
            infotext="Hires sampler",
            widget=Widget("dropdown", "Hires sampling method", "hr_sampler", "Use same sampler"),
        ),
    )
    hr_scheduler: str | None = field(
        default=None,
        metadata=spec(  # None / "Use same scheduler"
            infotext="Hires schedule type",
            widget=Widget("dropdown", "Hires schedule type", "hr_scheduler", "Use same scheduler"),
        ),
    )
    hr_prompt: str = field(
        default="",
        metadata=spec(  # "" = same as prompt
            infotext="Hires prompt", widget=Widget("textbox", "Hires prompt", "hires_prompt", "")
        ),
    )
    hr_negative_prompt: str = field(
        default="",
        metadata=spec(
            infotext="Hires negative prompt", widget=Widget("textbox", "Hires negative prompt", "hires_neg_prompt", "")
        ),
    )


@dataclass
class Img2ImgRequest(GenerationRequest):
    """img2img and its relatives (inpaint, outpaint, depth2img): a txt2img request plus a starting image."""

    init_images: list[Image.Image] = field(default_factory=list)  # image i of a batch uses init_images[i % len]
    resize_mode: int = field(
        default=0,
        metadata=spec(
            choices=_indexed(RESIZE_MODES), widget=Widget("radio", "Resize mode", "{tab}_resize_mode", RESIZE_MODES[0])
        ),
    )
    image_cfg_scale: float | None = field(default=None, metadata=spec(infotext="Image CFG scale"))
    mask: Image.Image | None = None  # white = change (unless inpainting_mask_invert)
    mask_blur_x: int = field(
        default=4, metadata=spec(infotext="Mask blur x", widget=_slider("Mask blur", "{tab}_mask_blur", 0, 64, 1, 4))
    )
    mask_blur_y: int = field(default=4, metadata=spec(infotext="Mask blur y"))
    mask_round: bool = field(default=True, metadata=spec(infotext="Mask rounding"))
    inpainting_fill: int = field(
        default=1,
        metadata=spec(
            api=0,
            infotext="Masked content",
            choices=_indexed(MASKED_CONTENT),
            widget=Widget("radio", "Masked content", "{tab}_inpainting_fill", MASKED_CONTENT[1]),
        ),
    )
    inpaint_full_res: bool = field(
        default=False,
        metadata=spec(  # "Only masked"
            api=True,
            infotext="Inpaint area",
            choices=((INPAINT_AREAS[0], False), (INPAINT_AREAS[1], True)),
            widget=Widget("radio", "Inpaint area", "{tab}_inpaint_full_res", INPAINT_AREAS[0]),
        ),
    )
    inpaint_full_res_padding: int = field(
        default=32,
        metadata=spec(
            api=0,
            infotext="Masked area padding",
            widget=_slider("Only masked padding, pixels", "{tab}_inpaint_full_res_padding", 0, 256, 4, 32),
        ),
    )
    inpainting_mask_invert: int = field(
        default=0,
        metadata=spec(
            infotext="Mask mode",
            choices=_indexed(MASK_MODES),
            widget=Widget("radio", "Mask mode", "{tab}_mask_mode", MASK_MODES[0]),
        ),
    )
    initial_noise_multiplier: float | None = None  # None: the setting (which carries its infotext key)
    depth_map: Image.Image | None = None  # depth2img: an uploaded depth map (brighter = nearer) instead of MiDaS
    mode: str = "img2img"


def field_spec(cls: type[GenerationRequest], name: str) -> FieldSpec:
    """What the declaration of field `name` of `cls` says beyond its type and default."""
    found = {f.name: f for f in dataclasses.fields(cls)}[name]
    return FieldSpec(name=name, **found.metadata.get("spec", {}))


def field_specs(cls: type[GenerationRequest]) -> list[FieldSpec]:
    return [field_spec(cls, f.name) for f in dataclasses.fields(cls)]


def field_type(cls: type[GenerationRequest], name: str) -> type:
    """The plain type of a field: int for `int | None`, list for `list[str]`."""
    hint = typing.get_type_hints(cls)[name]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


def request_from_fields(cls, fields: dict, **given):
    """A request of `cls` from A1111 field names (as sdui.core.infotext_fields gives them): `mask_blur` (A1111's
    one blur for both axes) sets both; names this request type does not have are left out. `given` wins."""
    values = dict(fields)
    if "mask_blur" in values:
        blur = values.pop("mask_blur")
        values.setdefault("mask_blur_x", blur)
        values.setdefault("mask_blur_y", blur)
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in {**values, **given}.items() if k in known})
