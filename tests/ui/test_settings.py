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
