"""Gradio widgets made from the request's field declarations (sdui.request), and their values in both directions.

A generation field's label, element id (A1111's, which extensions' JavaScript looks for), range and UI default are
declared once, with the field; a tab asks for the widget by field name and may override what differs on that tab
(A1111's txt2img hires slider starts denoising at 0.7, for instance).
"""

from __future__ import annotations

import typing
from typing import Any

import gradio as gr

from sdui.errors import UserError
from sdui.request import FieldSpec, GenerationRequest, Img2ImgRequest, field_spec, field_type

_COMPONENTS = {
    "slider": gr.Slider,
    "number": gr.Number,
    "dropdown": gr.Dropdown,
    "radio": gr.Radio,
    "textbox": gr.Textbox,
    "checkbox": gr.Checkbox,
}


def spec_of(name: str) -> FieldSpec:
    """The declaration of a txt2img or img2img field."""
    cls = GenerationRequest if name in _TXT2IMG_FIELDS else Img2ImgRequest
    return field_spec(cls, name)


def create(name: str, tab: str, *, choices: list | None = None, **overrides) -> gr.components.Component:
    """The widget of request field `name` on `tab`; `choices` for dropdowns whose list the UI supplies (samplers,
    upscalers); `overrides` are Gradio arguments that differ on this tab (value, elem_id, visible, scale...)."""
    spec = spec_of(name)
    w = spec.widget
    if w is None:
        raise ValueError(f"request field {name!r} declares no widget")
    kwargs: dict[str, Any] = {"label": w.label, "elem_id": w.elem_id.format(tab=tab), "value": w.value}
    if w.kind == "slider":
        kwargs.update(minimum=w.minimum, maximum=w.maximum, step=w.step)
    elif w.kind == "number":
        kwargs.update(minimum=w.minimum, precision=0)
    elif w.kind == "radio":
        kwargs["choices"] = [label for label, _ in spec.choices]
    elif w.kind == "dropdown":
        kwargs["choices"] = list(choices or [])
    elif w.kind == "textbox":
        kwargs["lines"] = 3
    kwargs.update(overrides)
    return _COMPONENTS[w.kind](**kwargs)


def to_request(name: str, value: Any, default: Any = None) -> Any:
    """A widget's value as the request field's value: a radio label becomes its value (an index, True/False),
    a number the field's type (whole floats as int, as A1111's UI hands them over); None or "" gives `default`."""
    spec = spec_of(name)
    if value is None or value == "":
        return default
    if spec.choices:
        if isinstance(value, str):
            found = spec.value_of(value, _MISSING)
            if found is _MISSING:
                labels = ", ".join(label for label, _ in spec.choices)
                raise UserError(f"unknown {spec.widget.label.lower()} {value!r}: choose one of {labels}")
            return found
        return value
    kind = field_type(Img2ImgRequest, name)
    if kind is int:
        return whole(value, default)
    if kind is float:
        return number(value, default)
    return value


def whole(value, default: int) -> int:
    """A widget's number as int (sliders and number boxes hand over floats); None or "" gives `default`."""
    if value is None or value == "":
        return default
    return round(float(value))


def number(value, default: float):
    """Whole numbers as int, like the values A1111's UI hands over (infotext prints `CFG scale: 7`, not 7.0)."""
    if value is None or value == "":
        return default
    value = float(value)
    return int(value) if value.is_integer() else value


def to_widget(name: str, value: Any) -> Any:
    """A request value as the widget shows it (the inverse of to_request): a radio's value becomes its label;
    None when the radio has no label for it."""
    spec = spec_of(name)
    return spec.label_of(value) if spec.choices else value


_MISSING = object()
_TXT2IMG_FIELDS = set(typing.get_type_hints(GenerationRequest))
