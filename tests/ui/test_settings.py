"""The Settings tab: every setting of the registry as its widget with A1111's element id (an extension's too, in
its own section), Apply settings storing what changed into config.json and refusing bad values with the reason,
nothing stored under --freeze-settings."""

from __future__ import annotations

import json

import gradio as gr

from sdui.ui.app import create_ui
from tests.helpers import components_by_id, handler, make_ctx


def apply_with(fn, changes: dict):
    values = []
    for block in fn.inputs:
        key = block.elem_id.removeprefix("setting_")
        values.append(changes.get(key, block.value))
    return fn.fn(*values)


def test_widgets_and_apply(tmp_path):
    ctx = make_ctx(tmp_path / "data")
    try:
        from sdui.settings.registry import OptionInfo

        ctx.options.add_option("hello_steps", OptionInfo(7, "Hello steps", section=("hello", "Hello")))
        demo = create_ui(ctx)
        blocks = components_by_id(demo)
        assert isinstance(blocks["setting_samples_format"], gr.Dropdown)
        assert isinstance(blocks["setting_jpeg_quality"], gr.Slider) and blocks["setting_jpeg_quality"].maximum == 100
        assert isinstance(blocks["setting_enable_pnginfo"], gr.Checkbox)
        assert blocks["setting_hello_steps"].value == 7 and "settings_hello" in blocks

        fn = handler(demo, "settings_submit", "click")
        message = apply_with(fn, {"jpeg_quality": 90, "samples_format": "jpg", "hello_steps": 9})
        assert "3 settings changed" in message
        saved = json.loads((tmp_path / "data" / "config.json").read_text())
        assert (saved["jpeg_quality"], saved["samples_format"], saved["hello_steps"]) == (90, "jpg", 9)

        message = apply_with(fn, {"jpeg_quality": 500, "samples_format": "bmp", "hello_steps": 9})
        assert "0 settings changed" in message and "jpeg_quality" in message and "samples_format" in message
        assert json.loads((tmp_path / "data" / "config.json").read_text())["jpeg_quality"] == 90
    finally:
        ctx.jobs.shutdown()


def test_frozen_settings_are_shown_not_changed(tmp_path):
    ctx = make_ctx(tmp_path / "data", "--freeze-settings")
    try:
        fn = handler(create_ui(ctx), "settings_submit", "click")
        message = apply_with(fn, {"jpeg_quality": 90})
        assert "0 settings changed" in message and "frozen" in message
        assert not (tmp_path / "data" / "config.json").exists()
    finally:
        ctx.jobs.shutdown()


def test_quicksettings_list_puts_settings_in_the_top_bar_and_takes_them_out_of_the_tab(tmp_path):
    ctx = make_ctx(tmp_path / "data")
    try:
        blocks = components_by_id(create_ui(ctx))
        # the default: checkpoint, VAE, clip skip on top; clip skip not repeated in the Settings tab
        assert {"setting_sd_model_checkpoint", "setting_sd_vae", "setting_CLIP_stop_at_last_layers"} <= set(blocks)
        clip_skip = blocks["setting_CLIP_stop_at_last_layers"]
        demo = create_ui(ctx)
        apply = handler(demo, "settings_submit", "click")
        assert "setting_CLIP_stop_at_last_layers" not in [b.elem_id for b in apply.inputs]
        # a change in the top bar is stored and saved at once
        change = handler(demo, "setting_CLIP_stop_at_last_layers", "input")
        assert change.fn(3) == "" and ctx.options.CLIP_stop_at_last_layers == 3
        assert json.loads(ctx.paths.config_file.read_text())["CLIP_stop_at_last_layers"] == 3
        assert "must be" in change.fn(99)  # a bad value is a message, the setting stays
        assert ctx.options.CLIP_stop_at_last_layers == 3 and clip_skip is not None

        ctx.options.set("quicksettings_list", ["sd_model_checkpoint", "jpeg_quality"])
        blocks = components_by_id(create_ui(ctx))
        assert "setting_sd_vae" in blocks  # back in the Settings tab
        demo = create_ui(ctx)
        top = [b.elem_id for b in handler(demo, "settings_submit", "click").inputs]
        assert "setting_sd_vae" in top and "setting_jpeg_quality" not in top
    finally:
        ctx.jobs.shutdown()
