"""The ControlNet entries of the parameters text, as the sd-webui-controlnet extension writes them, and back.

One entry per enabled unit, numbered from 0 in order:

    ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 1.0, Resize Mode: Crop and
    Resize, Processor Res: 512, Threshold A: 100.0, Threshold B: 200.0, Guidance Start: 0.0, Guidance End: 1.0,
    Pixel Perfect: False, Control Mode: Balanced"

(the quotes are the parameters line's own: infotext/build.py quotes a value holding ',' or ':'). A field still at
-1 (a slider the preprocessor does not have) is left out, as the extension's 1.1.4xx versions did; "Hr Option" is
written when it is not "Both", so that pasting restores it.

Reading accepts that form with any subset of fields (including the older "Low Vram", "Hr Option", "Save Detected
Map"), and the legacy form of versions before 1.1.4 (lower-case keys, one key "ControlNet" when the UI had a single
unit): `preprocessor: canny, model: ..., weight: 1, starting/ending: (0, 1), resize mode: Crop and Resize, pixel
perfect: False, control mode: Balanced, preprocessor params: (512, 100, 200)`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

from sdui.controlnet.modes import HiresOption
from sdui.controlnet.units import ControlNetUnit, unit_from_text_fields
from sdui.errors import InvalidRequestError

log = logging.getLogger(__name__)

# the extension's infotext fields, in its order
_FIELDS = (
    "module",
    "model",
    "weight",
    "resize_mode",
    "processor_res",
    "threshold_a",
    "threshold_b",
    "guidance_start",
    "guidance_end",
    "pixel_perfect",
    "control_mode",
)
_KEY = re.compile(r"^ControlNet(?: (\d+))?$")


def infotext_params(units: Iterable[ControlNetUnit]) -> dict[str, str]:
    """{"ControlNet 0": "Module: ..., ...", ...} for a job's enabled units, to add to its extra_generation_params."""
    params = {}
    for index, unit in enumerate(units):
        text = unit_infotext(unit)
        if text is not None:
            params[f"ControlNet {index}"] = text
    return params


def unit_infotext(unit: ControlNetUnit) -> str | None:
    """One unit's entry; None when a value would break the entry's `Key: value, ...` grammar (a ',' or ':' in a
    name), which the extension also refuses to write."""
    names = [*_FIELDS, "hr_option"] if unit.hr_option != HiresOption.BOTH else _FIELDS
    values = {_display(name): _text(getattr(unit, name)) for name in names if getattr(unit, name) != -1}
    if any("," in value or ":" in value for value in values.values()):
        log.warning("ControlNet: a unit's values hold ',' or ':' and are left out of the infotext: %s", values)
        return None
    return ", ".join(f"{key}: {value}" for key, value in values.items())


def units_from_infotext(params: Mapping[str, Any]) -> dict[int, ControlNetUnit]:
    """The units of a parsed parameters text (sdui.infotext.parse's dict), by unit number; an entry that cannot be
    read is skipped with a warning, as the extension skips it, so pasting never fails on it."""
    units = {}
    for key, value in params.items():
        match = _KEY.match(str(key))
        if not match or not isinstance(value, str):
            continue
        index = int(match.group(1) or 0)
        try:
            unit = unit_from_text_fields(entry_fields(value))
        except (ValueError, InvalidRequestError) as e:
            log.warning("ControlNet: cannot read the infotext entry %s: %s (%s)", key, value, e)
            continue
        if unit is not None:
            units[index] = unit
    return dict(sorted(units.items()))


def entry_fields(text: str) -> dict[str, str]:
    """A unit entry's values by unit field name, as text; either form. ValueError when it is neither."""
    if _LEGACY_KEY.match(text.strip()):
        return _legacy_fields(text)
    fields = {}
    for item in text.split(","):
        key, sep, value = item.strip().partition(": ")
        if not sep or not key:
            raise ValueError(f"'{item.strip()}' is not 'Key: value'")
        fields[_field(key)] = value.strip()
    return fields


def _display(field: str) -> str:
    return " ".join(word.capitalize() for word in field.split("_"))


def _field(display: str) -> str:
    return "_".join(word.lower() for word in display.split(" "))


def _text(value: Any) -> str:
    return value.value if isinstance(value, Enum) else str(value)


# ---- the legacy form (extension versions before 1.1.4) --------------------------------------------------------

_LEGACY_KEY = re.compile(r"^(preprocessor|model|weight|starting/ending|resize mode|control mode): ")
_LEGACY_ITEM = re.compile(r"\s*([\w /]+): (\([^)]*\)|[^,]*)(?:,|$)")
# enum members as str() of the extension's enums printed them ("ResizeMode.INNER_FIT")
_LEGACY_ENUMS = {
    "RESIZE": "Just Resize",
    "INNER_FIT": "Crop and Resize",
    "OUTER_FIT": "Resize and Fill",
    "BALANCED": "Balanced",
    "PROMPT": "My prompt is more important",
    "CONTROL": "ControlNet is more important",
}


def _legacy_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for key, value in _LEGACY_ITEM.findall(text):
        key, value = key.strip(), value.strip()
        if key == "preprocessor":
            fields["module"] = value
        elif key in ("model", "weight"):
            fields[key] = value
        elif key in ("resize mode", "control mode", "pixel perfect"):
            member = value.rpartition(".")[2]  # "ResizeMode.INNER_FIT" -> "INNER_FIT"
            fields[key.replace(" ", "_")] = _LEGACY_ENUMS.get(member, value)
        elif key == "starting/ending":
            fields["guidance_start"], fields["guidance_end"] = _tuple(value, 2)
        elif key == "preprocessor params":
            fields["processor_res"], fields["threshold_a"], fields["threshold_b"] = _tuple(value, 3)
    return fields


def _tuple(text: str, size: int) -> list[str]:
    parts = [part.strip() for part in text.strip("()").split(",")]
    if len(parts) != size:
        raise ValueError(f"'{text}' is not a tuple of {size} values")
    return parts
