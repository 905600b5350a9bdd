"""The Gradio UI: the page builds with a real app context, carries the element ids A1111 extensions hook, and its
thin wiring (widget values -> request, job -> gallery/infotext/error, ↙️ paste, ♻️ seed) does the right thing.
Event handlers are called the way Gradio calls them (through the Blocks' registered functions), without a browser."""

from __future__ import annotations

import html

import gradio as gr
import pytest
import torch
from PIL import Image, PngImagePlugin

from sdui.core.processed import Processed
from sdui.errors import UserError
from sdui.request import GenerationRequest
from sdui.settings.snapshot import Settings
from sdui.ui import common, runner
from sdui.ui.app import create_ui
from sdui.ui.tabs import txt2img
from sdui.ui.tabs.pnginfo import png_info
from tests.helpers import call, components_by_id, handler, outputs_by_id

A1111_TXT2IMG_IDS = {
    "txt2img_prompt",
    "txt2img_neg_prompt",
    "txt2img_width",
    "txt2img_height",
    "txt2img_steps",
    "txt2img_batch_count",
    "txt2img_batch_size",
    "txt2img_cfg_scale",
    "txt2img_generate",
    "txt2img_gallery",
    "tabs",
}

# the hires fix widgets at their defaults (off), as txt2img.build_request takes them before the common ones
HIRES_OFF = [False, "Latent", 0, 0.7, 2, 0, 0, "Use same sampler", "Use same scheduler", "", ""]
HIRES_IDS = [
    "txt2img_enable_hr",
    "txt2img_hr_upscaler",
    "txt2img_hires_steps",
    "txt2img_denoising_strength",
    "txt2img_hr_scale",
    "txt2img_hr_resize_x",
    "txt2img_hr_resize_y",
    "hr_sampler",
    "hr_scheduler",
    "hires_prompt",
    "hires_neg_prompt",
]

ALL_SAMPLERS = [
    "DPM++ 2M",
    "DPM++ SDE",
    "DPM++ 2M SDE",
    "DPM++ 2M SDE Heun",
    "DPM++ 2S a",
    "DPM++ 3M SDE",
    "Euler a",
    "Euler",
    "LMS",
    "Heun",
    "DPM2",
    "DPM2 a",
    "DPM fast",
    "DPM adaptive",
    "Restart",
    "DDIM",
    "DDIM CFG++",
    "PLMS",
    "UniPC",
    "LCM",
]


# ---------------------------------------------------------------------------------------------------------------
def test_page_builds_with_a1111_ids_and_widget_ranges(ctx):
    demo = create_ui(ctx)
    config_ids = {c["props"].get("elem_id") for c in demo.config["components"]}
    assert A1111_TXT2IMG_IDS <= config_ids
    blocks = components_by_id(demo)

    sampler = blocks["txt2img_sampling"]
    assert [c[0] for c in sampler.choices] == ALL_SAMPLERS
    assert sampler.value == "DPM++ 2M"
    scheduler = blocks["txt2img_scheduler"]
    assert scheduler.value == "Automatic"
    assert "Karras" in [c[0] for c in scheduler.choices]

    expected = {
        "txt2img_steps": (1, 150, 1, 20),
        "txt2img_width": (64, 2048, 8, 512),
        "txt2img_height": (64, 2048, 8, 512),
        "txt2img_batch_count": (1, 100, 1, 1),
        "txt2img_batch_size": (1, 8, 1, 1),
        "txt2img_cfg_scale": (1, 30, 0.5, 7),
    }
    for elem_id, (lo, hi, step, value) in expected.items():
        s = blocks[elem_id]
        assert (s.minimum, s.maximum, s.step, s.value) == (lo, hi, step, value), elem_id
    assert blocks["txt2img_seed"].value == -1
    assert blocks["txt2img_generate"].variant == "primary"
    assert blocks["txt2img_gallery"].format == "png"  # keeps the parameters chunk in what the browser downloads

    # no checkpoint yet: the picker is empty and the hint names the folder to drop checkpoints into
    assert blocks["setting_sd_model_checkpoint"].choices == []
    assert str(ctx.paths.sd_models_dir) in blocks["checkpoint_message"].value


def test_build_request_maps_widget_values():
    req = txt2img.build_request(
        *HIRES_OFF, "a cat", "blurry", "Euler a", "Karras", 30.0, 768, 640, 3, 2, 7.5, -1, 1234, 0.25, 0, 0
    )
    assert isinstance(req, GenerationRequest)
    assert (req.prompt, req.negative_prompt, req.sampler_name, req.scheduler) == (
        "a cat",
        "blurry",
        "Euler a",
        "Karras",
    )
    assert (req.steps, req.width, req.height, req.n_iter, req.batch_size) == (30, 768, 640, 3, 2)
    assert req.cfg_scale == 7.5 and req.seed == -1 and req.subseed == 1234 and req.subseed_strength == 0.25
    assert (req.seed_resize_from_w, req.seed_resize_from_h) == (-1, -1)  # 0 in the UI = off
    assert req.mode == "txt2img" and req.enable_hr is False
    assert type(req.steps) is int and type(req.width) is int

    # whole CFG values arrive as int, as from A1111's UI (the infotext then says "CFG scale: 7");
    # an empty seed box is -1
    req = txt2img.build_request(
        *HIRES_OFF,
        "",
        None,
        "DPM++ 2M",
        "Automatic",
        20,
        512,
        512,
        1,
        1,
        7.0,
        None,
        seed_resize_from_w=256,
        seed_resize_from_h=384,
    )
    assert req.cfg_scale == 7 and type(req.cfg_scale) is int
    assert req.seed == -1 and req.negative_prompt == ""
    assert (req.seed_resize_from_w, req.seed_resize_from_h) == (256, 384)


def test_generate_handler_inputs_follow_build_request_order(ctx):
    demo = create_ui(ctx)
    fn = handler(demo, "txt2img_generate", "click")
    ids = [b.elem_id for b in fn.inputs]
    assert ids[ids.index("txt2img_script") :][:1] == ["txt2img_script"]  # then the Script controls
    assert ids[: ids.index("txt2img_script")] == [
        *HIRES_IDS,
        "txt2img_prompt",
        "txt2img_neg_prompt",
        "txt2img_sampling",
        "txt2img_scheduler",
        "txt2img_steps",
        "txt2img_width",
        "txt2img_height",
        "txt2img_batch_count",
        "txt2img_batch_size",
        "txt2img_cfg_scale",
        "txt2img_seed",
        "txt2img_subseed",
        "txt2img_subseed_strength",
        "txt2img_seed_resize_from_w",
        "txt2img_seed_resize_from_h",
    ]


def test_runner_turns_user_errors_into_messages(ctx):
    # no checkpoint: the message says where to put one
    request = txt2img.build_request(*HIRES_OFF, "x", "", "Euler", "Automatic", 2, 64, 64, 1, 1, 7, 1)
    result = runner.run_generation(ctx, request)
    assert result.images == []
    assert str(ctx.paths.sd_models_dir) in result.error

    # a UserError raised inside the job (e.g. by validation) comes back as its message, not an exception
    def failing(ctx_, request, *, job):
        raise UserError(f"width must be a positive multiple of 8 (got {request.width})")

    request = txt2img.build_request(*HIRES_OFF, "x", "", "Euler", "Automatic", 2, 100, 64, 1, 1, 7, 1)
    result = runner.run_generation(ctx, request, generate=failing)
    assert result.error == "width must be a positive multiple of 8 (got 100)"
    assert "width must be" in runner.status_html(result)

    # a bug (not the user's fault) is reported too, with its type, and the UI keeps going
    def broken(ctx_, request, *, job):
        raise RuntimeError("boom")

    assert runner.run_generation(ctx, GenerationRequest(), generate=broken).error == "RuntimeError: boom"


def test_generate_handler_shows_images_infotext_and_seeds(ctx, monkeypatch):
    """The Generate click handler as Gradio runs it, on a stand-in generate function (the job queue is real)."""

    def fake_generate(ctx_, request, *, job):
        job.add_batches(1, request.steps)
        images, infotexts = [], []
        for i in range(request.batch_size):
            job.step_done(i + 1, request.steps)
            im = Image.new("RGB", (request.width, request.height), (i * 80, 0, 0))
            im.info["parameters"] = f"{request.prompt}\nSteps: {request.steps}, Seed: {100 + i}, Size: 8x8"
            images.append(im)
            infotexts.append(im.info["parameters"])
        return Processed(
            images=images,
            request=request,
            settings=Settings.defaults(),
            all_prompts=[request.prompt] * len(images),
            all_negative_prompts=[""] * len(images),
            all_seeds=[100 + i for i in range(len(images))],
            all_subseeds=[7] * len(images),
            infotexts=infotexts,
        )

    demo = create_ui(ctx)
    fn = handler(demo, "txt2img_generate", "click")
    values = [*HIRES_OFF, "a red square", "", "Euler", "Automatic", 3, 16, 16, 1, 2, 7, -1, -1, 0, 0, 0]
    monkeypatch.setattr(runner, "default_generate", lambda: fake_generate)
    updates = list(call(fn, *values))
    final = outputs_by_id(fn, updates[-1])
    assert len(final["txt2img_gallery"]) == 2
    assert final["txt2img_gallery"][1].getpixel((0, 0)) == (80, 0, 0)
    assert final["generation_info_txt2img"].startswith("a red square\nSteps: 3, Seed: 100")
    assert "Time taken" in final["html_info_txt2img"]

    # picking the second image shows its infotext; ♻️ then takes its seed (the first image's when none is picked)
    states = [v for b, v in zip(fn.outputs, updates[-1], strict=False) if isinstance(b, gr.State)]
    infotexts, seeds = states[0], states[1]
    assert seeds == [100, 101]
    select = handler(demo, "txt2img_gallery", "select")
    selected, info = select.fn(infotexts, gr.SelectData(None, {"index": 1, "value": None}))
    assert selected == 1 and "Seed: 101" in info
    reuse = handler(demo, "txt2img_reuse_seed", "click")
    assert reuse.fn(seeds, selected) == 101
    assert reuse.fn(seeds, None) == 100
    assert reuse.fn([], None) == -1
    assert handler(demo, "txt2img_random_seed", "click").fn() == -1


def test_paste_button_fills_widgets_from_an_infotext(ctx):
    demo = create_ui(ctx)
    fn = handler(demo, "txt2img_paste", "click")
    text = (
        "a fox in the snow\nNegative prompt: blurry\n"
        "Steps: 33, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 1234567890, Size: 512x768, "
        "Model hash: 6ce0161689, Variation seed: 42, Variation seed strength: 0.3"
    )
    out = outputs_by_id(fn, fn.fn(text, ""))
    assert out["txt2img_prompt"] == "a fox in the snow"
    assert out["txt2img_neg_prompt"] == "blurry"
    assert out["txt2img_steps"] == 33
    assert out["txt2img_sampling"] == "DPM++ 2M"  # old combined name split ...
    assert out["txt2img_scheduler"] == "Karras"  # ... into sampler + schedule type
    assert out["txt2img_cfg_scale"] == 6.5
    assert out["txt2img_seed"] == 1234567890
    assert (out["txt2img_width"], out["txt2img_height"]) == (512, 768)
    assert (out["txt2img_subseed"], out["txt2img_subseed_strength"]) == (42, 0.3)

    # plain prompt text (no parameters line) changes nothing and says why
    out = outputs_by_id(fn, fn.fn("just a prompt, with commas", ""))
    assert out["txt2img_prompt"] == gr.skip()
    assert "No generation parameters" in out["html_info_txt2img"]

    # an empty prompt box takes the parameters of the image shown
    out = outputs_by_id(fn, fn.fn("", "cat\nSteps: 5, Sampler: Euler, Seed: 9, Size: 64x64"))
    assert (out["txt2img_prompt"], out["txt2img_steps"], out["txt2img_seed"]) == ("cat", 5, 9)
    # made without variation seed / seed resize: pasting switches them off, so the image is reproduced
    assert (out["txt2img_subseed_strength"], out["txt2img_seed_resize_from_w"]) == (0, 0)
    assert out["txt2img_subseed"] == gr.skip() and out["txt2img_batch_size"] == gr.skip()
    # a sampler this UI does not list is reported, the rest still pasted
    out = outputs_by_id(fn, fn.fn("dog\nSteps: 7, Sampler: Fancy New Sampler, Seed: 3, Size: 64x64", ""))
    assert out["txt2img_sampling"] == gr.skip() and out["txt2img_steps"] == 7
    assert "Fancy New Sampler" in out["html_info_txt2img"]


def test_refresh_lists_a_dropped_checkpoint(ctx):
    from safetensors.torch import save_file

    demo = create_ui(ctx)
    fn = handler(demo, "refresh_sd_model_checkpoint", "click")
    (ctx.paths.sd_models_dir / "sub").mkdir()
    save_file({"x": torch.zeros(1)}, str(ctx.paths.sd_models_dir / "sub" / "m1.safetensors"))
    dropdown, message = fn.fn()
    assert [c[0] for c in dropdown.choices] == ["sub/m1.safetensors"]
    assert dropdown.value == "sub/m1.safetensors"
    assert message == ""


def test_choosing_a_broken_checkpoint_shows_the_error_and_keeps_the_option(ctx):
    (ctx.paths.sd_models_dir / "broken.safetensors").write_bytes(b"not a safetensors file")
    ctx.store.refresh()
    demo = create_ui(ctx)
    fn = handler(demo, "setting_sd_model_checkpoint", "input")
    dropdown, message = fn.fn("broken.safetensors")
    assert 'class="error"' in message and "broken.safetensors" in message
    assert ctx.options.get("sd_model_checkpoint") != "broken.safetensors"


def test_png_info_tab_reads_the_parameters_chunk_and_sends_it_to_txt2img(ctx, tmp_path):
    text = "a cat\nSteps: 20, Sampler: Euler, Seed: 1, Size: 64x64"
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    path = tmp_path / "a.png"
    Image.new("RGBA", (8, 8)).save(path, pnginfo=info)

    demo = create_ui(ctx)
    upload = components_by_id(demo)["pnginfo_image"]
    # what Gradio hands the handler for an uploaded RGBA PNG: the file itself, chunks intact
    from gradio.data_classes import ImageData

    handed = upload.preprocess(ImageData(path=str(path), orig_name="a.png"))
    assert png_info(handed) == (text, "")

    prompt, tabs, message = handler(demo, "pnginfo_send_txt2img", "click").fn(str(path), text)
    assert prompt == text and tabs.selected == "txt2img" and message == ""
    # img2img, inpaint and extras get the image as well, opened on the server from Gradio's upload
    image, prompt, tabs, _ = handler(demo, "pnginfo_send_img2img", "click").fn(str(path), text)
    assert image.size == (8, 8) and image.info["parameters"] == text and tabs.selected == "img2img"
    image, tabs, _ = handler(demo, "pnginfo_send_extras", "click").fn(str(path), text)
    assert image.size == (8, 8) and tabs.selected == "extras"
    assert handler(demo, "pnginfo_send_inpaint", "click").fn(str(path), text)[2].selected == "inpaint"
    plain = tmp_path / "b.png"
    Image.new("RGB", (8, 8)).save(plain)
    text_out, message = png_info(str(plain))
    assert text_out == "" and "no generation parameters" in message


@pytest.mark.slow
def test_generate_end_to_end_on_a_tiny_checkpoint(ctx):
    """The runner through the real job queue, app_context.generate and the processing core: one PNG-ready image
    whose parameters chunk describes the request, saved under outputs/txt2img-images."""
    from tests.fixtures.checkpoints import build_tiny_checkpoint

    build_tiny_checkpoint(ctx.paths.sd_models_dir / "tiny.safetensors", arch="sd1")
    ctx.store.refresh()
    assert common.select_checkpoint(ctx, "tiny.safetensors") == ""
    assert ctx.options.get("sd_model_checkpoint").startswith("tiny.safetensors")

    request = txt2img.build_request(*HIRES_OFF, "a tiny test", "noise", "Euler", "Automatic", 2, 64, 64, 1, 1, 7, 1234)
    result = runner.run_generation(ctx, request, poll=0.05)
    assert result.error == ""
    assert len(result.images) == 1 and result.images[0].size == (64, 64)
    params = result.images[0].info["parameters"]
    assert params == result.info
    assert params.startswith(
        "a tiny test\nNegative prompt: noise\nSteps: 2, Sampler: Euler, Schedule type: Automatic, "
        "CFG scale: 7, Seed: 1234, Size: 64x64"
    )
    assert result.seeds == [1234]
    # the file the browser gets (and downloads) from the gallery still carries the parameters chunk
    gallery = components_by_id(create_ui(ctx))["txt2img_gallery"]
    served = gallery.postprocess(result.images).root[0].image.path
    assert Image.open(served).info["parameters"] == params

    # the user's mistake inside the real pipeline: a readable message, no exception
    bad = txt2img.build_request(*HIRES_OFF, "x", "", "Euler", "Automatic", 2, 100, 64, 1, 1, 7, 1)
    error = runner.run_generation(ctx, bad, poll=0.05).error
    assert "width" in error and "100" in error


def test_sampler_note_warns_about_names_we_do_not_know(ctx):
    """Every sampler runs with every schedule type (as in A1111); a name from elsewhere (a pasted infotext of
    another tool) gets a note before Generate is pressed."""
    demo = create_ui(ctx)
    fn = handler(demo, "txt2img_sampling", "change")
    assert handler(demo, "txt2img_scheduler", "change") is fn
    assert not components_by_id(demo)["txt2img_sampler_note"].visible
    for ok in (("DPM++ 2M", "Automatic"), ("Euler", "Karras"), ("Euler a", "Karras"), ("DDIM", "Normal")):
        update = fn.fn(*ok)
        assert (update.value, update.visible) == ("", False)
    update = fn.fn("Euler turbo", "Karras")
    assert update.visible and "Unknown sampler 'Euler turbo'. Choose one of: DPM++ 2M," in html.unescape(update.value)


# ---------------------------------------------------------------------------------------------------------------
# Hires. fix
# ---------------------------------------------------------------------------------------------------------------
def inside(block, container) -> bool:
    parent = block.parent
    while parent is not None and parent is not container:
        parent = parent.parent
    return parent is container


def test_hires_fix_accordion_has_a1111_ids_ranges_and_choices(ctx):
    from sdui.upscalers.upscaling import LATENT_UPSCALE_MODES, upscaler_names

    demo = create_ui(ctx)
    blocks = components_by_id(demo)
    accordion = blocks["txt2img_hr"]
    assert isinstance(accordion, gr.Accordion) and accordion.open is False
    assert all(inside(blocks[elem_id], accordion) for elem_id in HIRES_IDS + ["txtimg_hr_finalres"])
    assert isinstance(blocks["txt2img_enable_hr"], gr.Checkbox) and blocks["txt2img_enable_hr"].value is False
    sliders = {
        "txt2img_hires_steps": (0, 150, 1, 0),
        "txt2img_denoising_strength": (0, 1, 0.01, 0.7),
        "txt2img_hr_scale": (1, 4, 0.05, 2),
        "txt2img_hr_resize_x": (0, 2048, 8, 0),
        "txt2img_hr_resize_y": (0, 2048, 8, 0),
    }
    for elem_id, (lo, hi, step, value) in sliders.items():
        s = blocks[elem_id]
        assert (s.minimum, s.maximum, s.step, s.value) == (lo, hi, step, value), elem_id

    upscalers = [c[0] for c in blocks["txt2img_hr_upscaler"].choices]
    assert upscalers == [*LATENT_UPSCALE_MODES, *upscaler_names()]
    assert upscalers[:2] == ["Latent", "Latent (antialiased)"] and {"None", "Lanczos", "Nearest"} <= set(upscalers)
    assert blocks["txt2img_hr_upscaler"].value == "Latent"
    assert [c[0] for c in blocks["hr_sampler"].choices] == ["Use same sampler", *ALL_SAMPLERS]
    assert blocks["hr_sampler"].value == "Use same sampler"
    schedules = [c[0] for c in blocks["hr_scheduler"].choices]
    assert schedules[:2] == ["Use same scheduler", "Automatic"] and "Karras" in schedules
    assert blocks["hr_scheduler"].value == "Use same scheduler"
    assert isinstance(blocks["hires_prompt"], gr.Textbox) and isinstance(blocks["hires_neg_prompt"], gr.Textbox)


def test_build_request_passes_the_hires_fix_fields():
    common_values = ["a cat", "", "Euler a", "Automatic", 20, 512, 512, 1, 1, 7, 5]
    req = txt2img.build_request(
        True, "Lanczos", 12.0, 0.45, 1.5, 0, 0, "Use same sampler", "Use same scheduler", "", None, *common_values
    )
    assert req.enable_hr is True and req.hr_upscaler == "Lanczos"
    assert (req.hr_second_pass_steps, req.denoising_strength, req.hr_scale) == (12, 0.45, 1.5)
    assert type(req.hr_second_pass_steps) is int
    assert (req.hr_resize_x, req.hr_resize_y) == (0, 0)
    assert req.hr_sampler_name is None and req.hr_scheduler is None  # "Use same ..." = the first pass's
    assert (req.hr_prompt, req.hr_negative_prompt) == ("", "")
    assert (req.prompt, req.sampler_name, req.width, req.seed) == ("a cat", "Euler a", 512, 5)

    req = txt2img.build_request(
        True, "Latent (bicubic)", 0, 0.7, 2.0, 1024, 768.0, "DPM++ 2M", "Karras", "a cat, sharp", "blur", *common_values
    )
    assert req.hr_upscaler == "Latent (bicubic)" and req.hr_scale == 2 and type(req.hr_scale) is int
    assert (req.hr_resize_x, req.hr_resize_y) == (1024, 768) and type(req.hr_resize_y) is int
    assert (req.hr_sampler_name, req.hr_scheduler) == ("DPM++ 2M", "Karras")
    assert (req.hr_prompt, req.hr_negative_prompt) == ("a cat, sharp", "blur")
    assert req.denoising_strength == 0.7
    # off: the values travel anyway (the core ignores them), as A1111's UI sends them
    req = txt2img.build_request(*HIRES_OFF, *common_values)
    assert req.enable_hr is False and req.hr_upscaler == "Latent" and req.hr_sampler_name is None


def test_hires_size_note_follows_the_inputs(ctx):
    demo = create_ui(ctx)
    fn = handler(demo, "txt2img_hr_scale", "change")
    for elem_id in (
        "txt2img_enable_hr",
        "txt2img_width",
        "txt2img_height",
        "txt2img_hr_resize_x",
        "txt2img_hr_resize_y",
    ):
        assert fn in [
            f
            for f in demo.fns.values()
            if any(t[1] == "change" and t[0] == components_by_id(demo)[elem_id]._id for t in f.targets)
        ]
    assert [b.elem_id for b in fn.outputs] == ["txtimg_hr_finalres"]
    assert fn.fn(False, 512, 512, 2, 0, 0) == ""
    assert "from 512x512 to 1024x1024" in fn.fn(True, 512, 512, 2, 0, 0)
    assert "from 520x520 to 776x776" in fn.fn(True, 520, 520, 1.5, 0, 0)  # 780 floored to the latent grid
    assert "from 512x768 to 1000x1496" in fn.fn(True, 512, 768, 2, 1000, 0)  # the other side keeps the ratio
    assert "from 512x512 to 1024x768" in fn.fn(True, 512, 512, 2, 1024, 768)  # cover, then crop
    too_small = fn.fn(True, 64, 64, 2, 4, 0)
    assert 'class="error"' in too_small and "smaller than 8x8" in too_small
    assert txt2img.hires_size(512, 512, 2, 0, 0) == (1024, 1024)


def test_paste_fills_the_hires_fix_fields(ctx):
    demo = create_ui(ctx)
    fn = handler(demo, "txt2img_paste", "click")
    text = (
        "a castle\nNegative prompt: fog\nSteps: 12, Sampler: Euler, Schedule type: Karras, CFG scale: 6, "
        "Seed: 5, Size: 256x384, Denoising strength: 0.55, Hires upscale: 1.5, Hires steps: 8, "
        "Hires upscaler: Lanczos, Hires sampler: DPM++ 2M, Hires schedule type: Exponential, "
        "Hires prompt: \"a castle, sharp\", Hires negative prompt: blur"
    )
    out = outputs_by_id(fn, fn.fn(text, ""))
    assert (out["txt2img_width"], out["txt2img_height"], out["txt2img_steps"]) == (256, 384, 12)  # the first pass
    assert out["txt2img_enable_hr"] is True
    assert (out["txt2img_hr_scale"], out["txt2img_hires_steps"], out["txt2img_denoising_strength"]) == (1.5, 8, 0.55)
    assert out["txt2img_hr_upscaler"] == "Lanczos"
    assert (out["hr_sampler"], out["hr_scheduler"]) == ("DPM++ 2M", "Exponential")
    assert (out["hires_prompt"], out["hires_neg_prompt"]) == ("a castle, sharp", "blur")
    assert (out["txt2img_hr_resize_x"], out["txt2img_hr_resize_y"]) == (0, 0)
    assert out["html_info_txt2img"] == ""

    # resize-to instead of a scale; same steps (no "Hires steps"); an upscaler this UI lacks is reported
    out = outputs_by_id(
        fn,
        fn.fn(
            "cat\nSteps: 5, Sampler: Euler, Seed: 9, Size: 512x512, Denoising strength: 0.4, "
            "Hires resize: 1024x768, Hires upscaler: R-ESRGAN 4x+",
            "",
        ),
    )
    assert out["txt2img_enable_hr"] is True
    assert (out["txt2img_hr_resize_x"], out["txt2img_hr_resize_y"], out["txt2img_hires_steps"]) == (1024, 768, 0)
    assert out["txt2img_hr_scale"] == gr.skip() and out["txt2img_hr_upscaler"] == gr.skip()
    assert "R-ESRGAN 4x+" in out["html_info_txt2img"]
    assert (out["hr_sampler"], out["hr_scheduler"]) == ("Use same sampler", "Use same scheduler")

    # made without hires fix: pasting switches it off and clears the second pass's own settings
    out = outputs_by_id(fn, fn.fn("cat\nSteps: 5, Sampler: Euler, Seed: 9, Size: 64x64", ""))
    assert out["txt2img_enable_hr"] is False
    assert (out["txt2img_hires_steps"], out["txt2img_hr_resize_x"], out["hires_prompt"]) == (0, 0, "")
    assert out["txt2img_denoising_strength"] == gr.skip()

    # ticking "Enable" (by hand or by ↙️) opens the accordion
    enable = components_by_id(demo)["txt2img_enable_hr"]
    accordion = components_by_id(demo)["txt2img_hr"]
    opener = next(
        f for f in demo.fns.values() if any(t == (enable._id, "change") for t in f.targets) and f.outputs == [accordion]
    )
    assert opener.fn(True).open is True and opener.fn(False) == gr.skip()


@pytest.mark.slow
def test_hires_fix_end_to_end_on_a_tiny_checkpoint(ctx):
    """The txt2img Generate handler with hires fix on: a 64x64 first pass, upscaled in latent space and refined
    at 128x128 through the one processing core."""
    from tests.fixtures.checkpoints import build_tiny_checkpoint

    build_tiny_checkpoint(ctx.paths.sd_models_dir / "tiny.safetensors", arch="sd1")
    ctx.store.refresh()
    assert common.select_checkpoint(ctx, "tiny.safetensors") == ""
    demo = create_ui(ctx)
    fn = handler(demo, "txt2img_generate", "click")
    hires = [True, "Latent", 2, 0.6, 2, 0, 0, "Use same sampler", "Use same scheduler", "", ""]
    updates = list(
        call(fn, *hires, "a tiny test", "noise", "Euler", "Automatic", 2, 64, 64, 1, 1, 7, 1234, -1, 0, 0, 0)
    )
    out = outputs_by_id(fn, updates[-1])
    assert out["html_info_txt2img"].startswith('<div class="note">Time taken')
    images = out["txt2img_gallery"]
    assert len(images) == 1 and images[0].size == (128, 128)
    info = out["generation_info_txt2img"]
    assert info == images[0].info["parameters"]
    assert "Seed: 1234, Size: 64x64" in info  # Size is the first pass's, as in A1111
    assert "Denoising strength: 0.6, " in info and "Hires upscale: 2, " in info and "Hires steps: 2, " in info
    assert "Hires upscaler: Latent" in info
    saved = list((ctx.paths.outputs_dir / "txt2img-images").rglob("*-1234.png"))
    assert len(saved) == 1 and Image.open(saved[0]).size == (128, 128)
