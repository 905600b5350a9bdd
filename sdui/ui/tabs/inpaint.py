"""The inpaint tab: an image and a mask (painted over the image, or uploaded) -> Img2ImgRequest with `mask`.

White in the mask = repaint (unless "Inpaint not masked"). Painting happens in a gr.ImageEditor: its background is
the image, the alpha of the painted layer is the mask (`mask_from_editor`). Element ids follow A1111's inpaint
sub-tabs (img2maskimg, img_inpaint_base, img_inpaint_mask); the shared widgets carry the "inpaint_" prefix.
"""

from __future__ import annotations

import functools

import gradio as gr
import numpy as np
from PIL import Image, ImageChops

from sdui.errors import UserError
from sdui.imaging import masking
from sdui.request import Img2ImgRequest
from sdui.ui import common, extension_scripts, extra_networks, generation, widgets
from sdui.ui.tabs import img2img

TAB = "inpaint"

# which sub-tab the image and mask come from: A1111's Inpaint, Inpaint upload, Inpaint sketch, Batch
SOURCES = ("draw", "upload", "sketch", "batch")


# ---------------------------------------------------------------------------------------------------------------
# The editor's value -> image and mask
# ---------------------------------------------------------------------------------------------------------------
def _as_pil(value) -> Image.Image | None:
    """gr.ImageEditor hands PIL images with type="pil"; accept its other types (numpy, file path) too."""
    if value is None or isinstance(value, Image.Image):
        return value
    if isinstance(value, np.ndarray):
        return Image.fromarray(value)
    return Image.open(value)


def mask_from_editor(value) -> tuple[Image.Image | None, Image.Image | None]:
    """(image, mask) from a gr.ImageEditor value {"background", "layers", "composite"}.

    image: the background as uploaded (strokes not drawn in). mask: 'L' at the image's size, the strongest alpha
    of the painted layers at each pixel (255 where painted, soft at the brush's edge, 0 elsewhere), whatever the
    brush colour. A layer of another size than the background (a canvas the user resized) is stretched onto it.
    (None, None) when no image was uploaded; an all-black mask when nothing was painted."""
    if not value:
        return None, None
    image = _as_pil(value.get("background"))
    if image is None:
        return None, None
    mask = Image.new("L", image.size, 0)
    for layer in value.get("layers") or []:
        layer = _as_pil(layer)
        if layer is None:
            continue
        alpha = layer.convert("RGBA").getchannel("A")
        if alpha.size != image.size:
            alpha = alpha.resize(image.size, resample=Image.Resampling.NEAREST)
        mask = ImageChops.lighter(mask, alpha)
    return image, mask


def _nothing_to_change(mask: Image.Image, invert: bool) -> bool:
    """True when the mask, read the way the processing core reads it (alpha or brightness, inverted if asked),
    marks no pixel to repaint."""
    prepared = masking.prepare_mask(mask, invert=invert, blur_x=0, blur_y=0)
    return prepared.mask.getextrema()[1] == 0


def sketch_and_mask(value) -> tuple[Image.Image | None, Image.Image | None]:
    """Inpaint sketch: the image with the coloured strokes drawn in (the init image), and where they are (the
    mask), as A1111's inpaint sketch."""
    image, mask = mask_from_editor(value)
    if image is None:
        return None, None
    composite = _as_pil(value.get("composite"))
    if composite is None or composite.size != image.size:  # no strokes rendered: the image itself
        composite = image
    return composite.convert("RGB"), mask


def image_and_mask(editor, base_image, base_mask, source, sketch=None) -> tuple[Image.Image | None, Image.Image | None]:
    """The image and mask of the selected sub-tab: painted ("draw"), uploaded ("upload") or sketched ("sketch")."""
    if source == "upload":
        return base_image, base_mask
    if source == "sketch":
        return sketch_and_mask(sketch)
    return mask_from_editor(editor)


# ---------------------------------------------------------------------------------------------------------------
# Widget values -> request
# ---------------------------------------------------------------------------------------------------------------
def build_request(
    editor,
    base_image,
    base_mask,
    source,
    resize_mode,
    mask_blur,
    mask_mode,
    masked_content,
    inpaint_area,
    padding,
    denoising_strength,
    *values,
    **named,
) -> Img2ImgRequest:
    """The request the inpaint widgets describe. `values`/`named`: generation.request_fields' arguments."""
    image, mask = image_and_mask(editor, base_image, base_mask, source, named.pop("sketch", None))
    if image is None:
        where = {
            "upload": "into the Image box of the Inpaint upload tab",
            "sketch": "into the Inpaint sketch editor",
        }.get(source, "into the Inpaint editor")
        raise UserError(f"No image to inpaint: drop an image {where}, mark what to change, then press Generate.")
    if mask is None:
        raise UserError(
            "No mask: upload a mask next to the image (white = repaint), "
            "or paint one over the image on the Draw mask tab."
        )
    invert = widgets.to_request("inpainting_mask_invert", mask_mode, 0)
    if _nothing_to_change(mask, bool(invert)):
        raise UserError(
            "The mask marks nothing to change: paint over the part of the image to repaint "
            "(or upload a mask where white marks it)"
            + (", or switch the mask mode to \"Inpaint masked\"." if invert else ".")
            # Gradio's editor can leave a stroke out of what it sends while still showing it (seen with the first
            # stroke after a new image): the one thing a person who did paint can do about it
            + (" If you did paint, paint once more: the editor can miss a first stroke." if source != "upload" else "")
        )
    blur = widgets.to_request("mask_blur_x", mask_blur, 4)
    return Img2ImgRequest(
        **generation.request_fields(*values, **named),
        init_images=[image],
        mask=mask,
        resize_mode=img2img.resize_mode_index(resize_mode),
        denoising_strength=img2img.denoising_value(denoising_strength),
        mask_blur_x=blur,
        mask_blur_y=blur,
        inpainting_mask_invert=invert,
        inpainting_fill=widgets.to_request("inpainting_fill", masked_content, 1),
        inpaint_full_res=widgets.to_request("inpaint_full_res", inpaint_area, False),
        inpaint_full_res_padding=widgets.to_request("inpaint_full_res_padding", padding, 32),
        mode=img2img.MODE,
    )


def build_from_tabs(ctx, sketch, batch_input, batch_output, batch_masks, use_png_info, png_info_fields, *values):
    """build_request for the sub-tab in use; for Batch, (the request of the first image, the batch runner)."""
    editor, base_image, base_mask, source, *rest = values
    if source != "batch":
        return build_request(editor, base_image, base_mask, source, *rest, sketch=sketch)
    from sdui.app.user_folders import img2img_batch_args
    from sdui.core.img2img_batch import img2img_batch  # late: it imports torch

    if not (batch_masks and batch_masks.strip()):
        raise UserError("Inpaint batch: type the folder of masks (same names as the images, or a single mask).")
    args = img2img_batch_args(ctx, batch_input, batch_output, batch_masks, png_info_fields if use_png_info else ())
    first = args.items[0]
    request = build_request(None, first.image, first.mask, "upload", *rest)
    return request, functools.partial(img2img_batch, args=args)


# ---------------------------------------------------------------------------------------------------------------
# The tab
# ---------------------------------------------------------------------------------------------------------------
def create_tab(ctx) -> generation.GenerationTab:
    """Lay out the inpaint tab inside the current Blocks/Tab context and wire its events."""
    row = generation.create_prompt_row(TAB, ctx)
    extra_networks.create_extra_networks(ctx, TAB)
    with gr.Row(elem_id=f"{TAB}_extra_tabs", equal_height=False):
        with gr.Column(scale=1, min_width=420, elem_id=f"{TAB}_settings"):
            with gr.Tabs(elem_id=f"{TAB}_mask_source"):
                with gr.Tab("Inpaint", id=f"{TAB}_draw", elem_id=f"{TAB}_draw_tab") as draw_tab:
                    # one layer, opaque brushes: the layer's alpha is the mask, the colour only helps to see it
                    editor = gr.ImageEditor(
                        label="Image for inpainting with mask",
                        elem_id="img2maskimg",
                        type="pil",
                        image_mode="RGBA",
                        sources=["upload", "clipboard"],
                        transforms=(),
                        height=480,
                        brush=gr.Brush(colors=["#ffffff", "#000000", "#ff3030"], color_mode="fixed"),
                        layers=gr.LayerOptions(allow_additional_layers=False, layers=["Mask"]),
                    )
                with gr.Tab("Inpaint sketch", id=f"{TAB}_sketch", elem_id=f"{TAB}_sketch_tab") as sketch_tab:
                    # the strokes are painted into the image in their colours, and they are the mask too
                    sketch = img2img.create_sketch_editor("Image for inpaint sketch", "inpaint_sketch", height=480)
                with gr.Tab("Inpaint upload", id=f"{TAB}_upload", elem_id=f"{TAB}_upload_tab") as upload_tab:
                    base_image = gr.Image(
                        label="Image",
                        sources=["upload", "clipboard"],
                        type="pil",
                        image_mode="RGBA",
                        elem_id="img_inpaint_base",
                        height=300,
                    )
                    base_mask = gr.Image(
                        label="Mask (white = repaint, or the alpha of a transparent PNG)",
                        sources=["upload", "clipboard"],
                        type="pil",
                        image_mode="RGBA",
                        elem_id="img_inpaint_mask",
                        height=300,
                    )
                with gr.Tab("Batch", id=f"{TAB}_batch", elem_id=f"{TAB}_batch_tab") as batch_tab:
                    batch = img2img.create_batch_widgets(ctx, TAB)
            source = gr.State(SOURCES[0])
            resize_mode = img2img.create_resize_mode(TAB)
            mask_blur = widgets.create("mask_blur_x", TAB)
            mask_mode = widgets.create("inpainting_mask_invert", TAB)
            masked_content = widgets.create("inpainting_fill", TAB)
            with gr.Row():
                inpaint_area = widgets.create("inpaint_full_res", TAB)
                padding = widgets.create("inpaint_full_res_padding", TAB)
            settings = generation.create_settings(TAB, size_from_image=True)
            denoising = img2img.create_denoising(TAB)
            seed = common.create_seed_row(TAB)
            scripts = extension_scripts.create_controlnet_controls(ctx, TAB, size=(settings.width, settings.height))
        panel = generation.create_output_panel(TAB)

    own_inputs = [
        sketch,
        *batch,
        editor,
        base_image,
        base_mask,
        source,
        resize_mode,
        mask_blur,
        mask_mode,
        masked_content,
        inpaint_area,
        padding,
        denoising,
    ]
    tab = generation.GenerationTab(
        TAB,
        row,
        settings,
        seed,
        panel,
        own_inputs=own_inputs,
        own_paste_fields={
            "denoising_strength": denoising,
            "mask_blur_x": mask_blur,
            "inpainting_mask_invert": mask_mode,
            "inpainting_fill": masked_content,
            "inpaint_full_res": inpaint_area,
            "inpaint_full_res_padding": padding,
        },
        image_input=editor,
    )
    generation.wire_generation(ctx, tab, functools.partial(build_from_tabs, ctx), scripts=scripts)
    generation.wire_paste(tab, mode=img2img.MODE, ctx=ctx, scripts=scripts)
    for sub_tab, value in zip((draw_tab, upload_tab, sketch_tab, batch_tab), SOURCES, strict=True):
        sub_tab.select(lambda v=value: v, inputs=[], outputs=[source], queue=False, api_visibility="private")
    img2img.wire_size_from_image(
        settings, [editor, base_image, base_mask, source, sketch], lambda *values: image_and_mask(*values)[0]
    )
    return tab
