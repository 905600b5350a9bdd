"""Model upscalers: ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT, ... — whatever spandrel recognises — found as files in
the models folders (models/ESRGAN, models/RealESRGAN, ...) and run tile by tile on the job's device.

A file is listed under its stem ("4x-UltraSharp"), except the files A1111 knows by another name ("R-ESRGAN 4x+" is
RealESRGAN_x4plus.pth): clients send those names, so both are accepted. Weights are read with safetensors or
`torch.load(weights_only=True)`; nothing is unpickled, nothing is downloaded.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sdui.errors import UserError
from sdui.upscalers.spandrel_files import SUFFIXES, load_descriptor
from sdui.upscalers.tiled import run_tiled

log = logging.getLogger(__name__)

# file stem -> the name A1111 lists it under (its built-in upscalers' files)
A1111_NAMES = {
    "ESRGAN_4x": "ESRGAN_4x",
    "RealESRGAN_x4plus": "R-ESRGAN 4x+",
    "RealESRGAN_x4plus_anime_6B": "R-ESRGAN 4x+ Anime6B",
    "RealESRGAN_x2plus": "R-ESRGAN 2x+",
    "realesr-general-x4v3": "R-ESRGAN General 4xV3",
    "realesr-general-wdn-x4v3": "R-ESRGAN General WDN 4xV3",
    "realesr-animevideov3": "R-ESRGAN AnimeVideo",
    "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN": "SwinIR 4x",
    "DAT_x2": "DAT x2",
    "DAT_x3": "DAT x3",
    "DAT_x4": "DAT x4",
}


class UpscalerModelError(UserError):
    status_code = 422


@dataclass(frozen=True)
class ModelUpscaler:
    name: str
    path: Path

    @property
    def nominal_scale(self) -> int:
        """The scale the name announces ("4x-UltraSharp", "RealESRGAN_x2plus"), 4 when it says none (A1111's
        default for model upscalers); the true scale is known once the weights are read."""
        found = re.search(r"(?<![0-9])([1-8])x(?![0-9])|(?<![a-z0-9])x([1-8])(?![0-9])", self.path.stem, re.I)
        return int(found.group(1) or found.group(2)) if found else 4


def find_model_upscalers(folders: list[Path]) -> list[ModelUpscaler]:
    """Upscaler files in `folders` (subfolders included), sorted by name; a name seen twice keeps its first file."""
    found: dict[str, ModelUpscaler] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in SUFFIXES and path.is_file():
                name = A1111_NAMES.get(path.stem, path.stem)
                found.setdefault(name.lower(), ModelUpscaler(name, path))
    return sorted(found.values(), key=lambda m: m.name.lower())


@dataclass(frozen=True)
class RunSettings:
    device: torch.device = torch.device("cpu")
    half: bool = False  # float16 where the architecture supports it (CUDA)
    tile: int = 192  # A1111's ESRGAN_tile: input pixels per tile side, 0 = whole image
    overlap: int = 8  # ESRGAN_tile_overlap: context pixels around each tile


class ModelUpscalers:
    """The model upscalers in the configured folders, and the one most recently used, kept loaded."""

    def __init__(self) -> None:
        self.folders: list[Path] = []
        self.settings: Callable[[], RunSettings] = RunSettings
        self._files: list[ModelUpscaler] = []
        self._loaded: tuple[Path, float, object] | None = None  # (path, mtime, spandrel descriptor)
        self._lock = threading.Lock()

    def configure(self, folders: list[Path], settings: Callable[[], RunSettings]) -> None:
        self.folders, self.settings = list(folders), settings
        self.refresh()

    def refresh(self) -> list[ModelUpscaler]:
        self._files = find_model_upscalers(self.folders)
        return self._files

    def list(self) -> list[ModelUpscaler]:
        return list(self._files)

    def find(self, name: str) -> ModelUpscaler | None:
        """By listed name or file stem, ignoring case; the folders are read again when the name is not known yet
        (a file dropped in while the server runs)."""
        for files in (self._files, None):
            files = files if files is not None else self.refresh()
            for entry in files:
                if name.lower() in (entry.name.lower(), entry.path.stem.lower()):
                    return entry
        return None

    def upscale(self, image: Image.Image, entry: ModelUpscaler, on_tile=None) -> Image.Image:
        """One pass of the model over `image` (its native scale), tiled per the run settings."""
        settings = self.settings()
        with self._lock:  # one model in memory, one user of it at a time
            model = self._load(entry, settings)
            dtype = next(model.model.parameters()).dtype
            x = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
            x = x.permute(2, 0, 1).unsqueeze(0).to(settings.device, dtype)
            out = run_tiled(model, x, model.scale, settings.tile, settings.overlap, on_tile)
        pixels = (out[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)
        return Image.fromarray(pixels)

    def release(self) -> None:
        with self._lock:
            self._loaded = None

    def _load(self, entry: ModelUpscaler, settings: RunSettings):
        mtime = entry.path.stat().st_mtime if entry.path.exists() else -1.0
        if self._loaded is not None and self._loaded[:2] == (entry.path, mtime):
            model = self._loaded[2]
        else:
            self._loaded = None  # free the previous model before reading the next
            model = load_upscaler(entry.path)
            self._loaded = (entry.path, mtime, model)
        dtype = torch.float16 if settings.half and model.supports_half else torch.float32
        return model.to(settings.device).to(dtype)


def load_upscaler(path: Path):
    """The spandrel model of an upscaler file; UpscalerModelError saying why when it cannot be used."""
    import spandrel

    model = load_descriptor(
        path,
        UpscalerModelError,
        "upscaler",
        "is not an upscaler architecture spandrel knows (ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT, ...); "
        "remove it from the upscaler folder",
    )
    if not isinstance(model, spandrel.ImageModelDescriptor) or model.input_channels != 3:
        raise UpscalerModelError(f"{path.name} is a {model.architecture.name} model, not an RGB image upscaler")
    log.info("Loaded upscaler %s (%s, %dx)", path.name, model.architecture.name, model.scale)
    return model.eval()


# The process's catalogue, configured by the app with its folders and settings (sdui/app/context.py).
MODEL_UPSCALERS = ModelUpscalers()
