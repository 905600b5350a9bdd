"""Pasting: a parsed infotext -> request fields (A1111 API names) and setting overrides.

Which key fills which field comes from the request's own field declarations (sdui.request: `infotext`, `choices`),
and which key sets which setting from the settings registry (`OptionInfo.infotext`): nothing here lists them again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sdui.core.samplers import split_schedule_suffix
from sdui.errors import UserError
from sdui.request import GenerationRequest, Img2ImgRequest, field_specs, field_type
from sdui.settings.definitions import builtin_registry
from sdui.settings.registry import Registry

HIRES_FIELDS = frozenset(
    {
        "enable_hr",
        "hr_scale",
        "hr_upscaler",
        "hr_second_pass_steps",
        "hr_resize_x",
        "hr_resize_y",
        "hr_sampler_name",
        "hr_scheduler",
        "hr_prompt",
        "hr_negative_prompt",
    }
)


def request_fields(
    params: Mapping[str, Any],
    *,
    mode: str = "txt2img",
    current: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
) -> dict:
    """Request fields from a parsed infotext (sdui.infotext.parse_infotext), plus `override_settings` for the keys
    that belong to settings. `mode` "txt2img" reads the hires fix keys, "img2img" the image and mask ones.

    Values that do not convert (e.g. "Steps: many") are left out, as A1111's paste leaves such fields alone. With
    `current` settings, overrides equal to the current value are dropped. An old "Sampler: DPM++ 2M Karras" becomes
    sampler "DPM++ 2M" with schedule type "Karras"."""
    cls = Img2ImgRequest if mode == "img2img" else GenerationRequest
    fields: dict[str, Any] = {}
    for spec in field_specs(cls):
        if (
            spec.infotext is None
            or params.get(spec.infotext) is None
            or (mode != "txt2img" and spec.name in HIRES_FIELDS)
        ):
            continue
        raw = params[spec.infotext]
        value = spec.value_of(raw) if spec.choices else convert(raw, field_type(cls, spec.name))
        if value is not None:
            fields[spec.name] = value

    if "sampler_name" in fields:
        sampler, label = split_schedule_suffix(fields["sampler_name"])
        if label is not None:
            fields["sampler_name"] = sampler
            if fields.get("scheduler") in (None, "Automatic"):
                fields["scheduler"] = label
    if mode == "txt2img":
        hires_resize = convert(params.get("Hires resize-1", 0), int)
        fields["enable_hr"] = "Denoising strength" in params and (
            "Hires upscale" in params or "Hires upscaler" in params or bool(hires_resize)
        )
    elif "Mask blur" in params:  # A1111 writes one blur for both axes
        blur = convert(params["Mask blur"], int)
        if blur is not None:
            fields.setdefault("mask_blur_x", blur)
            fields.setdefault("mask_blur_y", blur)

    overrides = setting_overrides(params, current=current, registry=registry)
    if overrides:
        fields["override_settings"] = overrides
    return fields


def setting_overrides(
    params: Mapping[str, Any], *, current: Mapping[str, Any] | None = None, registry: Registry | None = None
) -> dict:
    """Settings an infotext sets (A1111's OptionInfo(..., infotext=...)), validated; unconvertible values skipped."""
    registry = registry if registry is not None else builtin_registry()
    overrides: dict[str, Any] = {}
    for key, info in registry.items():
        if info.infotext is None or params.get(info.infotext) is None:
            continue
        value = convert(params[info.infotext], type(info.default))
        if value is None:
            continue
        try:
            value = info.validate(key, value)
        except UserError:
            continue
        if current is not None and current.get(key) == value:
            continue
        overrides[key] = value
    return overrides


def convert(value: Any, kind: type) -> Any:
    """An infotext value (text) as `kind`, or None when it does not convert."""
    try:
        if kind is bool:
            return value if isinstance(value, bool) else str(value).strip() not in ("False", "false", "0", "")
        if kind is int:
            try:
                return int(str(value).strip())  # exact for seeds beyond float precision
            except ValueError:
                number = float(value)
                return int(number) if math.isfinite(number) else None
        if kind is float:
            number = float(value)
            return number if math.isfinite(number) else None
        if kind is str:
            return str(value)
        return None
    except (TypeError, ValueError):
        return None
