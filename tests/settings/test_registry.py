"""The settings registry (A1111's OptionInfo shape) and the frozen snapshot a job runs with."""

from __future__ import annotations

import pytest

from sdui.errors import InvalidRequestError
from sdui.settings import OptionInfo, Registry, Section, Settings, options_section
from sdui.settings.definitions import builtin_registry


def test_option_info_takes_a1111s_positional_order_and_chained_helpers():
    calls = []
    info = OptionInfo(
        0.5, "Strength", "slider", {"minimum": 0, "maximum": 1}, lambda: calls.append(1), ("my-ext", "My extension")
    )
    info = info.info("how strong").needs_restart()
    assert (info.default, info.label, info.component, info.limits()) == (0.5, "Strength", "slider", (0, 1))
    assert info.section == Section("my-ext", "My extension") and info.restart_needed
    assert "how strong" in info.comment_after
    info.onchange()
    assert calls == [1]
    grouped = options_section(("saving-images", "Saving images/grids", "saving"), {"a": OptionInfo(True, "A")})
    assert grouped["a"].section == Section("saving-images", "Saving images/grids", "saving")


def test_validation_follows_the_declared_choices_and_limits():
    choices = OptionInfo("png", "Format", "radio", {"choices": ["png", "jpg"]})
    assert choices.validate("fmt", "jpg") == "jpg"
    with pytest.raises(InvalidRequestError, match="must be one of 'png', 'jpg'; got 'bmp'"):
        choices.validate("fmt", "bmp")
    dynamic = OptionInfo("a", "Pick", "dropdown", lambda: {"choices": ["a", "b"]})  # as A1111's refreshable lists
    assert dynamic.validate("pick", "b") == "b"
    with pytest.raises(InvalidRequestError, match="between 1 and 12"):
        OptionInfo(1, "Clip skip", "slider", {"minimum": 1, "maximum": 12, "step": 1}).validate("clip", 13)


def test_every_builtin_setting_has_a_label_a_section_and_a_valid_default():
    registry = builtin_registry()
    for key, info in registry.items():
        if key == "sd_checkpoint_hash":  # state the program records, not a setting a user sees
            continue
        assert info.label and info.section is not None, key
        assert info.validate(key, info.default) == info.default, key
    assert isinstance(registry, Registry) and "samples_format" in registry


def test_a_snapshot_is_frozen_and_copies_what_it_holds():
    values = {"samples_format": "png", "a_list": [1, 2]}
    settings = Settings(values)
    values["a_list"].append(3)
    assert settings["a_list"] == [1, 2] and settings.samples_format == "png"
    with pytest.raises(AttributeError, match="read-only"):
        settings.samples_format = "jpg"
    with pytest.raises(TypeError):
        settings["samples_format"] = "jpg"
    changed = settings.replace({"samples_format": "jpg"})
    assert changed.samples_format == "jpg" and settings.samples_format == "png"
    with pytest.raises(AttributeError, match="no setting named 'nope'"):
        _ = settings.nope


def test_defaults_with_overrides_are_validated():
    assert Settings.defaults(jpeg_quality="90").jpeg_quality == 90
    with pytest.raises(InvalidRequestError, match="jpeg_quality"):
        Settings.defaults(jpeg_quality=500)
