"""Reading A1111's "generation parameters" text (infotext) back, as A1111's png-info does: string values, the
prompt and negative prompt, plus A1111's defaults for keys an old infotext lacks (a missing `RNG` means the image was
made with GPU noise, and so on) and the compatibility switches it derives from an old `Version`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from sdui.infotext.build import NEGATIVE

# key = a word character then word characters, spaces, '-' or '/'; value = a JSON string or anything up to a comma
_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_WXH = re.compile(r"^(\d+)x(\d+)$")


def parse_infotext(
    text: str, *, defaults: bool = True, skip_fields: Iterable[str] = (), backcompat: bool = True
) -> dict:
    """Parse an infotext into A1111's dict: the pairs of the last line (strings), `Prompt`, `Negative prompt`,
    then A1111's defaults for absent keys (`defaults=False` leaves them out). Values stay as written (A1111's
    png-info answer); pasting them into a request is sdui.core.infotext_fields' job.

    `backcompat` adds the compatibility switches A1111 derives from an old `Version` (<1.6.0, <1.7.0-225, <1.8.0).
    """
    *lines, last = text.strip().split("\n")
    if len(_PAIR.findall(last)) < 3:  # not a parameters line: it belongs to the prompt
        lines.append(last)
        last = ""

    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    target = prompt_lines
    for line in lines:
        line = line.strip()
        if line.startswith(NEGATIVE):
            target = negative_lines
            line = line[len(NEGATIVE) :].strip()
        target.append(line)
    prompt, negative_prompt = "\n".join(prompt_lines), "\n".join(negative_lines)

    res: dict[str, Any] = {}
    for key, value in _PAIR.findall(last):
        value = _unquote(value)
        size = _WXH.match(value)
        if size:
            res[f"{key}-1"], res[f"{key}-2"] = size.group(1), size.group(2)
        else:
            res[key] = value

    res["Prompt"] = prompt
    res["Negative prompt"] = negative_prompt
    if defaults:
        _add_defaults(res, prompt, negative_prompt)
    if backcompat:
        _add_backcompat(res)
    for key in skip_fields:
        res.pop(key, None)
    return res


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# Absent keys mean the A1111 default was used (A1111 parse_generation_parameters fills these); types as A1111
# returns them.
_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("Hires sampler", "Use same sampler"),
    ("Hires schedule type", "Use same scheduler"),
    ("Hires checkpoint", "Use same checkpoint"),
    ("Hires prompt", ""),
    ("Hires negative prompt", ""),
    ("Mask mode", "Inpaint masked"),
    ("Masked content", "original"),
    ("Inpaint area", "Whole picture"),
    ("Masked area padding", 32),
)
_LATE_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("RNG", "GPU"),
    ("Schedule type", "Automatic"),
    ("Schedule max sigma", 0),
    ("Schedule min sigma", 0),
    ("Schedule rho", 0),
    ("VAE Encoder", "Full"),
    ("VAE Decoder", "Full"),
    ("FP8 weight", "Disable"),
)


def _add_defaults(res: dict, prompt: str, negative_prompt: str) -> None:
    res.setdefault("Clip skip", "1")
    if "Hypernet" in res:
        res["Prompt"] += f"<hypernet:{res['Hypernet']}:{res.get('Hypernet strength', '1.0')}>"
    if "Hires resize-1" not in res:
        res["Hires resize-1"] = 0
        res["Hires resize-2"] = 0
    for key, value in _DEFAULTS:
        res.setdefault(key, value)
    _restore_first_pass_size(res)
    for key, value in _LATE_DEFAULTS:
        res.setdefault(key, value)
    if res["FP8 weight"] != "Disable":
        res.setdefault("Cache FP16 weight for LoRA", False)
    if "Emphasis" not in res and (_uses_emphasis(prompt) or _uses_emphasis(negative_prompt)):
        res["Emphasis"] = "Original"
    res.setdefault("Refiner switch by sampling steps", False)


def _uses_emphasis(text: str) -> bool:
    from sdui.text.emphasis import parse_prompt_attention  # pure text module; imported late to stay light

    return any(weight != 1.0 and part != "BREAK" for part, weight in parse_prompt_attention(text))


def _restore_first_pass_size(res: dict) -> None:
    """Pre-1.0 hires infotexts gave `First pass size` and the final size as `Size`; today's fields are the reverse."""
    first_w, first_h = res.get("First pass size-1"), res.get("First pass size-2")
    if first_w is None or first_h is None:
        return
    try:
        first_w, first_h = int(first_w), int(first_h)
        width, height = int(res.get("Size-1", 512)), int(res.get("Size-2", 512))
    except ValueError:
        return
    if first_w == 0 or first_h == 0:  # "0x0" meant: pick a first pass of about 512x512 pixels
        scale = math.sqrt(512 * 512 / (width * height))
        first_w, first_h = math.ceil(scale * width / 64) * 64, math.ceil(scale * height / 64) * 64
    res["Size-1"], res["Size-2"] = first_w, first_h
    res["Hires resize-1"], res["Hires resize-2"] = width, height


_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:-(\d+))?")


def _parse_version(text: Any) -> tuple[int, int, int, int] | None:
    m = _VERSION.match(str(text)) if text is not None else None
    if not m:
        return None
    major, minor, patch, commits = m.groups()
    return int(major), int(minor), int(patch), int(commits or 0)


def _add_backcompat(res: dict) -> None:
    version = _parse_version(res.get("Version"))
    if version is None:
        return
    if version < (1, 6, 0, 0) and "[" in res.get("Prompt", ""):
        res["Old prompt editing timelines"] = True
    if version < (1, 6, 0, 0) and res.get("Sampler", "") in ("DDIM", "PLMS"):
        res["Pad conds v0"] = True
    if version < (1, 7, 0, 225):
        res["Downcast alphas_cumprod"] = True
    if version < (1, 8, 0, 0) and res.get("Refiner"):
        res["Refiner switch by sampling steps"] = True
