"""Prompt styles: A1111's styles.csv (columns name, prompt, negative_prompt), read from one or more files."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from sdui.errors import InvalidRequestError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Style:
    name: str
    prompt: str = ""
    negative_prompt: str = ""
    path: Path | None = None


def read_styles(paths: tuple[Path, ...]) -> list[Style]:
    """Every style of the files (a missing file has none; a later file's style replaces an earlier one of the same
    name). A file that cannot be read is logged and skipped."""
    styles: dict[str, Style] = {}
    for path in paths:
        if not path.is_file():
            continue
        try:
            with open(path, encoding="utf-8-sig", newline="") as f:
                for row in csv.DictReader(f, skipinitialspace=True):
                    name = (row.get("name") or "").strip()
                    if name:
                        styles[name] = Style(name, row.get("prompt") or "", row.get("negative_prompt") or "", path)
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            log.warning("Cannot read the styles file %s: %s", path, e)
    return list(styles.values())


def merge_prompts(style_prompt: str, prompt: str) -> str:
    """A style's text applied to a prompt: `{prompt}` replaced by it, else appended after ", " (A1111's rule)."""
    if "{prompt}" in style_prompt:
        return style_prompt.replace("{prompt}", prompt)
    return ", ".join(part for part in (prompt.strip(), style_prompt.strip()) if part)


def apply_styles(prompt: str, negative_prompt: str, names: list[str], styles: list[Style]) -> tuple[str, str, list]:
    """(prompt, negative prompt) with the named styles applied in order, and the names that match no style (A1111
    applies an unknown name as an empty style)."""
    by_name = {s.name: s for s in styles}
    missing = []
    for name in names:
        style = by_name.get(name)
        if style is None:
            missing.append(name)
            style = Style(name)
        prompt = merge_prompts(style.prompt, prompt)
        negative_prompt = merge_prompts(style.negative_prompt, negative_prompt)
    return prompt, negative_prompt, missing


def _take_style_text(style_text: str, prompt: str) -> tuple[bool, str]:
    """(whether `prompt` ends as a style of this text would leave it, the prompt without it): A1111's rule."""
    stripped, text = prompt.strip(), style_text.strip()
    if "{prompt}" in text:
        left, _, right = text.partition("{prompt}")
        if stripped.startswith(left) and stripped.endswith(right):
            return True, stripped[len(left) : len(stripped) - len(right)]
        return False, prompt
    if stripped.endswith(text):
        rest = stripped[: len(stripped) - len(text)]
        return True, rest[:-2] if rest.endswith(", ") else rest
    return False, prompt


def extract_styles(prompt: str, negative_prompt: str, styles: list[Style]) -> tuple[list[str], str, str]:
    """The styles a pasted prompt pair was made with, and the prompts without them (A1111 1.6+'s paste): styles
    are taken off the end one at a time, last applied first."""
    found: list[str] = []
    candidates = [s for s in styles if s.prompt or s.negative_prompt]
    while True:
        for style in candidates:
            ok, new_prompt = _take_style_text(style.prompt, prompt)
            if not ok:
                continue
            ok, new_negative = _take_style_text(style.negative_prompt, negative_prompt)
            if ok:
                prompt, negative_prompt = new_prompt, new_negative
                candidates.remove(style)
                found.append(style.name)
                break
        else:
            break
    return list(reversed(found)), prompt, negative_prompt


def save_style(files: tuple[Path, ...], name: str, prompt: str, negative_prompt: str) -> Path:
    """Add or change style `name` in the file that holds it (else the first file), written atomically; returns
    the file. Other rows and columns of that file are kept as they were."""
    name = (name or "").strip()
    if not name:
        raise InvalidRequestError("A style needs a name.")
    return _rewrite(files, name, lambda rows: _upsert(rows, name, prompt, negative_prompt))


def delete_style(files: tuple[Path, ...], name: str) -> Path:
    holder = _holder(files, name)
    if holder is None:
        raise InvalidRequestError(f"There is no style named {name!r}.")
    return _rewrite((holder,), name, lambda rows: [r for r in rows if (r.get("name") or "").strip() != name])


def _holder(files: tuple[Path, ...], name: str) -> Path | None:
    held = None
    for style in read_styles(files):
        if style.name == name:
            held = style.path
    return held


def _upsert(rows: list[dict], name: str, prompt: str, negative: str) -> list[dict]:
    for row in rows:
        if (row.get("name") or "").strip() == name:
            row["prompt"], row["negative_prompt"] = prompt, negative
            return rows
    return [*rows, {"name": name, "prompt": prompt, "negative_prompt": negative}]


def _rewrite(files: tuple[Path, ...], name: str, change) -> Path:
    import io

    from sdui.atomic import write_text_atomic

    path = _holder(files, name) or files[0]
    rows, columns = [], ["name", "prompt", "negative_prompt"]
    if path.is_file():
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f, skipinitialspace=True)
            columns = list(reader.fieldnames or columns)
            rows = list(reader)
    for column in ("name", "prompt", "negative_prompt"):
        if column not in columns:
            columns.append(column)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(change(rows))
    return write_text_atomic(path, out.getvalue())
