"""Pasting parameters (A1111's ↙️): an infotext in the prompt box becomes widget values."""

from __future__ import annotations

from sdui.ui import widgets

# An infotext without these keys was made with the feature off: pasting it switches the feature off, so the
# pasted parameters reproduce the image (A1111 would keep the old widget values).
# ("Hires steps" is written only when the second pass has its own count.)
PASTE_OFF_WHEN_ABSENT = {
    "subseed_strength": 0,
    "seed_resize_from_w": 0,
    "seed_resize_from_h": 0,
    "hr_second_pass_steps": 0,
}


def fields_from_infotext(text: str, *, mode: str, fields) -> dict:
    """Request fields an infotext sets, limited to `fields` (the ones a tab has widgets for). Empty when the text
    has no parameters line: plain prompt text is not "parameters" and must not wipe the other widgets.
    `mode` picks the mode-specific keys ("txt2img": hires fix; "img2img": denoising, mask settings)."""
    from sdui.core.infotext_fields import request_fields
    from sdui.infotext import parse_infotext

    if not text or not text.strip():
        return {}
    if set(parse_infotext(text, defaults=False)) <= {"Prompt", "Negative prompt"}:
        return {}
    values = request_fields(parse_infotext(text), mode=mode)
    return {k: v for k, v in values.items() if k in fields}


def paste_values(text: str, fields, *, mode: str, choices: dict | None = None) -> tuple[dict, list[str]]:
    """({field: widget value} to set, [what was left alone and why]) for pasting `text` into a tab.

    `choices` maps a dropdown's field to (what it is called, the names it offers): a value it lacks (a sampler this
    UI does not list) is not pasted but reported. Radio fields show their declared label (1 -> "original")."""
    found = fields_from_infotext(text, mode=mode, fields=fields)
    if not found:
        return {}, []
    values, ignored = {}, []
    for name in fields:
        value = found.get(name, PASTE_OFF_WHEN_ABSENT.get(name))
        if value is None:
            continue
        if choices and name in choices and value not in choices[name][1]:
            ignored.append(f"{choices[name][0]} {value!r}")
            continue
        if widgets.spec_of(name).choices:
            value = widgets.to_widget(name, value)
        values[name] = value
    return values, ignored
