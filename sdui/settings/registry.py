"""One entry per setting: its default, how the Settings tab shows it, and what a valid value is.

`OptionInfo` has the shape and positional order of A1111's `shared.OptionInfo`, so a setting an extension adds through
`on_ui_settings` (`shared.opts.add_option(key, shared.OptionInfo(default, label, gr.Slider, {...}, section=...))`)
lands in the same registry as ours and gets the same validation, persistence and Settings-tab widget.

`component` is a widget kind ("slider", "dropdown", "radio", "checkbox", "textbox", "number", "color",
"checkboxgroup") or a Gradio component class (what extensions pass); `component_args` its arguments, or a callable
returning them (for choices that change, such as the list of checkpoints). Choices and minimum/maximum in the
arguments are also what `validate` checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sdui.errors import InvalidRequestError


@dataclass(frozen=True)
class Section:
    """A page of the Settings tab: A1111's (id, label[, category]) tuple."""

    id: str
    label: str
    category: str | None = None

    @classmethod
    def of(cls, value: Section | tuple | None) -> Section | None:
        if value is None or isinstance(value, Section):
            return value
        return cls(*value)


@dataclass
class OptionInfo:
    default: Any = None
    label: str = ""
    component: Any = None
    component_args: dict | Callable[[], dict] | None = None
    onchange: Callable[[], Any] | None = None
    section: Section | tuple | None = None
    refresh: Callable[[], Any] | None = None
    comment_before: str = ""
    comment_after: str = ""
    infotext: str | None = None  # the infotext key that carries this setting (pasting restores it)
    restrict_api: bool = False  # not settable through POST /sdapi/v1/options
    category_id: str | None = None
    do_not_save: bool = False
    restart_needed: bool = False  # takes effect after a restart
    reload_ui_needed: bool = False  # takes effect after "Reload UI"
    inert: bool = False  # an A1111 key kept for clients and extensions; nothing in this program reads it

    def __post_init__(self):
        self.section = Section.of(self.section)

    # A1111's chainable helpers
    def info(self, text: str) -> OptionInfo:
        self.comment_after += f"<span class='info'>({text})</span>"
        return self

    def html(self, html: str) -> OptionInfo:
        self.comment_after += html
        return self

    def link(self, label: str, url: str) -> OptionInfo:
        self.comment_before += f"[<a href='{url}' target='_blank'>{label}</a>]"
        return self

    def needs_reload_ui(self) -> OptionInfo:
        self.reload_ui_needed = True
        return self

    def needs_restart(self) -> OptionInfo:
        self.restart_needed = True
        return self

    # ---- what a valid value is ---------------------------------------------------------------------------------
    def arguments(self) -> dict:
        args = self.component_args() if callable(self.component_args) else self.component_args
        return dict(args or {})

    def choices(self) -> tuple | None:
        choices = self.arguments().get("choices")
        if choices is None:
            return None
        return tuple(choices() if callable(choices) else choices)

    def limits(self) -> tuple[float | None, float | None]:
        args = self.arguments()
        return args.get("minimum"), args.get("maximum")

    def validate(self, key: str, value: Any) -> Any:
        """`value` cast to the type of the default, inside the choices and limits; else InvalidRequestError saying
        what the setting expects."""
        value = cast(key, value, self.default)
        choices = self.choices()
        if choices and not isinstance(value, list) and value not in choices:
            raise InvalidRequestError(f"Setting {key!r} must be one of {', '.join(map(repr, choices))}; got {value!r}.")
        low, high = self.limits()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if (low is not None and value < low) or (high is not None and value > high):
                bounds = f"at least {low}" if high is None else f"between {low} and {high}"
                raise InvalidRequestError(f"Setting {key!r} must be {bounds}; got {value!r}.")
        return value


def options_section(section: Section | tuple, options: Mapping[str, OptionInfo]) -> dict[str, OptionInfo]:
    """A1111's helper: put every option of `options` into `section`."""
    section = Section.of(section)
    for info in options.values():
        info.section = section
    return dict(options)


_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def cast(key: str, value: Any, default: Any) -> Any:
    """`value` converted to the type of `default` (A1111 stores JSON types), or InvalidRequestError saying what the
    key expects. Numbers must be finite: a NaN stored once would break every later read."""

    def wrong(expected: str):
        return InvalidRequestError(f"Setting {key!r} expects {expected}, got {value!r} ({type(value).__name__}).")

    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise wrong("true or false")
    if isinstance(default, int):
        if isinstance(value, bool):
            raise wrong("a whole number")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise wrong("a whole number") from None
            if number.is_integer():
                return int(number)
        raise wrong("a whole number")
    if isinstance(default, float):
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                pass
        if number is None or not math.isfinite(number):
            raise wrong("a finite number")
        return number
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise wrong("text")
    if isinstance(default, list):
        if isinstance(value, (list, tuple)):
            return list(value)
        if isinstance(value, str):  # old A1111 configs kept lists as comma-separated text
            return [part.strip() for part in value.split(",") if part.strip()]
        raise wrong("a list")
    if isinstance(default, dict):
        if isinstance(value, dict):
            return dict(value)
        raise wrong("an object")
    return value


def copy_value(value: Any) -> Any:
    """Lists and dicts are copied, so a caller never edits a default or another holder's value."""
    return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value


@dataclass
class Registry:
    """Every known setting, in registration order (the order of the Settings tab)."""

    entries: dict[str, OptionInfo] = field(default_factory=dict)

    def add(self, key: str, info: OptionInfo | Any) -> OptionInfo:
        """Register `info` (an OptionInfo, or a bare default value) under `key`; a later registration replaces an
        earlier one, as in A1111."""
        if not isinstance(info, OptionInfo):  # a bare default, or an OptionInfo-like object of another module
            info = OptionInfo(
                getattr(info, "default", info), getattr(info, "label", ""), onchange=getattr(info, "onchange", None)
            )
        self.entries[key] = info
        return info

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __getitem__(self, key: str) -> OptionInfo:
        return self.entries[key]

    def get(self, key: str) -> OptionInfo | None:
        return self.entries.get(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def items(self):
        return self.entries.items()

    def defaults(self) -> dict[str, Any]:
        return {key: copy_value(info.default) for key, info in self.entries.items()}

    def copy(self) -> Registry:
        return Registry(dict(self.entries))
