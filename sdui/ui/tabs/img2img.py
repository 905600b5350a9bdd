"""The img2img tab: an image plus the txt2img widgets, a resize mode and a denoising strength -> Img2ImgRequest.

Also the pieces the inpaint and outpaint tabs share with it: the resize-mode radio, the denoising slider and 📐.
Element ids follow A1111's img2img tab (img2img_image, img2img_denoising_strength, resize_mode, ...).
"""

from __future__ import annotations

import gradio as gr

from sdui.errors import UserError
from sdui.request import Img2ImgRequest
from sdui.ui import common, extension_scripts, extra_networks, generation, widgets

TAB = "img2img"
MODE = "img2img"  # the request's mode: outputs go to outputs/img2img-images, as A1111's do


def resize_mode_index(value) -> int:
    return widgets.to_request("resize_mode", value, 0)


def denoising_value(value, default: float = 0.75):
    return widgets.to_request("denoising_strength", value, default)


def build_request(image, resize_mode, denoising_strength, *values, **named) -> Img2ImgRequest:
    """The request the img2img widgets describe. `values`/`named`: generation.request_fields' arguments (prompt,
    negative prompt, sampler, ..., seed widgets)."""
    if image is None:
        raise UserError(
            "No image to work from: drop an image into the img2img image box (or paste one), then press Generate."
        )
    return Img2ImgRequest(
        **generation.request_fields(*values, **named),
        init_images=[image],
        resize_mode=resize_mode_index(resize_mode),
        denoising_strength=denoising_value(denoising_strength),
        mode=MODE,
    )


# ---------------------------------------------------------------------------------------------------------------
# Widgets the image tabs share
# ---------------------------------------------------------------------------------------------------------------
def create_resize_mode(tab: str) -> gr.Radio:
    # A1111 names this one plainly "resize_mode" on its img2img tab
    return widgets.create("resize_mode", tab, **({"elem_id": "resize_mode"} if tab == TAB else {}))


def create_denoising(tab: str, value: float = 0.75) -> gr.Slider:
    return widgets.create("denoising_strength", tab, value=value)


def wire_size_from_image(settings: generation.GenerationSettings, inputs: list, pick_image) -> None:
    """📐: width/height from the image the tab works on. `pick_image(*values of inputs)` returns that image."""

    def on_click(*values):
        size = generation.size_of_image(pick_image(*values))
        return size if size is not None else (gr.skip(), gr.skip())

    settings.size_from_image.click(
        on_click, inputs=inputs, outputs=[settings.width, settings.height], queue=False, api_visibility="private"
    )


# ---------------------------------------------------------------------------------------------------------------
# The tab
# ---------------------------------------------------------------------------------------------------------------
def create_tab(ctx) -> generation.GenerationTab:
    """Lay out the img2img tab inside the current Blocks/Tab context and wire its events."""
    row = generation.create_prompt_row(TAB, ctx)
    extra_networks.create_extra_networks(ctx, TAB)
    with gr.Row(elem_id=f"{TAB}_extra_tabs", equal_height=False):
        with gr.Column(scale=1, min_width=420, elem_id=f"{TAB}_settings"):
            image = gr.Image(
                label="Image for img2img",
                sources=["upload", "clipboard"],
                type="pil",
                image_mode="RGBA",
                elem_id=f"{TAB}_image",
                height=420,
            )
            resize_mode = create_resize_mode(TAB)
            settings = generation.create_settings(TAB, size_from_image=True)
            denoising = create_denoising(TAB)
            seed = common.create_seed_row(TAB)
            scripts = extension_scripts.create_script_controls(ctx, TAB)
        panel = generation.create_output_panel(TAB)

    tab = generation.GenerationTab(
        TAB,
        row,
        settings,
        seed,
        panel,
        own_inputs=[image, resize_mode, denoising],
        own_paste_fields={"denoising_strength": denoising},
        image_input=image,
    )
    generation.wire_generation(ctx, tab, build_request, scripts=scripts)
    generation.wire_paste(tab, mode=MODE, scripts=scripts, ctx=ctx)
    wire_size_from_image(settings, [image], lambda im: im)
    return tab
