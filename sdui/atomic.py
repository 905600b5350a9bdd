"""Atomic file writes: a temp file in the target folder, synced, then renamed over the target.

An exception mid-write leaves the previous file intact and no temp file behind; a process killed mid-write leaves a
hidden `.*.tmp` file, which `remove_stale_temp_files` clears at the next start.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

# our temp names: write_text_atomic's ".config.json-XXXXXXXX.tmp", sdui.imaging.saving's ".<16 hex>.tmp"
TEMP_NAME = re.compile(r"^\.[^/]+\.tmp$")


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_file_atomic(path, lambda temp: temp.write_text(text, encoding="utf-8"))


def remove_stale_temp_files(folder: Path, *, recursive: bool = False) -> list[Path]:
    """Remove the hidden temp files an interrupted write left in `folder` (and below it with `recursive`); call
    at start, before anything writes. Returns what was removed."""
    if not folder.is_dir():
        return []
    candidates = folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")
    removed = []
    for path in candidates:
        if path.is_file() and TEMP_NAME.match(path.name):
            try:
                path.unlink()
                removed.append(path)
            except OSError as e:
                log.warning("Cannot remove the leftover temp file %s: %s", path, e)
    if removed:
        log.info("Removed %d temp file(s) an interrupted save left behind in %s", len(removed), folder)
    return removed


def write_file_atomic(path: str | os.PathLike, write) -> Path:
    """`write(temp_path)` fills a temp file in the target folder (a library that wants a file name: safetensors,
    torch.save); it is then synced and renamed over `path`. A failing `write` leaves no temp file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
