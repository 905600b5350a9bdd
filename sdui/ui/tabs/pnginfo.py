"""The PNG Info tab: the generation parameters an image carries (PNG text chunk, EXIF UserComment), and a button
that sends them to txt2img."""

from __future__ import annotations

import gradio as gr
from PIL import Image

from sdui.errors import UserError
from sdui.imaging.pnginfo import read_info_from_image
from sdui.ui import common, generation


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


def create_tab(t2i: generation.GenerationTab, tabs: gr.Tabs) -> None:
    """Lay out the PNG Info tab; its button sends the text to the txt2img tab `t2i` (switching `tabs`)."""
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
            send = gr.Button("Send to txt2img", elem_id="pnginfo_send_txt2img")
    image.change(png_info, inputs=[image], outputs=[text, message], api_visibility="private")
    # Put the infotext into the txt2img prompt box, switch tabs, and paste it into the widgets there (as ↙️ does).
    sent = send.click(
        lambda t: (t, gr.Tabs(selected="txt2img")),
        inputs=[text],
        outputs=[t2i.prompt, tabs],
        queue=False,
        api_visibility="private",
    )
    if t2i.paste_event is not None:
        fn, inputs, outputs = t2i.paste_event
        sent.then(fn, inputs=inputs, outputs=outputs, queue=False, api_visibility="private")
