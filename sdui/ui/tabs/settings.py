"""The Settings tab, generated from the settings registry (ours, and what extensions add with on_ui_settings): a
page per category, a group per section, each setting as its declared widget with A1111's `setting_<key>` element
id; a search box that hides what does not match; "Apply settings" stores the changed values (each checked as the API
checks it) and writes config.json atomically; "Reload UI" restarts when the launcher can.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import gradio as gr

from sdui.errors import UserError
from sdui.ui import common
from sdui.ui.setting_widgets import setting_widget, shown

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

# every category's page at once, one after another (A1111's "Show all pages"); pressed again, back to tabs
SHOW_ALL_SCRIPT = """
() => { document.getElementById("tab_settings").classList.toggle("settings-show-all"); }
"""


def create_tab(ctx) -> None:
    options = ctx.options
    with gr.Row(elem_id="settings_top"):
        apply = gr.Button("Apply settings", variant="primary", elem_id="settings_submit")
        reload = gr.Button("Reload UI", elem_id="settings_restart_gradio")
        show_all = gr.Button("Show all pages", elem_id="settings_show_all_pages")
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
    quick = common.quick_setting_keys(ctx)
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
                            if key in quick:  # shown in the top bar, as A1111 moves them there
                                continue
                            try:
                                widget = setting_widget(key, info, options.get(key))
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
    show_all.click(None, inputs=[], outputs=[], js=SHOW_ALL_SCRIPT, **private)
