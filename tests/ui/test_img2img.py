"""The img2img, inpaint and outpaint tabs: the page carries A1111's element ids, the pure build_*_request functions
turn widget values into the right Img2ImgRequest fields, the image editor's value becomes an image and a mask,
and each tab's Generate handler runs a real generation on a tiny checkpoint (or shows the user's mistake)."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
from gradio.components.image_editor import EditorData
from gradio.data_classes import FileData
from PIL import Image

from sdui.errors import UserError
from sdui.request import MASKED_CONTENT, RESIZE_MODES, Img2ImgRequest
from sdui.ui import common, generation
from sdui.ui.app import create_ui
from sdui.ui.tabs import img2img, inpaint, outpaint
from tests.helpers import call, components_by_id, handler, make_ctx, outputs_by_id

A1111_IMG2IMG_IDS = {
    "img2img_prompt",
    "img2img_neg_prompt",
    "img2img_image",
    "img2maskimg",
    "img_inpaint_base",
    "img_inpaint_mask",
    "img2img_generate",
    "img2img_gallery",
    "img2img_steps",
    "img2img_width",
    "img2img_height",
    "img2img_denoising_strength",
    "img2img_batch_count",
    "img2img_batch_size",
    "img2img_cfg_scale",
    "img2img_sampling",
    "img2img_scheduler",
    "img2img_seed",
    "resize_mode",
    "tab_txt2img",
    "tab_img2img",
    "tab_inpaint",
    "tab_outpaint",
    "tabs",
}

# what every tab passes after its own values: prompt, negative, sampler, schedule, steps, width, height,
# batch count, batch size, CFG, seed, variation seed, variation strength, seed resize from w/h
COMMON = ["a tiny test", "noise", "Euler", "Automatic", 4, 64, 64, 1, 1, 7, 1234, -1, 0, 0, 0]
# the img2img sub-tab, its sketch, then the Batch widgets (input, output, masks, use PNG info, its fields); the
# inpaint tab takes the same without the first
NO_SUB_TAB_INPUTS = ["img2img", None, "", "", "", False, []]


@pytest.fixture(scope="module")
def tiny_ctx(tmp_path_factory):
    """An app context with a tiny SD1 checkpoint selected, shared by the end-to-end tests (one model load)."""
    from tests.fixtures.checkpoints import build_tiny_checkpoint

    c = make_ctx(tmp_path_factory.mktemp("data"))
    build_tiny_checkpoint(c.paths.sd_models_dir / "tiny.safetensors", arch="sd1")
    c.store.refresh()
    assert common.select_checkpoint(c, "tiny.safetensors") == ""
    yield c
    c.jobs.shutdown()


def noise_image(w: int, h: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    channels = len(mode)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(h, w, channels), dtype=np.uint8)
    return Image.fromarray(pixels, mode)


def editor_value(tmp_path, background: Image.Image, layers: list[Image.Image]) -> dict:
    """What gr.ImageEditor(type="pil", image_mode="RGBA") hands a handler: the browser uploads background, layers
    and composite as PNG files (EditorData) and the component's preprocess turns them into {"background": PIL,
    "layers": [PIL], "composite": PIL}."""

    def save(image, name):
        path = tmp_path / f"{name}.png"
        image.save(path)
        return FileData(path=str(path), orig_name=path.name)

    composite = background.convert("RGBA")
    for layer in layers:
        composite = Image.alpha_composite(composite, layer)
    editor = gr.ImageEditor(type="pil", image_mode="RGBA")
    value = editor.preprocess(
        EditorData(
            background=save(background, "bg"),
            layers=[save(layer, f"layer{i}") for i, layer in enumerate(layers)],
            composite=save(composite, "composite"),
        )
    )
    assert set(value) == {"background", "layers", "composite"}
    return value


def stroke_layer(size, box, colour=(255, 48, 48, 255)) -> Image.Image:
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    layer.paste(colour, box)
    return layer


# ---------------------------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------------------------
def test_page_has_the_image_tabs_with_a1111_ids_and_defaults(ctx):
    demo = create_ui(ctx)
    config_ids = [c["props"].get("elem_id") for c in demo.config["components"] if c["props"].get("elem_id")]
    assert A1111_IMG2IMG_IDS <= set(config_ids)
    duplicates = [elem_id for elem_id, n in Counter(config_ids).items() if n > 1]
    assert duplicates == []  # every tab has its own ids: extensions' JS must find one element
    blocks = components_by_id(demo)

    assert blocks["img2img_image"].type == "pil" and blocks["img2img_image"].image_mode == "RGBA"
    assert [c[0] for c in blocks["resize_mode"].choices] == [
        "Just resize",
        "Crop and resize",
        "Resize and fill",
        "Just resize (latent upscale)",
    ]
    assert blocks["resize_mode"].value == "Just resize"
    sliders = {
        "img2img_denoising_strength": (0, 1, 0.01, 0.75),
        "inpaint_denoising_strength": (0, 1, 0.01, 0.75),
        "outpaint_denoising_strength": (0, 1, 0.01, 0.8),
        "inpaint_mask_blur": (0, 64, 1, 4),
        "outpaint_mask_blur": (0, 64, 1, 4),
        "inpaint_inpaint_full_res_padding": (0, 256, 4, 32),
        "outpaint_pixels": (8, 256, 8, 128),
        "img2img_steps": (1, 150, 1, 20),
        "img2img_width": (64, 2048, 8, 512),
        "img2img_cfg_scale": (1, 30, 0.5, 7),
    }
    for elem_id, (lo, hi, step, value) in sliders.items():
        s = blocks[elem_id]
        assert (s.minimum, s.maximum, s.step, s.value) == (lo, hi, step, value), elem_id

    assert isinstance(blocks["img2maskimg"], gr.ImageEditor) and blocks["img2maskimg"].type == "pil"
    assert [c[0] for c in blocks["inpaint_mask_mode"].choices] == ["Inpaint masked", "Inpaint not masked"]
    assert [c[0] for c in blocks["inpaint_inpainting_fill"].choices] == [
        "fill",
        "original",
        "latent noise",
        "latent nothing",
    ]
    assert blocks["inpaint_inpainting_fill"].value == "original"
    assert blocks["outpaint_inpainting_fill"].value == "fill"
    assert [c[0] for c in blocks["inpaint_inpaint_full_res"].choices] == ["Whole picture", "Only masked"]
    assert all(blocks[f"outpaint_{side}"].value is True for side in ("left", "right", "up", "down"))
    for tab in ("img2img", "inpaint", "outpaint"):
        assert blocks[f"{tab}_gallery"].format == "png"  # the download keeps the parameters chunk
        assert blocks[f"{tab}_sampling"].value == "DPM++ 2M"


def test_generate_handlers_take_build_request_arguments_in_order(ctx):
    demo = create_ui(ctx)
    common_ids = [
        f"{{}}_{name}"
        for name in (
            "prompt",
            "neg_prompt",
            "sampling",
            "scheduler",
            "steps",
            "width",
            "height",
            "batch_count",
            "batch_size",
            "cfg_scale",
            "seed",
            "subseed",
            "subseed_strength",
            "seed_resize_from_w",
            "seed_resize_from_h",
        )
    ]
    own = {
        "img2img": [
            "State",  # the sub-tab in use
            "img2img_sketch",
            "img2img_batch_input_dir",
            "img2img_batch_output_dir",
            "img2img_batch_inpaint_mask_dir",
            "img2img_batch_use_png_info",
            "img2img_batch_png_info_props",
            "img2img_image",
            "resize_mode",
            "img2img_denoising_strength",
        ],
        "inpaint": [
            "inpaint_sketch",
            "inpaint_batch_input_dir",
            "inpaint_batch_output_dir",
            "inpaint_batch_inpaint_mask_dir",
            "inpaint_batch_use_png_info",
            "inpaint_batch_png_info_props",
            "img2maskimg",
            "img_inpaint_base",
            "img_inpaint_mask",
            "State",
            "inpaint_resize_mode",
            "inpaint_mask_blur",
            "inpaint_mask_mode",
            "inpaint_inpainting_fill",
            "inpaint_inpaint_full_res",
            "inpaint_inpaint_full_res_padding",
            "inpaint_denoising_strength",
        ],
        "outpaint": [
            "outpaint_image",
            "outpaint_left",
            "outpaint_right",
            "outpaint_up",
            "outpaint_down",
            "outpaint_pixels",
            "outpaint_mask_blur",
            "outpaint_inpainting_fill",
            "outpaint_denoising_strength",
        ],
    }
    for tab, own_ids in own.items():
        fn = handler(demo, f"{tab}_generate", "click")
        got = [b.elem_id or type(b).__name__ for b in fn.inputs]
        expected = own_ids + [i.format(tab) for i in common_ids]
        assert got[: len(expected)] == expected, tab
        # then the Script dropdown and its scripts' controls where the tab has scripts (A1111's img2img), and last
        # the style picker
        after = {"img2img": f"{tab}_script", "inpaint": f"{tab}_controlnet_0_enable"}.get(tab, f"{tab}_styles")
        assert got[len(expected) :][:1] == [after], tab  # then the scripts' (inpaint: ControlNet's) controls
        assert got[-1] == f"{tab}_styles", tab
    # the outpaint result's size is the canvas's: its size sliders are not shown
    blocks = components_by_id(demo)
    assert not blocks["outpaint_width"].visible and not blocks["outpaint_height"].visible
    assert blocks["img2img_width"].visible and blocks["inpaint_height"].visible


# ---------------------------------------------------------------------------------------------------------------
# Widget values -> request
# ---------------------------------------------------------------------------------------------------------------
def test_img2img_build_request_maps_widget_values():
    image = noise_image(48, 32, mode="RGBA")
    for index, label in enumerate(RESIZE_MODES):
        req = img2img.build_request(
            image, label, 0.35, "a cat", "blurry", "Euler a", "Karras", 30.0, 768, 640, 3, 2, 7.5, 42, 7, 0.25, 0, 256
        )
        assert isinstance(req, Img2ImgRequest) and req.mode == "img2img"
        assert req.resize_mode == index
        assert req.init_images == [image] and req.init_images[0].mode == "RGBA"  # transparency reaches the core
        assert req.denoising_strength == 0.35 and req.mask is None
        assert (req.prompt, req.negative_prompt, req.sampler_name, req.scheduler) == (
            "a cat",
            "blurry",
            "Euler a",
            "Karras",
        )
        assert (req.steps, req.width, req.height, req.n_iter, req.batch_size) == (30, 768, 640, 3, 2)
        assert (req.cfg_scale, req.seed, req.subseed, req.subseed_strength) == (7.5, 42, 7, 0.25)
        assert (req.seed_resize_from_w, req.seed_resize_from_h) == (-1, 256)
    # whole numbers arrive as int (the infotext says "Denoising strength: 1"); keyword arguments work too
    req = img2img.build_request(
        image,
        "Just resize",
        1.0,
        prompt="x",
        negative_prompt="",
        sampler_name="Euler",
        scheduler="Automatic",
        steps=2,
        width=64,
        height=64,
        batch_count=1,
        batch_size=1,
        cfg_scale=7,
        seed=-1,
    )
    assert req.denoising_strength == 1 and type(req.denoising_strength) is int
    with pytest.raises(UserError, match="No image to work from"):
        img2img.build_request(None, "Just resize", 0.75, *COMMON)
    with pytest.raises(UserError, match="unknown resize mode 'Stretch'"):
        img2img.build_request(image, "Stretch", 0.75, *COMMON)


def test_mask_from_editor_reads_gradios_editor_value(tmp_path):
    background = noise_image(40, 24, seed=1)
    value = editor_value(
        tmp_path,
        background,
        [stroke_layer((40, 24), (4, 6, 12, 10)), stroke_layer((40, 24), (30, 0, 40, 3), colour=(0, 0, 0, 255))],
    )
    image, mask = inpaint.mask_from_editor(value)
    # the image is the upload without the strokes; the painted layers' alpha (any colour, even black) is the mask
    assert image.size == (40, 24)
    assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(background))
    assert mask.mode == "L" and mask.size == (40, 24)
    painted = np.zeros((24, 40), dtype=np.uint8)
    painted[6:10, 4:12] = 255
    painted[0:3, 30:40] = 255
    assert np.array_equal(np.asarray(mask), painted)

    # nothing painted: an all-black mask; nothing uploaded: no image
    image, mask = inpaint.mask_from_editor(editor_value(tmp_path, background, []))
    assert image is not None and mask.getextrema() == (0, 0)
    assert inpaint.mask_from_editor(None) == (None, None)
    assert inpaint.mask_from_editor({"background": None, "layers": [], "composite": None}) == (None, None)
    # a layer of another size (canvas resized) is stretched onto the image; numpy values are accepted
    small = np.zeros((12, 20, 4), dtype=np.uint8)
    small[:6, :10, 3] = 255
    _, mask = inpaint.mask_from_editor({"background": np.asarray(background), "layers": [small], "composite": None})
    assert mask.size == (40, 24) and mask.getbbox() == (0, 0, 20, 12)


def test_inpaint_build_request_maps_widget_values(tmp_path):
    background = noise_image(64, 48, seed=2)
    value = editor_value(tmp_path, background, [stroke_layer((64, 48), (16, 8, 40, 24))])
    req = inpaint.build_request(
        value,
        None,
        None,
        "draw",
        "Crop and resize",
        8,
        "Inpaint masked",
        "latent noise",
        "Only masked",
        64,
        0.6,
        *COMMON,
    )
    assert isinstance(req, Img2ImgRequest) and req.mode == "img2img"
    assert req.init_images[0].size == (64, 48) and req.mask.getbbox() == (16, 8, 40, 24)
    assert (req.resize_mode, req.mask_blur_x, req.mask_blur_y, req.inpainting_mask_invert) == (1, 8, 8, 0)
    assert (req.inpainting_fill, req.inpaint_full_res, req.inpaint_full_res_padding) == (2, True, 64)
    assert req.denoising_strength == 0.6 and (req.prompt, req.steps, req.seed) == ("a tiny test", 4, 1234)

    for index, label in enumerate(MASKED_CONTENT):
        req = inpaint.build_request(
            value, None, None, "draw", "Just resize", 4, "Inpaint not masked", label, "Whole picture", 32, 0.75, *COMMON
        )
        assert (req.inpainting_fill, req.inpainting_mask_invert, req.inpaint_full_res) == (index, 1, False)

    # the Upload mask sub-tab: its image and mask, whatever the editor holds
    base, upload_mask = noise_image(32, 32, seed=3), Image.new("L", (32, 32), 0)
    upload_mask.paste(255, (0, 0, 8, 8))
    req = inpaint.build_request(
        value,
        base,
        upload_mask,
        "upload",
        "Just resize",
        4,
        "Inpaint masked",
        "original",
        "Whole picture",
        32,
        0.75,
        *COMMON,
    )
    assert req.init_images == [base] and req.mask is upload_mask and req.inpainting_fill == 1

    # the user's mistakes, said before anything is queued
    empty = editor_value(tmp_path, background, [])
    with pytest.raises(UserError, match="The mask marks nothing to change.* If you did paint, paint once more"):
        inpaint.build_request(
            empty,
            None,
            None,
            "draw",
            "Just resize",
            4,
            "Inpaint masked",
            "original",
            "Whole picture",
            32,
            0.75,
            *COMMON,
        )
    # ... but "Inpaint not masked" with nothing painted repaints everything
    req = inpaint.build_request(
        empty,
        None,
        None,
        "draw",
        "Just resize",
        4,
        "Inpaint not masked",
        "original",
        "Whole picture",
        32,
        0.75,
        *COMMON,
    )
    assert req.inpainting_mask_invert == 1
    with pytest.raises(UserError, match='switch the mask mode to "Inpaint masked".$'):  # an uploaded mask
        inpaint.build_request(
            None,
            base,
            Image.new("L", (32, 32), 255),
            "upload",
            "Just resize",
            4,
            "Inpaint not masked",
            "original",
            "Whole picture",
            32,
            0.75,
            *COMMON,
        )
    with pytest.raises(UserError, match="No mask"):
        inpaint.build_request(
            None,
            base,
            None,
            "upload",
            "Just resize",
            4,
            "Inpaint masked",
            "original",
            "Whole picture",
            32,
            0.75,
            *COMMON,
        )
    with pytest.raises(UserError, match="No image to inpaint.*Inpaint editor"):
        inpaint.build_request(
            None, None, None, "draw", "Just resize", 4, "Inpaint masked", "original", "Whole picture", 32, 0.75, *COMMON
        )


def test_outpaint_build_request_places_the_image_on_the_grown_canvas():
    image = noise_image(40, 24, seed=4)
    # grow left and down by 16; blur 4 -> the mask reaches 8 px into the original on those sides
    req = outpaint.build_request(image, True, False, False, True, 16, 4, "fill", 0.8, *COMMON)
    assert isinstance(req, Img2ImgRequest) and req.mode == "img2img"
    assert (req.width, req.height) == (56, 40)  # the canvas, not the 64x64 of the size sliders
    canvas, mask = req.init_images[0], req.mask
    assert canvas.size == (56, 40) and mask.size == (56, 40)
    assert np.array_equal(np.asarray(canvas)[0:24, 16:56], np.asarray(image))  # the original at (16, 0)
    m = np.asarray(mask)
    assert (m[:, :16] == 255).all() and (m[24:, :] == 255).all()  # the new area
    assert (m[:16, 16:24] == 255).all() and (m[16:24, 16:] == 255).all()  # the overlap into the original
    assert (m[:16, 24:] == 0).all()  # the rest of the original is kept
    assert (req.inpainting_fill, req.inpaint_full_res, req.inpainting_mask_invert, req.resize_mode) == (0, False, 0, 0)
    assert (req.mask_blur_x, req.mask_blur_y, req.denoising_strength) == (4, 4, 0.8)

    # "original": the new area starts as the stretched edge; the size follows the pixels slider
    req = outpaint.build_request(image, False, True, True, False, 8, 0, "original", 0.8, *COMMON)
    canvas = np.asarray(req.init_images[0])
    assert (req.width, req.height, req.inpainting_fill) == (48, 32, 1)
    assert np.array_equal(canvas[0, 0:40], np.asarray(image)[0])  # stretched upward
    assert np.array_equal(canvas[8:32, 44], np.asarray(image)[:, 39])  # stretched to the right
    assert np.asarray(req.mask)[8:, :40].max() == 0  # blur 0: no overlap

    # an image whose sides are not multiples of 8: the canvas grows by the few extra pixels (right and down here),
    # never stretched, so the original stays exact
    odd = noise_image(30, 21)
    assert outpaint.canvas_size(odd, False, True, False, False, 16) == (48, 24)
    req = outpaint.build_request(odd, False, True, False, False, 16, 4, "fill", 0.8, *COMMON)
    assert (req.width, req.height) == (48, 24) and req.init_images[0].size == (48, 24)
    assert np.array_equal(np.asarray(req.init_images[0])[:21, :30], np.asarray(odd.convert("RGB")))
    assert (np.asarray(req.mask)[21:, :] == 255).all()
    assert "Result size: 48x24" in outpaint.size_note(odd, False, True, False, False, 16)

    with pytest.raises(UserError, match="No side to grow"):
        outpaint.build_request(image, False, False, False, False, 16, 4, "fill", 0.8, *COMMON)
    with pytest.raises(UserError, match="No image to outpaint"):
        outpaint.build_request(None, True, True, True, True, 16, 4, "fill", 0.8, *COMMON)
    with pytest.raises(UserError, match="multiple of 8"):
        outpaint.build_request(image, True, False, False, False, 12, 4, "fill", 0.8, *COMMON)


def test_size_from_image_button_snaps_to_the_sliders(ctx):
    assert generation.size_of_image(Image.new("RGB", (300, 199))) == (304, 200)
    assert generation.size_of_image(Image.new("RGB", (10, 5000))) == (64, 2048)
    assert generation.size_of_image(None) is None
    demo = create_ui(ctx)
    size_of = handler(demo, "img2img_detect_image_size_btn", "click").fn
    assert size_of("img2img", Image.new("RGB", (300, 199)), None) == (304, 200)
    assert size_of("img2img", None, None) == (gr.skip(), gr.skip())
    sketched = {"background": Image.new("RGB", (96, 64)), "layers": [], "composite": Image.new("RGB", (96, 64))}
    assert size_of("sketch", Image.new("RGB", (300, 199)), sketched) == (96, 64)
    # inpaint: the image of the sub-tab in use
    fn = handler(demo, "inpaint_detect_image_size_btn", "click")
    editor = {"background": Image.new("RGB", (128, 96)), "layers": [], "composite": None}
    assert fn.fn(editor, Image.new("RGB", (256, 64)), None, "draw", None) == (128, 96)
    assert fn.fn(editor, Image.new("RGB", (256, 64)), None, "upload", None) == (256, 64)
    assert fn.fn(editor, None, None, "sketch", sketched) == (96, 64)
    # picking a sub-tab switches the source
    assert handler(demo, "inpaint_upload_tab", "select").fn() == "upload"
    assert handler(demo, "inpaint_draw_tab", "select").fn() == "draw"
    assert handler(demo, "inpaint_sketch_tab", "select").fn() == "sketch"
    assert handler(demo, "inpaint_batch_tab", "select").fn() == "batch"
    assert handler(demo, "img2img_img2img_sketch_tab", "select").fn() == "sketch"
    assert handler(demo, "img2img_batch_tab", "select").fn() == "batch"


def test_paste_fills_the_image_tabs_widgets(ctx):
    demo = create_ui(ctx)
    text = (
        "a fox\nNegative prompt: blurry\nSteps: 33, Sampler: Euler a, CFG scale: 6.5, Seed: 99, Size: 512x768, "
        "Denoising strength: 0.45, Mask blur: 8, Mask mode: Inpaint not masked, Masked content: latent noise, "
        "Inpaint area: Only masked, Masked area padding: 64"
    )
    fn = handler(demo, "inpaint_paste", "click")
    out = outputs_by_id(fn, fn.fn(text, ""))
    assert (out["inpaint_prompt"], out["inpaint_steps"], out["inpaint_seed"]) == ("a fox", 33, 99)
    assert (out["inpaint_width"], out["inpaint_height"], out["inpaint_denoising_strength"]) == (512, 768, 0.45)
    assert (out["inpaint_mask_blur"], out["inpaint_mask_mode"], out["inpaint_inpainting_fill"]) == (
        8,
        "Inpaint not masked",
        "latent noise",
    )
    assert (out["inpaint_inpaint_full_res"], out["inpaint_inpaint_full_res_padding"]) == ("Only masked", 64)

    fn = handler(demo, "img2img_paste", "click")
    out = outputs_by_id(fn, fn.fn(text, ""))
    assert (out["img2img_denoising_strength"], out["img2img_sampling"]) == (0.45, "Euler a")
    # outpaint: the size is the canvas's, so a pasted Size is not applied
    fn = handler(demo, "outpaint_paste", "click")
    out = outputs_by_id(fn, fn.fn(text, ""))
    assert "outpaint_width" not in out and out["outpaint_inpainting_fill"] == "latent noise"
    out = outputs_by_id(fn, fn.fn("just words", ""))
    assert out["outpaint_prompt"] == gr.skip() and "No generation parameters" in out["html_info_outpaint"]


def test_a_mistake_is_shown_as_text_and_in_the_log_and_nothing_is_queued(ctx, caplog):
    demo = create_ui(ctx)
    caplog.set_level("WARNING", logger="sdui.ui.generation")
    for tab, own in (
        ("img2img", [*NO_SUB_TAB_INPUTS, None, "Just resize", 0.75]),
        ("outpaint", [None, True, True, True, True, 128, 4, "fill", 0.8]),
    ):
        fn = handler(demo, f"{tab}_generate", "click")
        updates = list(call(fn, *own, *COMMON))
        assert len(updates) == 1
        out = outputs_by_id(fn, updates[0])
        assert 'class="error"' in out[f"html_info_{tab}"] and "No image to" in out[f"html_info_{tab}"]
        assert out[f"{tab}_gallery"] == gr.skip()
        assert caplog.records[-1].getMessage().startswith(f"{tab} refused: No image to")
    assert ctx.jobs.last is None and ctx.jobs.pending() == []


# ---------------------------------------------------------------------------------------------------------------
# End to end: the Generate handlers on a tiny checkpoint, through the job queue and the processing core
# ---------------------------------------------------------------------------------------------------------------
def final_outputs(demo, tab: str, values: list) -> dict:
    fn = handler(demo, f"{tab}_generate", "click")
    updates = list(call(fn, *values))
    return outputs_by_id(fn, updates[-1])


@pytest.mark.slow
def test_img2img_tab_generates_on_a_tiny_checkpoint(tiny_ctx):
    demo = create_ui(tiny_ctx)
    out = final_outputs(
        demo, "img2img", [*NO_SUB_TAB_INPUTS, noise_image(64, 64, seed=5, mode="RGBA"), "Just resize", 0.5, *COMMON]
    )
    assert out["html_info_img2img"].startswith('<div class="note">Time taken')
    images = out["img2img_gallery"]
    assert len(images) == 1 and images[0].size == (64, 64)
    info = out["generation_info_img2img"]
    assert info == images[0].info["parameters"]
    assert info.startswith(
        "a tiny test\nNegative prompt: noise\nSteps: 4, Sampler: Euler, Schedule type: Automatic, "
        "CFG scale: 7, Seed: 1234, Size: 64x64"
    )
    assert "Denoising strength: 0.5" in info
    assert list((tiny_ctx.paths.outputs_dir / "img2img-images").rglob("*-1234.png"))

    # a mistake the core finds comes back as its message
    bad = COMMON[:5] + [100] + COMMON[6:]
    out = final_outputs(demo, "img2img", [*NO_SUB_TAB_INPUTS, noise_image(64, 64), "Just resize", 0.5, *bad])
    assert "width" in out["html_info_img2img"] and "100" in out["html_info_img2img"]


@pytest.mark.slow
def test_inpaint_tab_repaints_only_the_masked_area(tiny_ctx, tmp_path):
    original = noise_image(64, 64, seed=6)
    value = editor_value(tmp_path, original, [stroke_layer((64, 64), (24, 24, 40, 40))])
    demo = create_ui(tiny_ctx)
    out = final_outputs(
        demo,
        "inpaint",
        [*NO_SUB_TAB_INPUTS[1:], value, None, None, "draw", "Just resize", 4, "Inpaint masked", "fill"]
        + ["Whole picture", 32, 1.0, *COMMON],
    )
    assert 'class="error"' not in out["html_info_inpaint"]
    result = out["inpaint_gallery"][0]
    assert result.size == (64, 64)
    info = out["generation_info_inpaint"]
    assert "Denoising strength: 1" in info and "Mask blur: 4" in info and "Masked content: fill" in info
    got, want = np.asarray(result.convert("RGB")).astype(int), np.asarray(original).astype(int)
    # away from the mask (and its blur) the original's pixels, exactly; inside it, new ones
    far = np.ones((64, 64), dtype=bool)
    far[10:54, 10:54] = False
    assert np.array_equal(got[far], want[far])
    assert np.abs(got[28:36, 28:36] - want[28:36, 28:36]).mean() > 10


@pytest.mark.slow
def test_outpaint_tab_keeps_the_original_and_grows_the_canvas(tiny_ctx):
    original = noise_image(48, 48, seed=7)
    demo = create_ui(tiny_ctx)
    out = final_outputs(demo, "outpaint", [original, False, True, False, False, 16, 4, "fill", 0.8, *COMMON])
    assert 'class="error"' not in out["html_info_outpaint"]
    result = out["outpaint_gallery"][0]
    assert result.size == (64, 48)
    info = out["generation_info_outpaint"]
    assert "Size: 64x48" in info and "Denoising strength: 0.8" in info
    got = np.asarray(result.convert("RGB")).astype(int)
    # the mask starts 8 px into the original (twice the blur), and the blur reaches 10 px further in
    assert np.array_equal(got[:, :28], np.asarray(original)[:, :28].astype(int))


# ---------------------------------------------------------------------------------------------------------------
# Sketch and Batch sub-tabs
# ---------------------------------------------------------------------------------------------------------------
def test_sketches_paint_their_strokes_into_the_init_image(tmp_path, ctx):
    original = noise_image(64, 64, seed=8)
    value = editor_value(tmp_path, original, [stroke_layer((64, 64), (8, 8, 24, 24))])
    req = img2img.build_from_tabs(ctx, "sketch", value, "", "", "", False, [], None, "Just resize", 0.75, *COMMON)
    init = np.asarray(req.init_images[0])
    assert (init[10:20, 10:20] == (255, 48, 48)).all() and np.array_equal(init[40:], np.asarray(original)[40:])
    with pytest.raises(UserError, match="No sketch"):
        img2img.build_from_tabs(ctx, "sketch", None, "", "", "", False, [], None, "Just resize", 0.75, *COMMON)
    # inpaint sketch: the strokes are in the init image and they are the mask
    req = inpaint.build_from_tabs(
        ctx,
        value,
        "",
        "",
        "",
        False,
        [],
        None,
        None,
        None,
        "sketch",
        "Just resize",
        4,
        "Inpaint masked",
        "original",
        "Whole picture",
        32,
        0.75,
        *COMMON,
    )
    mask = np.asarray(req.mask)
    assert (np.asarray(req.init_images[0])[10:20, 10:20] == (255, 48, 48)).all()
    assert (mask[8:24, 8:24] == 255).all() and mask[30:].max() == 0


def _folder(path, count: int, size=(64, 64)):
    path.mkdir(parents=True)
    for n in range(count):
        noise_image(*size, seed=20 + n).save(path / f"in{n}.png")
    return path


def test_batch_reads_the_folders_and_refuses_what_it_cannot_do(tmp_path, ctx):
    inputs = _folder(tmp_path / "in", 2)
    req, runner = img2img.build_from_tabs(
        ctx, "batch", None, str(inputs), str(tmp_path / "out"), "", True, ["Seed"], None, "Just resize", 0.6, *COMMON
    )
    args = runner.keywords["args"]
    assert [item.name for item in args.items] == ["in0.png", "in1.png"] and args.png_info_fields == ("Seed",)
    assert args.output_dir == (tmp_path / "out").resolve() and req.denoising_strength == 0.6
    masks = _folder(tmp_path / "masks", 1)
    _, runner = img2img.build_from_tabs(
        ctx, "batch", None, str(inputs), "", str(masks), False, ["Seed"], None, "Just resize", 0.6, *COMMON
    )
    assert [item.mask is not None for item in runner.keywords["args"].items] == [True, True]  # one mask for all
    (tmp_path / "two_masks").mkdir()
    noise_image(8, 8).save(tmp_path / "two_masks" / "in0.png")
    noise_image(8, 8).save(tmp_path / "two_masks" / "other.png")
    with pytest.raises(UserError, match="No mask of the same name in the mask folder for: in1.png"):
        img2img.build_from_tabs(
            ctx,
            "batch",
            None,
            str(inputs),
            "",
            str(tmp_path / "two_masks"),
            False,
            [],
            None,
            "Just resize",
            0.6,
            *COMMON,
        )
    with pytest.raises(UserError, match="Inpaint batch: type the folder of masks"):
        inpaint.build_from_tabs(ctx, None, str(inputs), "", "", False, [], None, None, None, "batch", *COMMON)


@pytest.mark.slow
def test_batch_tab_generates_into_the_output_folder(tiny_ctx, tmp_path):
    inputs = _folder(tmp_path / "in", 2)
    demo = create_ui(tiny_ctx)
    batch = ["batch", None, str(inputs), str(tmp_path / "out"), "", False, []]
    out = final_outputs(demo, "img2img", [*batch, None, "Just resize", 0.5, *COMMON])
    assert out["html_info_img2img"].startswith('<div class="note">Time taken'), out["html_info_img2img"]
    assert len(out["img2img_gallery"]) == 2
    assert sorted(p.name.split("-", 1)[1] for p in (tmp_path / "out").iterdir()) == ["in0.png", "in1.png"]
