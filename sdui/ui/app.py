"""The Gradio page: the checkpoint picker on top, then one tab per mode.

`create_ui(ctx)` builds the Blocks; webui.py mounts it at "/" with gr.mount_gradio_app(app, demo, path="/",
**mount_options()). Since Gradio 6 the css/theme belong to the mount call, not to gr.Blocks.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from sdui.errors import UserError
from sdui.ui import common, generation
from sdui.ui.tabs import depth2img, img2img, inpaint, outpaint, txt2img

STYLE_CSS = Path(__file__).with_name("style.css")
TITLE = "Stable Diffusion"


def mount_options() -> dict:
    """Keyword arguments for gr.mount_gradio_app that this UI needs (our stylesheet)."""
    return {"css_paths": [STYLE_CSS]}


def png_info(path: str | None) -> tuple[str, str]:
    """(infotext, message) for an image file: its `parameters` text (PNG chunk or EXIF), or why there is none."""
    if not path:
        return "", ""
    from PIL import Image

    from sdui.imaging.pnginfo import read_info_from_image

    try:
        with Image.open(path) as image:
            info = read_info_from_image(image)
    except UserError as e:
        return "", common.error_html(e.message)
    except OSError as e:
        return "", common.error_html(f"Cannot read this image: {e}")
    text = info[0] if isinstance(info, tuple) else info
    if not text:
        return "", common.note_html("This image carries no generation parameters.")
    return text, ""


def _create_png_info_tab(t2i: generation.GenerationTab, tabs: gr.Tabs) -> None:
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
    # Put the infotext into the txt2img prompt box and switch tabs; ↙️ there turns it into widget values.
    send.click(
        lambda t: (t, gr.Tabs(selected="txt2img")),
        inputs=[text],
        outputs=[t2i.prompt, tabs],
        queue=False,
        api_visibility="private",
    )


def create_ui(ctx) -> gr.Blocks:
    # delete_cache: Gradio keeps a copy of every image (and live preview) it sends; files older than 6 h go
    # (the outputs themselves are saved under outputs/ by the processing core)
    with gr.Blocks(title=TITLE, analytics_enabled=False, fill_width=True, delete_cache=(3600, 6 * 3600)) as demo:
        picker = common.create_checkpoint_picker(ctx)
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("txt2img", id="txt2img", elem_id="tab_txt2img"):
                t2i = txt2img.create_tab(ctx)
            with gr.Tab("img2img", id="img2img", elem_id="tab_img2img"):
                img2img.create_tab(ctx)
            with gr.Tab("Inpaint", id="inpaint", elem_id="tab_inpaint"):
                inpaint.create_tab(ctx)
            with gr.Tab("Outpaint", id="outpaint", elem_id="tab_outpaint"):
                outpaint.create_tab(ctx)
            with gr.Tab("depth2img", id="depth2img", elem_id="tab_depth2img"):
                depth2img.create_tab(ctx)
            with gr.Tab("PNG Info", id="pnginfo", elem_id="tab_pnginfo"):
                _create_png_info_tab(t2i, tabs)
        demo.load(
            picker.on_page_load,
            inputs=[],
            outputs=[picker.dropdown, picker.message],
            queue=False,
            api_visibility="private",
        )
    return demo
