"""The Settings tab, generated from the settings registry (ours, and what extensions add with on_ui_settings): a
page per category, a group per section, each setting as its declared widget with A1111's `setting_<key>` element
id; a search box that hides what does not match; "Apply settings" stores the changed values (each checked as the API
checks it) and writes config.json atomically; "Reload UI" restarts when the launcher can.
"""

from __future__ import annotations

import html
import logging
from collections import OrderedDict

import gradio as gr

from sdui.errors import UserError
from sdui.ui import common

log = logging.getLogger(__name__)
CATEGORIES = OrderedDict(
    [
        ("saving", "Saving images"),
        ("sd", "Stable Diffusion"),
        ("ui", "User interface"),
        ("system", "System"),
        ("postprocessing", "Postprocessing"),
        ("training", "Training"),
    ]
)
SEARCH_SCRIPT = """
(query) => {
    const q = (query || "").trim().toLowerCase();
    for (const row of document.querySelectorAll("#tab_settings [id^='setting_']")) {
        const text = row.textContent.toLowerCase() + " " + row.id.toLowerCase();
        row.style.display = !q || text.includes(q) ? "" : "none";
    }
    return query;
}
"""


def _component(key: str, info, value):
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
    import re

    return re.sub(r"<[^>]+>", "", text)


def create_tab(ctx) -> None:
    options = ctx.options
    with gr.Row(elem_id="settings_top"):
        apply = gr.Button("Apply settings", variant="primary", elem_id="settings_submit")
        reload = gr.Button("Reload UI", elem_id="settings_restart_gradio")
        search = gr.Textbox(placeholder="Search...", show_label=False, elem_id="settings_search", scale=3)
    result = gr.HTML("", elem_id="settings_result")
    if options.frozen:
        gr.HTML(common.note_html("Settings are frozen (--freeze-settings): they can be seen, not changed."))

    sections: OrderedDict = OrderedDict()
    for key, info in options.registry.items():
        if info.section is not None:
            sections.setdefault(info.section, []).append((key, info))
    by_category: OrderedDict = OrderedDict((c, []) for c in CATEGORIES)
    for section, entries in sections.items():
        by_category.setdefault(section.category or "system", []).append((section, entries))

    keys, widgets = [], []
    with gr.Tabs(elem_id="settings_categories"):
        for category, category_sections in by_category.items():
            if not category_sections:
                continue
            with gr.Tab(CATEGORIES.get(category, category.title()), elem_id=f"settings_category_{category}"):
                for section, entries in category_sections:
                    with gr.Accordion(
                        section.label, open=not section.id.startswith("a1111"), elem_id=f"settings_{section.id}"
                    ):
                        for key, info in entries:
                            if key in common.QUICK_SETTINGS:  # shown in the top bar, as A1111 moves them there
                                continue
                            try:
                                widget = _component(key, info, options.get(key))
                            except Exception:
                                log.exception("Setting %s has no widget", key)
                                continue
                            if widget is not None:
                                keys.append(key)
                                widgets.append(widget)

    def on_apply(*values):
        changed, problems = [], []
        for key, value in zip(keys, values, strict=True):
            if value == shown(options.get(key)):
                continue  # as shown: not changed (a None setting shows as an empty box)
            try:
                if options.set(key, value):
                    changed.append(key)
            except UserError as e:
                problems.append(e.message)
        if changed:
            try:
                options.save()
            except OSError as e:
                problems.append(f"Could not write the settings file: {e}")
        text = f"{len(changed)} settings changed{': ' + ', '.join(changed) if changed else ''}."
        return common.note_html(text) + "".join(common.error_html(p) for p in problems)

    def on_reload():
        if ctx.server.can_restart:
            ctx.server.stop(restart=True)
            return common.note_html("Restarting: reload this page in a few seconds.")
        return common.note_html("Restart the program to load the changed settings that need it.")

    private = {"api_visibility": "private"}
    apply.click(on_apply, inputs=widgets, outputs=[result], **private)
    reload.click(on_reload, inputs=[], outputs=[result], **private)
    search.change(None, inputs=[search], outputs=[search], js=SEARCH_SCRIPT, **private)
