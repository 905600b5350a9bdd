"""The depth2img tab: an image (and, optionally, its depth map) on an SD2 depth checkpoint -> Img2ImgRequest.

The new picture keeps the depth of the old one: the checkpoint's own MiDaS estimates it, or the user uploads a depth
map (brighter = nearer). The gallery shows the result and, after it, the depth map that was used, at the picture's
size, so it can be checked, saved and uploaded again. Everything else is the img2img tab's: resize mode, denoising
strength, 📐, the shared prompt/sampling/seed widgets; the request is an ordinary img2img one (outputs go to
outputs/img2img-images, as A1111's depth2img does).
"""

from __future__ import annotations

import dataclasses

import gradio as gr
from PIL import Image

from sdui.core.processed import Processed
from sdui.errors import UserError
from sdui.request import Img2ImgRequest
from sdui.ui import common, extra_networks, generation
from sdui.ui.tabs import img2img

TAB = "depth2img"


# ---------------------------------------------------------------------------------------------------------------
# Widget values -> request
# ---------------------------------------------------------------------------------------------------------------
def build_request(image, depth_map, resize_mode, denoising_strength, *values, **named) -> Img2ImgRequest:
    """The request the depth2img widgets describe. `depth_map`: None lets the checkpoint estimate the depth.
    `values`/`named`: generation.request_fields' arguments (prompt, negative prompt, sampler, ..., seeds)."""
    if image is None:
        raise UserError(
            "No image to work from: drop an image into the depth2img image box (a depth map is "
            "optional), then press Generate."
        )
    return Img2ImgRequest(
        **generation.request_fields(*values, **named),
        init_images=[image],
        depth_map=depth_map,
        resize_mode=img2img.resize_mode_index(resize_mode),
        denoising_strength=img2img.denoising_value(denoising_strength),
        mode=img2img.MODE,
    )


# ---------------------------------------------------------------------------------------------------------------
# Running it: only on a depth checkpoint; the depth maps join the pictures shown
# ---------------------------------------------------------------------------------------------------------------
def require_depth_model(model) -> None:
    """Refuse a checkpoint without depth conditioning: on it the request would quietly run as plain img2img."""
    if model.variant == "depth":
        return
    name = model.checkpoint.title if model.checkpoint is not None else "the selected checkpoint"
    raise UserError(
        f"depth2img needs an SD2 depth checkpoint (such as 512-depth-ema), but {name} is not one "
        f"({model.arch}, {model.variant}): pick a depth checkpoint "
        "at the top of the page, or use the img2img tab with this one."
    )


def depth_maps_for_display(maps: list, size: tuple[int, int]) -> list[Image.Image]:
    """The depth maps the core used (greyscale, at latent size: 8x smaller) enlarged to the picture's size."""
    return [m if m.size == size else m.resize(size, resample=Image.Resampling.BICUBIC) for m in maps]


def with_depth_maps(processed: Processed) -> Processed:
    """`processed` with the depth maps it used appended to its images (as A1111 appends extra images, e.g. masks).
    Each map gets the infotext of the last picture, whose seed ♻️ also gives when the map is picked."""
    maps = processed.depth_maps
    if not maps or not processed.images:
        return processed
    shown = depth_maps_for_display(maps, processed.images[-1].size)
    infotexts = list(processed.infotexts or [])
    last = infotexts[-1] if infotexts else ""
    return dataclasses.replace(
        processed, images=[*processed.images, *shown], infotexts=[*infotexts, *[last] * len(shown)]
    )


def generate(ctx, request, *, job=None) -> Processed:
    """What the tab's job runs: app_context.generate on the selected checkpoint, if it is a depth one."""
    from sdui.app.context import generate as generate_any  # late: app_context builds the UI

    # inside the job: the model cannot change between this check and the generation
    require_depth_model(ctx.store.get())
    return with_depth_maps(generate_any(ctx, request, job=job))


# ---------------------------------------------------------------------------------------------------------------
# The tab
# ---------------------------------------------------------------------------------------------------------------
HINT = (
    "Needs an SD2 depth checkpoint (such as 512-depth-ema). Without a depth map, the checkpoint estimates the "
    "depth of the image itself; the map used is shown after the result."
)


def create_tab(ctx) -> generation.GenerationTab:
    """Lay out the depth2img tab inside the current Blocks/Tab context and wire its events."""
    row = generation.create_prompt_row(TAB, ctx)
    extra_networks.create_extra_networks(ctx, TAB)
    with gr.Row(elem_id=f"{TAB}_extra_tabs", equal_height=False):
        with gr.Column(scale=1, min_width=420, elem_id=f"{TAB}_settings"):
            with gr.Row(equal_height=True):
                image = gr.Image(
                    label="Image for depth2img",
                    sources=["upload", "clipboard"],
                    type="pil",
                    image_mode="RGBA",
                    elem_id=f"{TAB}_image",
                    height=360,
                )
                depth_map = gr.Image(
                    label="Depth map (optional; brighter = nearer)",
                    sources=["upload", "clipboard"],
                    type="pil",
                    image_mode="L",
                    elem_id=f"{TAB}_depth_map",
                    height=360,
                )
            gr.HTML(common.note_html(HINT), elem_id=f"{TAB}_hint", js_on_load=None)
            resize_mode = img2img.create_resize_mode(TAB)
            settings = generation.create_settings(TAB, size_from_image=True)
            denoising = img2img.create_denoising(TAB)
            seed = common.create_seed_row(TAB)
        panel = generation.create_output_panel(TAB)

    tab = generation.GenerationTab(
        TAB,
        row,
        settings,
        seed,
        panel,
        own_inputs=[image, depth_map, resize_mode, denoising],
        own_paste_fields={"denoising_strength": denoising},
    )
    generation.wire_generation(ctx, tab, build_request, generate=generate)
    generation.wire_paste(tab, mode=img2img.MODE, ctx=ctx)
    img2img.wire_size_from_image(settings, [image], lambda im: im)
    return tab
