"""The widget of one setting, as the Settings tab and the top bar's quick settings show it."""

from __future__ import annotations

import html
import re

import gradio as gr


def setting_widget(key: str, info, value):
    """The widget of one setting: its declared component (our names, or a Gradio class an extension gave), else
    one that fits the type of its default."""
    args = info.arguments()
    label = info.label or key
    kind = info.component
    common_args = {"label": label, "value": value, "elem_id": f"setting_{key}", "interactive": True}
    if info.comment_after or info.comment_before:
        common_args["info"] = html.unescape(_strip_tags(info.comment_before + " " + info.comment_after)).strip()
    if callable(kind) and not isinstance(kind, str):
        from sdui.extensions.gradio3 import gradio3

        with gradio3():
            return kind(**{**args, **common_args})
    choices = info.choices()
    if kind == "checkbox" or (kind is None and isinstance(info.default, bool)):
        return gr.Checkbox(**common_args)
    if kind == "slider" and None not in info.limits():
        low, high = info.limits()
        return gr.Slider(low, high, step=args.get("step", 1), **common_args)
    if kind == "radio" and choices:
        return gr.Radio(list(choices), **common_args)
    if choices or kind == "dropdown" or isinstance(info.default, list):
        multiselect = isinstance(info.default, list)
        options = list(choices or [])
        current = value if isinstance(value, list) else [value] if multiselect else value
        for item in current if multiselect else [current]:
            if item not in options:
                options.append(item)
        return gr.Dropdown(
            options, multiselect=multiselect, allow_custom_value=True, **{**common_args, "value": current}
        )
    if kind == "color":
        return gr.ColorPicker(**common_args)
    if kind == "number" or (kind is None and isinstance(info.default, (int, float))):
        return gr.Number(**common_args)
    if isinstance(info.default, (dict,)):
        return None  # no widget for structured values: the API and config.json hold them
    return gr.Textbox(**{**common_args, "value": shown(value)})


def shown(value):
    """A stored value as the settings page shows it: what a widget sends back unchanged means "not changed"."""
    return "" if value is None else value


def _strip_tags(text: str) -> str:
    return re.sub(r"<[^>]+>", "", text)
