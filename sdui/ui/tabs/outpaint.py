"""The outpaint tab: grow an image on the chosen sides and paint the new area -> Img2ImgRequest with a mask.

The canvas (the image placed on a bigger one, the new area pre-filled) and its mask come from
sdui.imaging.masking.outpaint_canvas; the request then inpaints that canvas at its own size, "Whole picture".
"""

from __future__ import annotations

import gradio as gr

from sdui.errors import UserError
from sdui.modes import outpaint
from sdui.request import MASKED_CONTENT, Img2ImgRequest
from sdui.ui import common, extra_networks, generation, widgets
from sdui.ui.tabs import img2img

TAB = "outpaint"
SIDES = ("left", "right", "up", "down")


def _grow(checked: dict, pixels: int) -> dict:
    return {side: pixels if checked.get(side) else 0 for side in SIDES}


def canvas_size(image, left, right, up, down, pixels) -> tuple[int, int] | None:
    """The size the result will have: the image grown by `pixels` on each checked side, up to a multiple of 8."""
    if image is None:
        return None
    grow = _grow({"left": left, "right": right, "up": up, "down": down}, widgets.whole(pixels, 128))
    return outpaint.canvas_size(image.size, **grow)


def size_note(image, left, right, up, down, pixels) -> str:
    size = canvas_size(image, left, right, up, down, pixels)
    if size is None:
        return common.note_html("The result is the image grown on the checked sides.")
    return common.note_html(f"Result size: {size[0]}x{size[1]} (the image is {image.width}x{image.height}).")


def build_request(
    image, left, right, up, down, pixels, mask_blur, masked_content, denoising_strength, *values, **named
) -> Img2ImgRequest:
    """The request the outpaint widgets describe. `values`/`named`: generation.request_fields' arguments; their
    width and height are replaced by the canvas size.

    The mask reaches twice the mask blur into the original on every grown side, so the blur fades the seam over
    original pixels (A1111's outpainting does the same). A canvas whose sides are not multiples of 8 grows by the
    few extra pixels that make them so (sdui.modes.outpaint): the original stays pixel-exact."""
    if image is None:
        raise UserError(
            "No image to outpaint: drop an image into the outpaint image box, check the sides to grow, "
            "then press Generate."
        )
    checked = {"left": left, "right": right, "up": up, "down": down}
    if not any(checked.values()):
        raise UserError("No side to grow: check at least one of left, right, up, down.")
    blur = widgets.to_request("mask_blur_x", mask_blur, 4)
    fields = generation.request_fields(*values, **named)
    base = Img2ImgRequest(
        **fields,
        init_images=[image],
        mode=img2img.MODE,
        denoising_strength=img2img.denoising_value(denoising_strength, 0.8),
        mask_blur_x=blur,
        mask_blur_y=blur,
        inpainting_fill=widgets.to_request("inpainting_fill", masked_content, 0),
    )
    return outpaint.outpaint_request(base, **_grow(checked, widgets.whole(pixels, 128)))


def create_tab(ctx) -> generation.GenerationTab:
    """Lay out the outpaint tab inside the current Blocks/Tab context and wire its events."""
    row = generation.create_prompt_row(TAB, ctx)
    extra_networks.create_extra_networks(ctx, TAB)
    with gr.Row(elem_id=f"{TAB}_extra_tabs", equal_height=False):
        with gr.Column(scale=1, min_width=420, elem_id=f"{TAB}_settings"):
            image = gr.Image(
                label="Image to outpaint",
                sources=["upload", "clipboard"],
                type="pil",
                image_mode="RGBA",
                elem_id=f"{TAB}_image",
                height=420,
            )
            with gr.Row(elem_id=f"{TAB}_sides"):
                sides = [
                    gr.Checkbox(value=True, label=side.capitalize(), elem_id=f"{TAB}_{side}", min_width=80)
                    for side in SIDES
                ]
            pixels = gr.Slider(
                minimum=8, maximum=256, step=8, value=128, label="Pixels to expand", elem_id=f"{TAB}_pixels"
            )
            note = gr.HTML(size_note(None, *[True] * 4, 128), elem_id=f"{TAB}_size_note", js_on_load=None)
            mask_blur = widgets.create("mask_blur_x", TAB)
            masked_content = widgets.create("inpainting_fill", TAB, value=MASKED_CONTENT[0])
            # the size follows from the image: the sliders stay (hidden) so the build function gets the same inputs
            settings = generation.create_settings(TAB, show_size=False)
            denoising = img2img.create_denoising(TAB, 0.8)
            seed = common.create_seed_row(TAB)
        panel = generation.create_output_panel(TAB)

    tab = generation.GenerationTab(
        TAB,
        row,
        settings,
        seed,
        panel,
        own_inputs=[image, *sides, pixels, mask_blur, masked_content, denoising],
        own_paste_fields={"denoising_strength": denoising, "mask_blur_x": mask_blur, "inpainting_fill": masked_content},
    )
    generation.wire_generation(ctx, tab, build_request)
    generation.wire_paste(tab, mode=img2img.MODE, targets=tab.widget_for_field(size=False), ctx=ctx)
    gr.on(
        [image.change, *(s.change for s in sides), pixels.change],
        size_note,
        inputs=[image, *sides, pixels],
        outputs=[note],
        queue=False,
        api_visibility="private",
    )
    return tab
