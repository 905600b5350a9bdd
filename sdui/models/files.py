"""Model files users drop into folders (VAEs, LoRAs, hypernetworks): found recursively, named as A1111 names them."""

from __future__ import annotations

import json
import logging
import os
import struct
from pathlib import Path

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
MAX_HEADER = 100 * 2**20     # a safetensors header larger than this is not one


def list_files(folder: Path, suffixes: tuple[str, ...] = WEIGHT_SUFFIXES) -> list[Path]:
    """Files with one of `suffixes` below `folder` (followed into subfolders), sorted by their relative path;
    hidden files and folders are skipped. A missing folder has none."""
    if not folder.is_dir():
        return []
    found = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / f for f in files if f.lower().endswith(suffixes) and not f.startswith(".")]
    return sorted(found, key=lambda p: str(p.relative_to(folder)).lower())


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` of a safetensors file's header (training tags, output name...), {} when it has none or
    the file is not safetensors. Reads the header only."""
    if path.suffix.lower() != ".safetensors":
        return {}
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if not 0 < length <= MAX_HEADER:
                return {}
            header = json.loads(f.read(length))
    except (OSError, ValueError, struct.error) as e:
        log.warning("Cannot read the header of %s: %s", path, e)
        return {}
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}
