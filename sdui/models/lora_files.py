"""The LoRA/LyCORIS files in models/Lora (and --lora-dir), found by name as A1111 finds them: the file name
without its extension, or the `ss_output_name` the trainer wrote into the file (its alias). Each file's short hash
(A1111's "Lora hashes" infotext entry) is the first 12 hex digits of the sha256 of its tensor data (the part after
a safetensors header, as the Additional Networks extension hashed it), cached in hashes.json."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from sdui.models.files import list_files, safetensors_metadata
from sdui.models.hashes import HashCache

SUFFIXES = (".safetensors", ".pt", ".ckpt")
BLOCK = 1024 * 1024


@dataclass
class LoraFile:
    name: str
    path: Path
    _metadata: dict | None = field(default=None, repr=False)

    @property
    def metadata(self) -> dict:
        if self._metadata is None:
            self._metadata = safetensors_metadata(self.path) if self.path.suffix == ".safetensors" else {}
        return self._metadata

    @property
    def alias(self) -> str:
        return str(self.metadata.get("ss_output_name") or self.name)

    def shorthash(self, cache: HashCache | None = None) -> str:
        return tensor_data_sha256(self.path, cache, f"lora/{self.name}")[:12]

    def api_dict(self) -> dict:
        """One entry of GET /sdapi/v1/loras."""
        return {"name": self.name, "alias": self.alias, "path": str(self.path), "metadata": self.metadata}


def list_loras(folder: Path) -> list[LoraFile]:
    return [LoraFile(p.stem, p) for p in list_files(folder, SUFFIXES)]


def find_lora(files: list[LoraFile], name: str) -> LoraFile | None:
    """By file name first, then by alias (A1111's available_networks, then available_network_aliases)."""
    return next((f for f in files if f.name == name), None) or next((f for f in files if f.alias == name), None)


def tensor_data_sha256(path: Path, cache: HashCache | None, key: str) -> str:
    mtime = os.path.getmtime(path)
    value = cache.get(key, mtime) if cache is not None else None
    if value is None:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            if path.suffix == ".safetensors":
                header = int.from_bytes(f.read(8), "little")
                f.seek(8 + header)
            for block in iter(lambda: f.read(BLOCK), b""):
                digest.update(block)
        value = digest.hexdigest()
        if cache is not None:
            cache.set(key, mtime, value)
    return value

