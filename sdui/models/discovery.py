"""Checkpoint discovery: which files are checkpoints, what they are called, how a name finds one (A1111 rules).

Naming (what clients see in /sdapi/v1/sd-models and in infotexts):
  name          "sub/model.safetensors"   path below its checkpoint folder, forward slashes
  model_name    "sub_model"               name without extension, folders joined by "_"
  name_for_extra "model"                  file name without extension
  hash          "1a2b3c4d"                legacy 8-hex hash (cheap)
  shorthash     "0123456789"              first 10 hex of the full sha256, once computed (at load, or from cache)
  title         "sub/model.safetensors [0123456789]", or just the name before the sha256 is known
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from sdui.models import hashes

log = logging.getLogger(__name__)

CHECKPOINT_EXTENSIONS = (".safetensors", ".ckpt")
_HASH_SUFFIX = re.compile(r"\s*\[[^\]]*\]\s*$")


def natural_key(text: str) -> list:
    """"model2" sorts before "model10"; case-insensitive."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text.lower()) if part]


def read_safetensors_metadata(filename: str | os.PathLike) -> dict:
    """The `__metadata__` of a safetensors header; values that hold JSON objects are decoded."""
    from safetensors import safe_open
    try:
        with safe_open(os.fspath(filename), framework="numpy") as f:  # header only: no torch needed
            raw = f.metadata() or {}
    except Exception as e:  # a corrupt file must not break listing; loading it reports the real error
        log.warning("Cannot read the safetensors header of %s: %s", filename, e)
        return {}
    metadata = {}
    for key, value in raw.items():
        if isinstance(value, str) and value.lstrip()[:1] == "{":
            try:
                value = json.loads(value)
            except ValueError:
                pass
        metadata[key] = value
    metadata.pop("modelspec.thumbnail", None)  # a base64 image: too big to carry around in listings
    return metadata


def _is_below(path: str, root: str | os.PathLike) -> bool:
    try:
        rel = os.path.relpath(path, os.path.abspath(os.fspath(root)))
    except ValueError:  # another drive (Windows)
        return False
    return rel != ".." and not rel.startswith(".." + os.sep)


def relative_name(path: str, root: str | os.PathLike | None) -> str:
    """Path below root with forward slashes; just the file name when the file is not below root."""
    name = os.path.basename(path)
    if root is not None and _is_below(path, root):
        name = os.path.relpath(path, os.path.abspath(os.fspath(root)))
    return name.replace("\\", "/").lstrip("/")


@dataclass(eq=False)
class CheckpointInfo:
    filename: str                 # absolute path
    name: str
    name_for_extra: str
    model_name: str
    is_safetensors: bool
    hash: str                     # legacy short hash, 8 hex
    sha256: str | None = None
    shorthash: str | None = None  # sha256[:10]
    title: str = ""
    short_title: str = ""
    ids: list[str] = field(default_factory=list)   # every string that selects this checkpoint exactly
    config_yaml: str | None = None                 # same-name .yaml next to the file
    _metadata: dict | None = field(default=None, repr=False)

    @classmethod
    def from_file(cls, filename: str | os.PathLike, root: str | os.PathLike | None = None,
                  hash_cache: hashes.HashCache | None = None) -> "CheckpointInfo":
        path = os.path.abspath(os.fspath(filename))
        name = relative_name(path, root)
        stem, ext = os.path.splitext(name)
        yaml = os.path.splitext(path)[0] + ".yaml"
        info = cls(
            filename=path,
            name=name,
            name_for_extra=os.path.splitext(os.path.basename(path))[0],
            model_name=stem.replace("/", "_").replace("\\", "_"),
            is_safetensors=ext.lower() == ".safetensors",
            hash=hashes.legacy_short_hash(path),
            config_yaml=yaml if os.path.isfile(yaml) else None,
        )
        info.title = info.name
        info.short_title = info.name_for_extra
        info.ids = [info.hash, info.model_name, info.title, info.name, info.name_for_extra, f"{info.name} [{info.hash}]"]
        sha = hashes.cached_sha256(path, hash_cache, info.hash_key)
        if sha:
            info._set_sha256(sha)
        return info

    @property
    def hash_key(self) -> str:
        return f"checkpoint/{self.name}"

    @property
    def metadata(self) -> dict:
        if self._metadata is None:
            self._metadata = read_safetensors_metadata(self.filename) if self.is_safetensors else {}
        return self._metadata

    def _set_sha256(self, value: str) -> None:
        self.sha256 = value
        self.shorthash = value[:10]
        self.title = f"{self.name} [{self.shorthash}]"
        self.short_title = f"{self.name_for_extra} [{self.shorthash}]"
        for alias in (self.shorthash, self.sha256, self.title, self.short_title):
            if alias not in self.ids:
                self.ids.append(alias)

    def api_dict(self) -> dict:
        """One entry of GET /sdapi/v1/sd-models."""
        return {"title": self.title, "model_name": self.model_name, "hash": self.shorthash, "sha256": self.sha256,
                "filename": self.filename, "config": self.config_yaml}

    def __repr__(self) -> str:
        return f"CheckpointInfo({self.title!r}, {self.filename!r})"


def calculate_shorthash(info: CheckpointInfo, cache: hashes.HashCache | None) -> str:
    """Compute (or fetch) the full sha256; the title becomes "name [shorthash]" and the new aliases are added."""
    if info.sha256 is None:
        info._set_sha256(hashes.sha256(info.filename, cache, info.hash_key))
    return info.shorthash


def _is_checkpoint(filename: str) -> bool:
    lower = filename.lower()
    return lower.endswith(CHECKPOINT_EXTENSIONS) and not lower.endswith((".vae.safetensors", ".vae.ckpt"))


def _walk(root: Path) -> list[str]:
    """Checkpoint files below root (following folder symlinks once), skipping hidden entries and broken links."""
    found, seen = [], set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:              # a symlink loop
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            full = os.path.join(folder, name)
            if name.startswith(".") or not _is_checkpoint(name) or not os.path.isfile(full):  # isfile: broken links
                continue
            found.append(full)
    return found


def list_checkpoints(dirs, *, extra_ckpt: str | os.PathLike | None = None,
                     hash_cache: hashes.HashCache | None = None) -> list[CheckpointInfo]:
    """Checkpoints in `dirs` (in that order, each searched recursively and sorted naturally by name).

    `extra_ckpt` (--ckpt) comes first when it exists, named relative to the folder it is in if that is one of dirs.
    """
    infos, seen = [], set()

    def add(path: str, root) -> None:
        key = os.path.normcase(os.path.realpath(path))
        if key in seen:
            return
        seen.add(key)
        infos.append(CheckpointInfo.from_file(path, root, hash_cache))

    roots = [Path(d) for d in dirs if d is not None]
    if extra_ckpt is not None and os.path.isfile(extra_ckpt):
        absolute = os.path.abspath(extra_ckpt)
        root = next((r for r in roots if _is_below(absolute, r)), None)
        add(absolute, root)
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(_walk(root), key=lambda p: natural_key(relative_name(os.path.abspath(p), root))):
            add(path, root)
    return infos


def find_checkpoint(infos: list[CheckpointInfo], name: str | None) -> CheckpointInfo | None:
    """A1111's lookup: exact alias; else the shortest title containing `name`; else the same without a trailing "[...]"."""
    if not name:
        return None
    for info in infos:
        if name in info.ids:
            return info
    for needle in (name, _HASH_SUFFIX.sub("", name)):
        if not needle:
            continue
        found = [info for info in infos if needle in info.title]
        if found:
            return min(found, key=lambda i: len(i.title))  # min keeps list order among equal lengths
    return None
