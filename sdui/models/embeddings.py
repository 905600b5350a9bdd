"""Textual inversion embeddings from the embeddings folder (--embeddings-dir), as A1111 reads them: the file name
(without extension) is the word that calls it; its vectors take that word's place in the prompt.

Formats: A1111's .pt (`string_to_param: {"*": (n, D)}`), .safetensors / .pt with `emb_params` (n, D), SDXL files
with `clip_l` (n, 768) and `clip_g` (n, 1280), diffusers' .bin (`{"<token>": (D,) or (n, D)}`), and embeddings
stored in a PNG's `sd-ti-embedding` text chunk. An embedding whose width does not fit the loaded model's text
encoders is listed as skipped, with why. The short hash ("TI hashes" infotext) is the file's sha256[:12].
"""

from __future__ import annotations

import base64
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sdui.models.hashes import HashCache, sha256

log = logging.getLogger(__name__)
SUFFIXES = (".pt", ".bin", ".safetensors", ".png")


@dataclass
class Embedding:
    name: str
    path: Path
    vectors: dict[str, torch.Tensor]  # "clip_l" / "clip_g" for SDXL files, "" for a single-encoder file
    shorthash_value: str | None = field(default=None, repr=False)

    @property
    def count(self) -> int:
        return next(iter(self.vectors.values())).shape[0]

    def for_width(self, width: int, key: str) -> torch.Tensor | None:
        """The vectors for a text encoder of `width` features ("clip_l"/"clip_g" when the file names them)."""
        found = self.vectors.get(key) if key else None
        found = found if found is not None else self.vectors.get("")
        return found if found is not None and found.shape[-1] == width else None

    def shorthash(self, cache: HashCache | None) -> str:
        if self.shorthash_value is None:
            self.shorthash_value = sha256(self.path, cache, f"textual_inversion/{self.name}")[:12]
        return self.shorthash_value


@dataclass
class EmbeddingDatabase:
    loaded: dict[str, Embedding] = field(default_factory=dict)
    skipped: dict[str, tuple[Embedding, str]] = field(default_factory=dict)  # name -> (embedding, why)

    def api_dict(self) -> dict:
        """GET /sdapi/v1/embeddings, A1111's shape (a skipped one also says why)."""

        def describe(e: Embedding) -> dict:
            first = next(iter(e.vectors.values()))
            return {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None, "shape": first.shape[-1],
                    "vectors": e.count}

        return {
            "loaded": {name: describe(e) for name, e in self.loaded.items()},
            "skipped": {name: {**describe(e), "reason": why} for name, (e, why) in self.skipped.items()},
        }


def read_vectors(path: Path) -> dict[str, torch.Tensor]:
    """The vectors of one embedding file, (n, D) each; ValueError when the file holds none."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        data = load_file(str(path), device="cpu")
    elif suffix == ".png":
        data = _from_png(path)
    else:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(data, dict):
        raise ValueError("not an embedding file")
    if "clip_l" in data or "clip_g" in data:
        return {k: _matrix(data[k]) for k in ("clip_l", "clip_g") if isinstance(data.get(k), torch.Tensor)}
    if isinstance(data.get("string_to_param"), dict):
        params = [v for v in data["string_to_param"].values() if isinstance(v, torch.Tensor)]
        if len(params) != 1:
            raise ValueError(f"{len(params)} vectors sets in string_to_param (one expected)")
        return {"": _matrix(params[0])}
    if isinstance(data.get("emb_params"), torch.Tensor):
        return {"": _matrix(data["emb_params"])}
    tensors = [v for v in data.values() if isinstance(v, torch.Tensor)]
    if len(tensors) == 1:  # diffusers: {"<token>": vectors}
        return {"": _matrix(tensors[0])}
    raise ValueError("no embedding vectors found (string_to_param, emb_params, clip_l/clip_g)")


def _matrix(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().float()
    return t.unsqueeze(0) if t.dim() == 1 else t.reshape(-1, t.shape[-1])


def _from_png(path: Path) -> dict:
    from PIL import Image

    with Image.open(path) as image:
        text = image.info.get("sd-ti-embedding")
    if not text:
        raise ValueError("the image carries no embedding (no sd-ti-embedding text chunk)")
    data = json.loads(base64.b64decode(text))
    return {
        "string_to_param": {
            k: torch.tensor(v, dtype=torch.float32) for k, v in (data.get("string_to_param") or {}).items()
        }
    }


def encoder_widths(model) -> dict[str, int]:
    """{vectors key: width} the model's text encoders take: SD1/SD2 one encoder, SDXL clip_l and clip_g."""
    widths = [e.config.hidden_size for e in model.text_encoders]
    if model.arch == "sdxl":
        return {"clip_l": widths[0], "clip_g": widths[1]}
    if model.arch == "sdxl-refiner":
        return {"clip_g": widths[0]}
    return {"": widths[0]}


def load_embeddings(folder: Path, model) -> EmbeddingDatabase:
    """Every embedding file under `folder` that fits `model`; the others are skipped with the reason."""
    db = EmbeddingDatabase()
    if not folder.is_dir():
        return db
    widths = encoder_widths(model)
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for filename in sorted(files):
            path = Path(root) / filename
            if path.suffix.lower() not in SUFFIXES or filename.startswith("."):
                continue
            name = path.stem
            try:
                vectors = read_vectors(path)
            except Exception as e:  # noqa: BLE001 - a bad file is logged and left out, never fatal
                if path.suffix.lower() != ".png":  # most images in the folder are just previews
                    log.warning("Embedding %s cannot be read: %s", path, e)
                continue
            embedding = Embedding(name, path, vectors)
            fits = all(embedding.for_width(w, key) is not None for key, w in widths.items())
            if fits:
                db.loaded[name] = embedding
            else:
                have = ", ".join(f"{k or 'vectors'} {tuple(v.shape)}" for k, v in vectors.items())
                want = ", ".join(f"{k or 'width'} {w}" for k, w in widths.items())
                db.skipped[name] = (embedding, f"made for another model: has {have}, this model takes {want}")
    return db
