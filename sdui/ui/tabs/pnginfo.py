"""The PNG Info tab: the generation parameters an image carries (PNG text chunk, EXIF UserComment), and buttons
that send them (with the image) to txt2img, img2img, inpaint and extras."""

from __future__ import annotations

import gradio as gr
from PIL import Image

from sdui.errors import UserError
from sdui.imaging.pnginfo import read_info_from_image
from sdui.ui import common


def png_info(path: str | None) -> tuple[str, str]:
    """(infotext, message) for an image file: its `parameters` text (PNG chunk or EXIF), or why there is none."""
    if not path:
        return "", ""
    try:
        with Image.open(path) as image:
            text, _ = read_info_from_image(image)
    except UserError as e:
        return "", common.error_html(e.message)
    except OSError as e:
        return "", common.error_html(f"Cannot read this image: {e}")
    if not text:
        return "", common.note_html("This image carries no generation parameters.")
    return text, ""


SEND_TARGETS = {"txt2img": "txt2img", "img2img": "img2img", "inpaint": "inpaint", "extras": "extras"}


def create_tab(ctx, targets: dict, tabs: gr.Tabs) -> None:
    """Lay out the PNG Info tab; its buttons send the parameters (and, but for txt2img, the image) to the tabs in
    `targets` (tab id -> GenerationTab-like), switching `tabs`, and paste them into the widgets there (as ↙️ does)."""
    with gr.Row(equal_height=False):
        with gr.Column():
            # image_mode=None: Gradio hands over the uploaded file itself; with a mode it may re-encode the image
            # and drop the text chunks we are here to read
            image = gr.Image(
                label="Source",
                sources=["upload", "clipboard"],
                type="filepath",
                image_mode=None,
                elem_id="pnginfo_image",
                height=480,
            )
        with gr.Column():
            text = gr.Textbox(
                label="Parameters", lines=8, interactive=False, elem_id="pnginfo_generation_info", buttons=["copy"]
            )
            message = gr.HTML("", elem_id="pnginfo_html_info", js_on_load=None)
            with gr.Row():
                buttons = {
                    target: gr.Button(f"Send to {label}", elem_id=f"pnginfo_send_{target}")
                    for target, label in SEND_TARGETS.items()
                    if target in targets
                }
    image.change(png_info, inputs=[image], outputs=[text, message], api_visibility="private")
    for target_id, button in buttons.items():
        _wire_send(ctx, button, targets[target_id], target_id, image, text, message, tabs)


def _wire_send(ctx, button, target, target_id: str, image, text, message, tabs) -> None:
    with_image = target_id != "txt2img" and target.image_input is not None
    prompt = getattr(target, "prompt", None) if target.paste_event is not None else None
    outputs = [*([target.image_input] if with_image else []), *([prompt] if prompt is not None else []), tabs, message]

    def send(path, infotext):
        values = []
        if with_image:
            try:
                from sdui.app.user_folders import open_image

                values.append(open_image(ctx, path) if path else gr.skip())
            except UserError as e:
                return (*[gr.skip()] * (len(outputs) - 1), common.error_html(e.message))
        if prompt is not None:
            values.append(infotext)
        return (*values, gr.Tabs(selected=target_id), "")

    sent = button.click(send, inputs=[image, text], outputs=outputs, queue=False, api_visibility="private")
    if target.paste_event is not None:
        fn, inputs, paste_outputs = target.paste_event
        sent.then(fn, inputs=inputs, outputs=paste_outputs, queue=False, api_visibility="private")
