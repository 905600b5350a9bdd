"""A ControlNet unit's modes and the names they go by: the extension's names, its numbers (0, 1, 2) and the old
names its clients still send. One parser, for the API's unit fields and for the code that takes a mode directly."""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any

from sdui.errors import InvalidRequestError

log = logging.getLogger(__name__)


class ResizeMode(str, Enum):
    JUST_RESIZE = "Just Resize"
    CROP_AND_RESIZE = "Crop and Resize"
    RESIZE_AND_FILL = "Resize and Fill"


class ControlMode(str, Enum):
    BALANCED = "Balanced"
    PROMPT = "My prompt is more important"
    CONTROLNET = "ControlNet is more important"


class HiresOption(str, Enum):
    """Which pass of hires fix a unit acts in."""

    BOTH = "Both"
    LOW_RES_ONLY = "Low res only"
    HIGH_RES_ONLY = "High res only"


# old names of the resize modes (the extension's aliases and A1111's img2img spelling); 3 is A1111's
# "Just resize (latent upscale)", which the extension treats as Just Resize
RESIZE_ALIASES = {
    "Inner Fit (Scale to Fit)": ResizeMode.CROP_AND_RESIZE,
    "Scale to Fit (Inner Fit)": ResizeMode.CROP_AND_RESIZE,
    "Outer Fit (Shrink to Fit)": ResizeMode.RESIZE_AND_FILL,
    "Envelope (Outer Fit)": ResizeMode.RESIZE_AND_FILL,
    "Just resize (latent upscale)": ResizeMode.JUST_RESIZE,
    "3": ResizeMode.JUST_RESIZE,
}
_ALIASES: dict[type[Enum], dict[str, Enum]] = {ResizeMode: RESIZE_ALIASES}
# a resize mode number past the list is Just Resize, with a warning, as the extension's resize_mode_from_value
_NUMBER_FALLBACK: dict[type[Enum], Enum] = {ResizeMode: ResizeMode.JUST_RESIZE}


class NotAChoice(ValueError):
    """A value that names no member; its text says what to send instead."""


def parse(enum: type[Enum], value: Any) -> Enum:
    """The member of `enum` that `value` names: a member, its name in any case, its number (int, integral float or
    digit string), an old name, or any of these alone in a one-element list (webuiapi sends control mode 0 as
    ["Balanced"]). A resize mode number past the list is Just Resize, as in the extension."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, enum):
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    members = list(enum)
    aliases = _ALIASES.get(enum, {})
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        text = str(value).strip().lower()
        for number, member in enumerate(members):
            if text in (member.value.lower(), str(number)):
                return member
        for name, member in aliases.items():
            if text == name.lower():
                return member
        if isinstance(value, int) and value >= len(members) and enum in _NUMBER_FALLBACK:
            log.warning("%s %d is not a known number; using %s", enum.__name__, value, _NUMBER_FALLBACK[enum].value)
            return _NUMBER_FALLBACK[enum]
    accepted = ", ".join(f"'{m.value}' ({i})" for i, m in enumerate(members))
    if aliases:
        accepted += " or an old name: " + ", ".join(f"'{name}'" for name in aliases if not name.isdigit())
    raise NotAChoice(f"send one of {accepted}.")


def resize_mode(value: Any) -> ResizeMode:
    """The resize mode `value` names; a 400 saying what to send otherwise."""
    return _parse_field(ResizeMode, "resize_mode", value)


def control_mode(value: Any) -> ControlMode:
    """The control mode `value` names; a 400 saying what to send otherwise."""
    return _parse_field(ControlMode, "control_mode", value)


def _parse_field(enum: type[Enum], field: str, value: Any):
    try:
        return parse(enum, value)
    except NotAChoice as e:
        raise InvalidRequestError(f"{field} {value!r} is not accepted; {e}") from None
