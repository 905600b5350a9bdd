"""The img2img tab: an image plus the txt2img widgets, a resize mode and a denoising strength -> Img2ImgRequest.

Also the pieces the inpaint and outpaint tabs share with it: the resize-mode radio, the denoising slider and 📐.
Element ids follow A1111's img2img tab (img2img_image, img2img_denoising_strength, resize_mode, ...).
"""

from __future__ import annotations

import dataclasses
import functools

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


SUB_TABS = ("img2img", "sketch", "batch")  # which sub-tab the init image comes from


def build_from_tabs(ctx, sub_tab, sketch, batch_input, batch_output, batch_masks, use_png_info, png_fields, *values):
    """build_request for the sub-tab in use: the image, the sketch (strokes painted into the image), or for Batch
    (the request of the first image, the batch runner); a mask folder makes the batch an inpaint batch."""
    image, *rest = values
    if sub_tab == "sketch":
        image = sketch_image(sketch)
        if image is None:
            raise UserError("No sketch: drop an image into the Sketch editor (or draw on it), then press Generate.")
    if sub_tab != "batch":
        return build_request(image, *rest)
    from sdui.app.user_folders import img2img_batch_args
    from sdui.core.img2img_batch import img2img_batch  # late: it imports torch

    args = img2img_batch_args(ctx, batch_input, batch_output, batch_masks, png_fields if use_png_info else ())
    request = build_request(args.items[0].image, *rest)
    if args.items[0].mask is not None:
        request = dataclasses.replace(request, mask=args.items[0].mask)
    return request, functools.partial(img2img_batch, args=args)


def sketch_image(value):
    """The Sketch editor's picture with the strokes painted in (its composite), else its background."""
    if not value:
        return None
    image = value.get("composite") or value.get("background")
    return image.convert("RGB") if image is not None else None


# ---------------------------------------------------------------------------------------------------------------
# Widgets the image tabs share
# ---------------------------------------------------------------------------------------------------------------
def create_resize_mode(tab: str) -> gr.Radio:
    # A1111 names this one plainly "resize_mode" on its img2img tab
    return widgets.create("resize_mode", tab, **({"elem_id": "resize_mode"} if tab == TAB else {}))


def create_denoising(tab: str, value: float = 0.75) -> gr.Slider:
    return widgets.create("denoising_strength", tab, value=value)


def create_sketch_editor(label: str, elem_id: str, height: int) -> gr.ImageEditor:
    """A1111's Sketch: an image to paint on in any colour; the strokes become part of the image (and, for inpaint
    sketch, the mask)."""
    return gr.ImageEditor(
        label=label,
        elem_id=elem_id,
        type="pil",
        image_mode="RGBA",
        sources=["upload", "clipboard"],
        transforms=(),
        height=height,
        brush=gr.Brush(color_mode="defaults"),
        layers=gr.LayerOptions(allow_additional_layers=False, layers=["Sketch"]),
    )


def create_batch_widgets(ctx, tab: str) -> list:
    """A1111's Batch sub-tab: input, output and inpaint mask folders, and which fields of each image's own
    parameters (PNG info) to use. Folders are on the server's computer; --hide-ui-dir-config locks them."""
    from sdui.core.img2img_batch import PNG_INFO_FIELDS

    locked = ctx.flags.hide_ui_dir_config
    gr.Markdown(
        "Process the images of a folder on the server's computer; the results go into the output folder, named "
        "after their inputs (empty: the usual img2img folder)." + (" Disabled: --hide-ui-dir-config." if locked else "")
    )
    prefix = "img2img" if tab == TAB else tab
    widgets_made = [
        gr.Textbox(label="Input directory", elem_id=f"{prefix}_batch_input_dir", interactive=not locked),
        gr.Textbox(label="Output directory", elem_id=f"{prefix}_batch_output_dir", interactive=not locked),
        gr.Textbox(
            label="Inpaint batch mask directory (same names as the images, or one mask for all)",
            elem_id=f"{prefix}_batch_inpaint_mask_dir",
            interactive=not locked,
        ),
    ]
    with gr.Accordion("PNG info", open=False):
        widgets_made.append(
            gr.Checkbox(False, label="Append png info to prompts", elem_id=f"{prefix}_batch_use_png_info")
        )
        widgets_made.append(
            gr.CheckboxGroup(
                list(PNG_INFO_FIELDS),
                value=["Prompt"],
                label="Parameters to take from the images' PNG info",
                elem_id=f"{prefix}_batch_png_info_props",
            )
        )
    return widgets_made


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
            sub_tab = gr.State(SUB_TABS[0])
            with gr.Tabs(elem_id="mode_img2img") as sub_tabs:
                with gr.Tab("img2img", id="img2img_img2img_tab", elem_id="img2img_img2img_tab") as image_tab:
                    image = gr.Image(
                        label="Image for img2img",
                        sources=["upload", "clipboard"],
                        type="pil",
                        image_mode="RGBA",
                        elem_id=f"{TAB}_image",
                        height=420,
                    )
                with gr.Tab("Sketch", id="img2img_img2img_sketch_tab", elem_id="img2img_img2img_sketch_tab") as sk:
                    sketch = create_sketch_editor("Image for img2img (sketch)", "img2img_sketch", height=420)
                with gr.Tab("Batch", id="img2img_batch_tab", elem_id="img2img_batch_tab") as batch_tab:
                    batch = create_batch_widgets(ctx, TAB)
            resize_mode = create_resize_mode(TAB)
            settings = generation.create_settings(TAB, size_from_image=True)
            denoising = create_denoising(TAB)
            seed = common.create_seed_row(TAB)
            scripts = extension_scripts.create_script_controls(ctx, TAB, size=(settings.width, settings.height))
        panel = generation.create_output_panel(TAB)

    tab = generation.GenerationTab(
        TAB,
        row,
        settings,
        seed,
        panel,
        own_inputs=[sub_tab, sketch, *batch, image, resize_mode, denoising],
        own_paste_fields={"denoising_strength": denoising},
        image_input=image,
    )
    generation.wire_generation(ctx, tab, functools.partial(build_from_tabs, ctx), scripts=scripts)
    generation.wire_paste(tab, mode=MODE, scripts=scripts, ctx=ctx)
    for chosen, value in zip((image_tab, sk, batch_tab), SUB_TABS, strict=True):
        chosen.select(lambda v=value: v, inputs=[], outputs=[sub_tab], queue=False, api_visibility="private")
    # an image arriving in the img2img box (Send to img2img, PNG Info) is what the next Generate works on
    image.change(
        lambda im: (SUB_TABS[0], gr.Tabs(selected="img2img_img2img_tab")) if im is not None else (gr.skip(), gr.skip()),
        inputs=[image],
        outputs=[sub_tab, sub_tabs],
        queue=False,
        api_visibility="private",
    )
    wire_size_from_image(
        settings, [sub_tab, image, sketch], lambda t, im, sketched: sketch_image(sketched) if t == "sketch" else im
    )
    return tab
