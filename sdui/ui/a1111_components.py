"""A1111's small Gradio components (modules.ui_components) that extensions build their controls from. Each is
Gradio's own component with A1111's classes and defaults, made by a function of the same name (subclassing Gradio's
components would make Gradio write type stubs into this folder)."""

from __future__ import annotations

import gradio as gr


def _classes(extra: str, given) -> list[str]:
    given = [given] if isinstance(given, str) else list(given or [])
    return [extra, *given]


def ToolButton(value="", *args, elem_classes=None, **kwargs) -> gr.Button:
    """A small square button (🔄, ↙️, ...)."""
    return gr.Button(value, *args, elem_classes=_classes("tool", elem_classes), **kwargs)


def FormRow(*args, elem_classes=None, **kwargs) -> gr.Row:
    return gr.Row(*args, elem_classes=_classes("form", elem_classes), **kwargs)


def FormColumn(*args, elem_classes=None, **kwargs) -> gr.Column:
    return gr.Column(*args, elem_classes=_classes("form", elem_classes), **kwargs)


def FormGroup(*args, elem_classes=None, **kwargs) -> gr.Group:
    return gr.Group(*args, elem_classes=_classes("form", elem_classes), **kwargs)


def FormHTML(*args, **kwargs) -> gr.HTML:
    return gr.HTML(*args, **kwargs)


def DropdownMulti(*args, **kwargs) -> gr.Dropdown:
    return gr.Dropdown(*args, multiselect=True, **kwargs)


class InputAccordion:
    """An accordion whose on/off state is an input: `with InputAccordion(False, label="Enable") as enabled:`
    gives the checkbox (a boolean input of the script) and lays out the block's content inside the accordion
    (entered again after its checkbox)."""

    def __init__(self, value: bool = False, *, label: str = "", elem_id: str | None = None, **kwargs):
        self.accordion = gr.Accordion(label, open=bool(value), elem_id=elem_id)
        with self.accordion:
            checkbox_id = f"{elem_id}-checkbox" if elem_id else None
            self.checkbox = gr.Checkbox(value=bool(value), label=f"Enable {label}".strip(), elem_id=checkbox_id)

    def __enter__(self):
        self.accordion.__enter__()
        return self.checkbox

    def __exit__(self, *exc):
        return self.accordion.__exit__(*exc)


# ----------------------------------------------------------------------------------- modules.ui_common / modules.ui

REFRESH_SYMBOL = "\U0001f504"  # 🔄


def create_refresh_button(refresh_component, refresh_method, refreshed_args, elem_id) -> gr.Button:
    """A 🔄 button: calls `refresh_method()`, then sets `refreshed_args` (a dict, or a function returning one:
    choices=..., value=...) on the component(s)."""
    components = refresh_component if isinstance(refresh_component, list) else [refresh_component]

    def refresh():
        refresh_method()
        args = refreshed_args() if callable(refreshed_args) else refreshed_args
        updates = [gr.update(**(args or {})) for _ in components]
        return updates if len(updates) > 1 else updates[0]

    button = ToolButton(REFRESH_SYMBOL, elem_id=elem_id)
    button.click(refresh, inputs=[], outputs=components)
    return button


def plaintext_to_html(text: str, classname: str | None = None) -> str:
    import html

    body = "<br>\n".join(html.escape(line) for line in (text or "").split("\n"))
    return f"<p class='{classname}'>{body}</p>" if classname else f"<p>{body}</p>"
