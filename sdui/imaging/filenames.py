"""File names of saved images, as A1111 makes them: sanitising, `[tag]` patterns, sequence numbers."""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

INVALID_FILENAME_CHARS = '#<>:"/\\|?*\n\r\t'
MAX_FILENAME_PART_LENGTH = 128
MAX_PROMPT_WORDS = 8

SKIP_PREVIOUS_TEXT = object()  # a tag value meaning: write nothing, and drop the literal text before the tag

SANITIZE = str.maketrans({c: "_" for c in INVALID_FILENAME_CHARS})
_PATTERN = re.compile(r"(.*?)(?:\[([^\[\]]+)\]|$)")
_PATTERN_ARG = re.compile(r"(.*)<([^>]*)>$")
_NON_LETTERS = re.compile(r"[\s" + re.escape(string.punctuation) + "]+")


def sanitize_filename_part(text: str | None, replace_spaces: bool = True) -> str | None:
    """A piece of text made safe for a file name on every OS, as A1111 does it."""
    if text is None:
        return None
    if replace_spaces:
        text = text.replace(" ", "_")
    text = text.translate(SANITIZE).lstrip(" ")[:MAX_FILENAME_PART_LENGTH]
    return text.rstrip(" .")


def apply_filename_pattern(pattern: str, tags: Mapping[str, Any]) -> str:
    """Replace `[tag]` / `[tag<arg>...]` (case-insensitive) by `tags[tag]` (a value, or a callable taking the args).

    An unknown tag, or one whose value is None, stays literal; SKIP_PREVIOUS_TEXT drops the text before the tag.
    """
    out = []
    for m in _PATTERN.finditer(pattern):
        text, tag = m.groups()
        if tag is None:
            out.append(text)
            continue
        args: list[str] = []
        name = tag
        while (arg := _PATTERN_ARG.match(name)) is not None:
            name, value = arg.groups()
            args.insert(0, value)
        value = tags.get(name.lower())
        if callable(value):
            try:
                value = value(*args)
            except (TypeError, ValueError):  # a bad argument (e.g. "[prompt_hash<x>]") keeps the tag literal
                value = None
        if value is SKIP_PREVIOUS_TEXT:
            continue
        out.append(f"{text}{value}" if value is not None else f"{text}[{tag}]")
    return "".join(out)


def standard_tags(
    *,
    seed: Any = None,
    date: datetime.date | None = None,
    image: Image.Image | None = None,
    prompt: str | None = None,
    basename: str = "",
    extra: Mapping[str, Any] | None = None,
    max_prompt_words: int = MAX_PROMPT_WORDS,
) -> dict:
    """The tags a file name pattern can use; `extra` adds or overrides (e.g. steps, cfg, sampler, model_hash)."""
    date = date or datetime.date.today()

    def when(fmt: str = "", zone: str = "") -> str:
        now = datetime.datetime.now().astimezone(_timezone(zone))
        try:
            text = now.strftime(fmt or "%Y%m%d%H%M%S")
        except ValueError:
            text = now.strftime("%Y%m%d%H%M%S")
        return sanitize_filename_part(text, replace_spaces=False)

    def digest(data: bytes, length: str = "", default: int | None = 8) -> str:
        return hashlib.sha256(data).hexdigest()[: int(length) if length else default]

    tags: dict[str, Any] = {
        "seed": "" if seed is None else seed,
        "date": date.strftime("%Y-%m-%d"),
        "datetime": when,
        "none": "",
        "basename": basename or "img",
    }
    if image is not None:
        tags["width"], tags["height"] = image.width, image.height
        tags["image_hash"] = lambda length="": digest(image.tobytes(), length, None)
    if prompt is not None:
        words = [w for w in _NON_LETTERS.split(prompt) if w] or ["empty"]
        tags["prompt"] = sanitize_filename_part(prompt)
        tags["prompt_spaces"] = sanitize_filename_part(prompt, replace_spaces=False)
        tags["prompt_words"] = sanitize_filename_part(" ".join(words[:max_prompt_words]), replace_spaces=False)
        tags["prompt_hash"] = lambda length="": digest(prompt.encode(), length)
    for key, value in (extra or {}).items():
        tags[key.lower()] = sanitize_filename_part(value, replace_spaces=False) if isinstance(value, str) else value
    return tags


def _timezone(name: str) -> datetime.tzinfo | None:
    if not name:
        return None
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except (KeyError, ValueError):  # unknown zone (ZoneInfoNotFoundError is a KeyError): local time, as A1111
        return None


def next_sequence_number(folder: Path, basename: str = "") -> int:
    """1 + the largest number leading a file name in `folder` (after `basename-`), 0 when there is none.

    Sub-folders do not count (A1111 counts them, so with dated folders beside, its counter jumps to 02025).
    """
    prefix = f"{basename}-" if basename else ""
    largest = -1
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        name = entry.name
        if name.startswith(prefix) and not entry.is_dir():
            head = os.path.splitext(name[len(prefix) :])[0].split("-")[0]
            if head.isascii() and head.isdigit():
                largest = max(largest, int(head))
    return largest + 1
