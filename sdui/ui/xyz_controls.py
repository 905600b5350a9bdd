"""The X/Y/Z plot's controls as A1111 shows them: an axis whose values are names (samplers, schedules,
upscalers, checkpoints, ...) offers them in a multi-select dropdown in place of the text box."""

from __future__ import annotations

import gradio as gr

from sdui.core.xyz_plot import axes_for

AXIS_TYPES = (0, 3, 6)  # indexes of the X, Y and Z type controls; the text box and the dropdown follow each


def value_names(ctx, mode: str, label: str) -> list[str] | None:
    """The names an axis offers, None for an axis of typed values (numbers, prompts)."""
    axis = next((a for a in axes_for(mode) if a.label == label), None)
    if axis is None:
        return None
    if axis.label == "Checkpoint name":
        return ctx.store.titles()
    return list(axis.choices()) if axis.choices is not None else None


def wire(ctx, controls: list, mode: str) -> None:
    """Switch each axis between its text box and its dropdown when its type changes."""
    for i in AXIS_TYPES:
        kind, text, dropdown = controls[i : i + 3]

        def update(label, ctx=ctx):
            names = value_names(ctx, mode, label)
            if names is None:
                return gr.update(visible=True), gr.update(visible=False, choices=[], value=[])
            return gr.update(visible=False), gr.update(visible=True, choices=names, value=[])

        names = value_names(ctx, mode, kind.value)
        text.visible, dropdown.visible = names is None, names is not None
        kind.change(update, inputs=[kind], outputs=[text, dropdown], queue=False, api_visibility="private")
