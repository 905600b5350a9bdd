"""The depth2img tab: the page carries its element ids, build_request hands the image and the optional depth map to
an Img2ImgRequest, and its Generate handler runs a tiny SD2 depth checkpoint (with its own tiny MiDaS) through the
job queue and the processing core, showing the picture and the depth map used — or says why it cannot."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
from PIL import Image

from sdui.core.processed import Processed
from sdui.errors import UserError
from sdui.request import RESIZE_MODES, GenerationRequest, Img2ImgRequest
from sdui.settings.snapshot import Settings
from sdui.ui import common
from sdui.ui.app import create_ui
from sdui.ui.tabs import depth2img
from tests.helpers import call, components_by_id, handler, make_ctx, outputs_by_id

# prompt, negative, sampler, schedule, steps, width, height, batch count, batch size, CFG, seed, variation seed,
# variation strength, seed resize from w/h
COMMON = ["a tiny test", "noise", "Euler", "Automatic", 2, 64, 64, 1, 1, 7, 4321, -1, 0, 0, 0]


@pytest.fixture(scope="module")
def tiny_ctx(tmp_path_factory):
    """An app context with a tiny SD2 depth checkpoint (MiDaS included) and a tiny ordinary SD2 one."""
    from tests.fixtures.checkpoints import build_tiny_checkpoint

    c = make_ctx(tmp_path_factory.mktemp("data"))
    build_tiny_checkpoint(c.paths.sd_models_dir / "depth.safetensors", arch="sd2", variant="depth")
    build_tiny_checkpoint(c.paths.sd_models_dir / "plain.safetensors", arch="sd2")
    c.store.refresh()
    yield c
    c.jobs.shutdown()


def use(ctx, title: str):
    assert common.select_checkpoint(ctx, title) == ""
    return ctx


def picture(seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def gradient_depth() -> Image.Image:
    """Nearer (brighter) towards the bottom right."""
    y, x = np.mgrid[0:64, 0:64]
    return Image.fromarray(((x + y) * 2).astype(np.uint8), "L")


def generate(demo, values: list) -> tuple[list, dict]:
    fn = handler(demo, "depth2img_generate", "click")
    updates = list(call(fn, *values))
    return updates, outputs_by_id(fn, updates[-1])


# ---------------------------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------------------------
def test_tab_builds_after_outpaint_with_its_ids_and_defaults(ctx):
    demo = create_ui(ctx)
    blocks = components_by_id(demo)
    tab_ids = [b.elem_id for b in blocks["tabs"].children]
    assert tab_ids.index("tab_depth2img") == tab_ids.index("tab_outpaint") + 1
    assert blocks["tab_depth2img"].id == "depth2img"

    for elem_id in (
        "depth2img_prompt",
        "depth2img_neg_prompt",
        "depth2img_generate",
        "depth2img_paste",
        "depth2img_gallery",
        "generation_info_depth2img",
        "html_info_depth2img",
        "depth2img_sampling",
        "depth2img_scheduler",
        "depth2img_steps",
        "depth2img_width",
        "depth2img_height",
        "depth2img_cfg_scale",
        "depth2img_seed",
        "depth2img_detect_image_size_btn",
    ):
        assert elem_id in blocks, elem_id
    image, depth = blocks["depth2img_image"], blocks["depth2img_depth_map"]
    assert isinstance(image, gr.Image) and image.type == "pil" and image.image_mode == "RGBA"
    assert isinstance(depth, gr.Image) and depth.type == "pil" and depth.image_mode == "L"
    assert [c[0] for c in blocks["depth2img_resize_mode"].choices] == list(RESIZE_MODES)
    s = blocks["depth2img_denoising_strength"]
    assert (s.minimum, s.maximum, s.step, s.value) == (0, 1, 0.01, 0.75)
    assert blocks["depth2img_gallery"].format == "png"

    fn = handler(demo, "depth2img_generate", "click")
    got = [b.elem_id for b in fn.inputs]
    assert got[:4] == [
        "depth2img_image",
        "depth2img_depth_map",
        "depth2img_resize_mode",
        "depth2img_denoising_strength",
    ]
    assert got[4:] == [
        f"depth2img_{name}"
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
            "styles",  # last: the style picker
        )
    ]

    # ↙️ fills the denoising strength too; 📐 takes the size from the image
    paste = handler(demo, "depth2img_paste", "click")
    out = outputs_by_id(
        paste, paste.fn("a room\nSteps: 9, Sampler: Euler, Seed: 2, Size: 256x192, Denoising strength: 0.35", "")
    )
    assert (out["depth2img_denoising_strength"], out["depth2img_steps"], out["depth2img_width"]) == (0.35, 9, 256)
    size = handler(demo, "depth2img_detect_image_size_btn", "click")
    assert size.fn(Image.new("RGB", (300, 200))) == (304, 200)


def test_a_missing_image_is_said_before_anything_is_queued(ctx):
    demo = create_ui(ctx)
    updates, out = generate(demo, [None, gradient_depth(), "Just resize", 0.75, *COMMON])
    assert len(updates) == 1 and out["depth2img_gallery"] == gr.skip()
    assert 'class="error"' in out["html_info_depth2img"] and "depth2img image box" in out["html_info_depth2img"]
    assert ctx.jobs.last is None and ctx.jobs.pending() == []


# ---------------------------------------------------------------------------------------------------------------
# Widget values -> request; results -> what the gallery shows
# ---------------------------------------------------------------------------------------------------------------
def test_build_request_passes_the_image_and_the_depth_map():
    image, depth = picture(), gradient_depth()
    for index, label in enumerate(RESIZE_MODES):
        req = depth2img.build_request(
            image, depth, label, 0.6, "a room", "blur", "Euler a", "Karras", 30, 768, 512, 2, 3, 6.5, 42, 7, 0.2, 0, 0
        )
        assert isinstance(req, Img2ImgRequest) and req.mode == "img2img"  # outputs/img2img-images, as A1111
        assert req.init_images == [image] and req.depth_map is depth and req.mask is None
        assert req.resize_mode == index and req.denoising_strength == 0.6
        assert (req.prompt, req.negative_prompt, req.sampler_name, req.scheduler) == (
            "a room",
            "blur",
            "Euler a",
            "Karras",
        )
        assert (req.steps, req.width, req.height, req.n_iter, req.batch_size, req.cfg_scale) == (
            30,
            768,
            512,
            2,
            3,
            6.5,
        )
        assert (req.seed, req.subseed, req.subseed_strength) == (42, 7, 0.2)
    # no depth map: the checkpoint estimates it
    req = depth2img.build_request(image, None, None, None, *COMMON)
    assert req.depth_map is None and req.resize_mode == 0 and req.denoising_strength == 0.75
    with pytest.raises(UserError, match="No image to work from.*depth2img"):
        depth2img.build_request(None, depth, "Just resize", 0.75, *COMMON)
    with pytest.raises(UserError, match="unknown resize mode"):
        depth2img.build_request(image, None, "Stretch", 0.75, *COMMON)


def test_depth_maps_are_shown_after_the_pictures_at_their_size():
    pictures = [Image.new("RGB", (96, 64), (i * 40, 0, 0)) for i in range(3)]  # a grid first, then two images
    small = Image.fromarray(np.tile(np.arange(12, dtype=np.uint8) * 20, (8, 1)), "L")  # 12x8: latent size
    processed = Processed(
        images=pictures,
        request=GenerationRequest(),
        settings=Settings.defaults(),
        all_prompts=["a"] * 2,
        all_negative_prompts=[""] * 2,
        all_seeds=[5, 6],
        all_subseeds=[5, 6],
        infotexts=["grid", "first", "second"],
        index_of_first_image=1,
        depth_maps=[small],
    )
    shown = depth2img.with_depth_maps(processed)
    assert shown.images[:3] == pictures and len(shown.images) == 4
    depth = shown.images[3]
    assert depth.mode == "L" and depth.size == (96, 64)
    row = np.asarray(depth)[32]
    assert row[0] < 30 and row[-1] > 200 and np.all(np.diff(row.astype(int)) >= -2)  # the gradient, enlarged
    assert shown.infotexts == ["grid", "first", "second", "second"]
    assert processed.images == pictures  # the original is left as it was
    # nothing to add: the same object back
    plain = Processed(
        images=pictures[:1],
        request=GenerationRequest(),
        settings=Settings.defaults(),
        all_prompts=[],
        all_negative_prompts=[],
        all_seeds=[1],
        all_subseeds=[1],
        infotexts=["x"],
    )
    assert depth2img.with_depth_maps(plain) is plain


# ---------------------------------------------------------------------------------------------------------------
# End to end on tiny checkpoints
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_depth2img_tab_generates_and_shows_the_estimated_depth_map(tiny_ctx):
    demo = create_ui(use(tiny_ctx, "depth.safetensors"))
    updates, out = generate(demo, [picture(1), None, "Just resize", 0.6, *COMMON])
    assert out["html_info_depth2img"].startswith('<div class="note">Time taken'), out["html_info_depth2img"]
    result, depth = out["depth2img_gallery"]
    assert result.mode == "RGB" and result.size == (64, 64)
    assert depth.mode == "L" and depth.size == (64, 64)  # MiDaS's map, from latent size up to the picture's
    assert depth.getextrema() == (0, 255)  # normalised to the full range, as the core uses it
    info = out["generation_info_depth2img"]
    assert info == result.info["parameters"]
    assert info.startswith(
        "a tiny test\nNegative prompt: noise\nSteps: 2, Sampler: Euler, Schedule type: Automatic, "
        "CFG scale: 7, Seed: 4321, Size: 64x64"
    )
    assert "Denoising strength: 0.6" in info
    outputs = handler(demo, "depth2img_generate", "click").outputs
    states = [v for b, v in zip(outputs, updates[-1], strict=True) if isinstance(b, gr.State)]
    assert states[0] == [info, info] and states[1] == [4321, 4321]  # picking the map shows its picture's info
    assert list((tiny_ctx.paths.outputs_dir / "img2img-images").rglob("*-4321.png"))


@pytest.mark.slow
def test_an_uploaded_depth_map_is_the_one_used_and_shown(tiny_ctx):
    demo = create_ui(use(tiny_ctx, "depth.safetensors"))
    _, estimated = generate(demo, [picture(2), None, "Just resize", 0.6, *COMMON])
    _, uploaded = generate(demo, [picture(2), gradient_depth(), "Just resize", 0.6, *COMMON])
    assert 'class="error"' not in uploaded["html_info_depth2img"]
    result, depth = uploaded["depth2img_gallery"]
    shown = np.asarray(depth, dtype=float)
    given = np.asarray(gradient_depth(), dtype=float)
    assert np.corrcoef(shown.ravel(), given.ravel())[0, 1] > 0.98  # the upload, through latent size
    assert shown[:8, :8].mean() < 40 and shown[-8:, -8:].mean() > 215
    # another depth, another picture from the same seed and image
    assert not np.array_equal(np.asarray(estimated["depth2img_gallery"][1]), np.asarray(depth))
    assert not np.array_equal(np.asarray(estimated["depth2img_gallery"][0]), np.asarray(result))


@pytest.mark.slow
def test_a_checkpoint_without_depth_shows_what_to_do(tiny_ctx):
    demo = create_ui(use(tiny_ctx, "plain.safetensors"))
    for depth in (None, gradient_depth()):
        _, out = generate(demo, [picture(3), depth, "Just resize", 0.6, *COMMON])
        message = out["html_info_depth2img"]
        assert 'class="error"' in message
        assert "depth2img needs an SD2 depth checkpoint" in message and "plain.safetensors" in message
        assert "img2img tab" in message
        assert out["depth2img_gallery"] == []
    use(tiny_ctx, "depth.safetensors")
