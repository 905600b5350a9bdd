"""Prompt styles: A1111's styles.csv (columns name, prompt, negative_prompt), read from one or more files."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

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
