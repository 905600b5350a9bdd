"""A1111's checkpoint hashes and the on-disk cache that keeps the expensive one.

- legacy short hash ("AutoV1", 8 hex): sha256 of the 64 KiB that start 1 MiB into the file; instant, shown as `hash`.
- full sha256 ("AutoV2" = its first 10 hex): reads the whole file, so it is cached by file mtime in cache/hashes.json.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

from sdui.atomic import write_text_atomic

log = logging.getLogger(__name__)

LEGACY_OFFSET = 0x100000
LEGACY_LENGTH = 0x10000
BLOCK = 1024 * 1024


def legacy_short_hash(path: str | os.PathLike) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(LEGACY_OFFSET)
            return hashlib.sha256(f.read(LEGACY_LENGTH)).hexdigest()[:8]
    except FileNotFoundError:
        return "NOFILE"


def calculate_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


class HashCache:
    """{key: {"mtime": float, "sha256": str}} in <cache_dir>/hashes.json; thread-safe, written atomically.

    An entry is valid while the file's mtime is not newer than the one recorded with it.
    A corrupt or unreadable cache file is treated as empty (hashes are recomputable).
    """

    FILENAME = "hashes.json"

    def __init__(self, cache_dir: str | os.PathLike):
        self.path = Path(cache_dir) / self.FILENAME
        self._lock = threading.RLock()
        self._data: dict | None = None

    def _load(self) -> dict:
        if self._data is None:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self._data = data if isinstance(data, dict) else {}
            except FileNotFoundError:
                self._data = {}
            except (OSError, ValueError) as e:
                log.warning("Ignoring unreadable hash cache %s (%s); hashes will be recomputed", self.path, e)
                self._data = {}
        return self._data

    def get(self, key: str, mtime: float) -> str | None:
        with self._lock:
            entry = self._load().get(key)
        if not isinstance(entry, dict):
            return None
        try:
            if mtime > float(entry["mtime"]):
                return None
            value = entry["sha256"]
        except (KeyError, TypeError, ValueError):
            return None
        return value if isinstance(value, str) and len(value) == 64 else None

    def set(self, key: str, mtime: float, value: str) -> None:
        with self._lock:
            self._load()[key] = {"mtime": mtime, "sha256": value}
            self._write()

    def _write(self) -> None:
        write_text_atomic(self.path, json.dumps(self._data, indent=1, sort_keys=True))


def cached_sha256(path: str | os.PathLike, cache: HashCache | None, key: str) -> str | None:
    """The full sha256 if the cache already holds a valid one; never reads the file."""
    if cache is None:
        return None
    try:
        return cache.get(key, os.path.getmtime(path))
    except OSError:
        return None


def sha256(path: str | os.PathLike, cache: HashCache | None, key: str) -> str:
    """The full sha256, from the cache when still valid, else computed (1 MiB blocks) and cached."""
    mtime = os.path.getmtime(path)
    value = cache.get(key, mtime) if cache is not None else None
    if value is None:
        log.info("Calculating sha256 for %s ...", path)
        value = calculate_sha256(path)
        if cache is not None:
            cache.set(key, mtime, value)
        log.info("sha256 for %s: %s", path, value)
    return value
