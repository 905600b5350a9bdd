"""A1111's style editor (🖌️ beside a tab's style picker): pick or type a style name, change its prompt and
negative prompt, save it into styles.csv (the file that holds it, else the first; written atomically) or delete it.
The tab's picker gets the new names at once."""

from __future__ import annotations

import gradio as gr

from sdui.errors import UserError
from sdui.text.styles import delete_style, read_styles, save_style
from sdui.ui import common

EDIT_SYMBOL = "\U0001f58c\ufe0f"  # 🖌️


def create_styles_editor(ctx, tab: str, picker: gr.Dropdown, open_button: gr.Button) -> None:
    files = ctx.paths.styles_files
    with gr.Group(visible=False, elem_id=f"{tab}_styles_editor") as editor:
        name = gr.Dropdown(
            choices=common.style_names(ctx),
            value=None,
            label="Style",
            allow_custom_value=True,
            elem_id=f"{tab}_edit_style_name",
        )
        prompt = gr.Textbox(label="Prompt", lines=2, elem_id=f"{tab}_edit_style_prompt")
        negative = gr.Textbox(label="Negative prompt", lines=2, elem_id=f"{tab}_edit_style_neg_prompt")
        with gr.Row():
            save = gr.Button("Save", variant="primary", elem_id=f"{tab}_edit_style_save")
            delete = gr.Button("Delete", variant="stop", elem_id=f"{tab}_edit_style_delete")
            close = gr.Button("Close", elem_id=f"{tab}_edit_style_close")
        message = gr.HTML("", elem_id=f"{tab}_edit_style_message")

    def show(chosen):
        first = (chosen or [None])[0]
        return (gr.Group(visible=True), *_fields(first))

    def _fields(chosen_name):
        style = next((s for s in read_styles(files) if s.name == chosen_name), None)
        return (
            gr.Dropdown(choices=common.style_names(ctx), value=chosen_name),
            style.prompt if style else "",
            style.negative_prompt if style else "",
        )

    def on_save(style_name, style_prompt, style_negative):
        try:
            path = save_style(files, style_name, style_prompt or "", style_negative or "")
        except (UserError, OSError) as e:
            return gr.skip(), gr.skip(), common.error_html(getattr(e, "message", str(e)))
        names = common.style_names(ctx)
        return gr.Dropdown(choices=names), gr.Dropdown(choices=names), common.note_html(f"Saved into {path}.")

    def on_delete(style_name):
        try:
            delete_style(files, style_name or "")
        except (UserError, OSError) as e:
            return gr.skip(), gr.skip(), "", "", common.error_html(getattr(e, "message", str(e)))
        names = common.style_names(ctx)
        return gr.Dropdown(choices=names), gr.Dropdown(choices=names, value=None), "", "", ""

    private = {"api_visibility": "private", "queue": False}
    open_button.click(show, inputs=[picker], outputs=[editor, name, prompt, negative], **private)
    name.input(lambda n: _fields(n)[1:], inputs=[name], outputs=[prompt, negative], **private)
    save.click(on_save, inputs=[name, prompt, negative], outputs=[picker, name, message], **private)
    delete.click(on_delete, inputs=[name], outputs=[picker, name, prompt, negative, message], **private)
    close.click(lambda: gr.Group(visible=False), inputs=[], outputs=[editor], **private)
