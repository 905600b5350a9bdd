"""Live previews that cost almost nothing: the Denoiser's latest prediction as a picture, without the full VAE.

A1111's "Live preview display method" (the show_progress_type setting):
  Approx cheap  a fixed linear map of each latent cell to RGB, enlarged to the image size: no weights, microseconds
  TAESD         the decoder of madebyollin's tiny autoencoder (diffusers' AutoencoderTiny), from models/VAE-approx
  Full          the model's own VAE, as the finished image gets it (on a CPU it costs more than a sampling step)
  Approx NN     A1111's own small network (models/VAE-approx/model.pt) is not built in: TAESD when its file is
                there, else Approx cheap
TAESD without its file falls back to Approx cheap and says once which file to put where. The caller passes in the
latent family ("sd": SD1.x/SD2.x's VAE, "sdxl": SDXL's), the VAE's scale factor and the folders to look in.
"""

from __future__ import annotations

import functools
import logging
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file

from sdui.imaging.vae import JobVae, to_pil

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LatentRGB:
    """A linear map from the latents the UNet sees (scaled) to RGB in about [-1, 1]: one (R, G, B) row per latent
    channel, plus a bias."""

    factors: tuple[tuple[float, float, float], ...]
    bias: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def apply(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) latents -> (N, 3, h, w) RGB, in float32 on the latents' device."""
        factors = torch.tensor(self.factors, dtype=torch.float32, device=latents.device)
        bias = torch.tensor(self.bias, dtype=torch.float32, device=latents.device)
        return torch.einsum("nchw,cr->nrhw", latents.float(), factors) + bias.view(1, 3, 1, 1)


# Published least-squares fits of the decoded RGB on the latent channels (public data, not code):
# - SD1.x and SD2.x share one VAE: Keturn, "Decoding latents to RGB without upscaling" (Hugging Face forum thread
#   23204, 2022; no bias). Cited only: nothing here is fetched.
# - SDXL's VAE has a latent space of its own: the fit with bias published in ComfyUI's latent formats
#   (comfy/latent_formats.py, SDXL, 2024).
# SD3's 16-channel latents would need their own row set; our loader refuses SD3 (sdui/models/detection.py).
LATENT_RGB = {
    "sd": LatentRGB(
        factors=(
            (0.298, 0.207, 0.208),
            (0.187, 0.286, 0.173),
            (-0.158, 0.189, 0.264),
            (-0.184, -0.271, -0.473),
        )
    ),
    "sdxl": LatentRGB(
        factors=(
            (0.3651, 0.4232, 0.4341),
            (-0.2533, -0.0042, 0.1068),
            (0.1076, 0.1111, -0.0362),
            (-0.3165, -0.2492, -0.2188),
        ),
        bias=(0.1084, -0.0175, -0.0011),
    ),
}

# what reading a file that is not TAESD's decoder raises (torch.load's weights-only refusal is an UnpicklingError)
UNREADABLE = (OSError, ValueError, RuntimeError, KeyError, TypeError, pickle.UnpicklingError, SafetensorError)

# TAESD's file names per family, as madebyollin publishes them (github.com/madebyollin/taesd; the Hugging Face
# repos madebyollin/taesd and madebyollin/taesdxl hold the diffusers layout)
TAESD_NAMES = {"sd": "taesd", "sdxl": "taesdxl"}
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"


# ---- Approx cheap ------------------------------------------------------------------------------------------------
def cheap_preview(latents: torch.Tensor, family: str, scale: int) -> Image.Image:
    """The first latent as RGB by the family's linear map, enlarged `scale` times (bilinear) to the image size."""
    rgb = LATENT_RGB[family].apply(latents[:1])
    small = to_pil(rgb)[0]
    return small.resize((small.width * scale, small.height * scale), Image.Resampling.BILINEAR)


# ---- TAESD -------------------------------------------------------------------------------------------------------
def taesd_candidates(folders: Sequence[Path], family: str) -> list[Path]:
    """Where TAESD's decoder may be, in the order looked at: madebyollin's .pth / .safetensors files, then a
    diffusers folder (taesd/diffusion_pytorch_model.safetensors, the whole AutoencoderTiny)."""
    name = TAESD_NAMES[family]
    return [
        path
        for folder in folders
        for path in (
            Path(folder) / f"{name}_decoder.pth",
            Path(folder) / f"{name}_decoder.safetensors",
            Path(folder) / name / DIFFUSERS_WEIGHTS,
        )
    ]


def find_taesd(folders: Sequence[Path], family: str) -> Path | None:
    return next((p for p in taesd_candidates(folders, family) if p.is_file()), None)


def decoder_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """TAESD's decoder weights under the names of diffusers' `AutoencoderTiny.decoder` (a DecoderTiny).

    madebyollin's file is the state dict of one nn.Sequential: index 0 is the input clamp (no weights), then the
    layers ("1.weight", "3.conv.0.weight", ...). DecoderTiny does the clamp in forward() and keeps the same layers
    one index lower in `layers` ("layers.0.weight", "layers.2.conv.0.weight"). A diffusers file holds the whole
    autoencoder: its "decoder." keys are taken as they are."""
    if any(key.startswith("decoder.layers.") for key in sd):
        return {key.removeprefix("decoder."): value for key, value in sd.items() if key.startswith("decoder.")}
    renamed = {}
    for key, value in sd.items():
        index, _, rest = key.partition(".")
        if not index.isdigit() or index == "0" or not rest:
            raise ValueError(f"{key!r} is not a key of TAESD's decoder")
        renamed[f"layers.{int(index) - 1}.{rest}"] = value
    return renamed


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return load_file(str(path))
    sd = torch.load(path, map_location="cpu", weights_only=True)  # tensors only: no code runs from the file
    if not isinstance(sd, Mapping):
        raise ValueError(f"it holds a {type(sd).__name__}, not a state dict")
    return sd


def load_taesd_decoder(path: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
    """diffusers' DecoderTiny with the weights of `path`, on `device` in `dtype`; loaded once per file version
    (path, size, mtime) and place. ValueError/RuntimeError/OSError when the file is not TAESD's decoder."""
    stat = Path(path).stat()
    return _load(str(path), stat.st_size, stat.st_mtime_ns, str(torch.device(device)), dtype)


@functools.lru_cache(maxsize=4)
def _load(path: str, size: int, mtime_ns: int, device: str, dtype: torch.dtype):
    from diffusers import AutoencoderTiny

    weights = decoder_state_dict(read_weights(Path(path)))
    first = weights.get("layers.0.weight")
    if first is None or first.ndim != 4:
        raise ValueError("it has no first convolution (layers.0 / 1.weight)")
    decoder = AutoencoderTiny(latent_channels=first.shape[1]).decoder  # TAESD's published architecture
    decoder.load_state_dict(weights)  # strict: another network's file fails here, naming what does not fit
    return decoder.to(device, dtype).eval().requires_grad_(False)


@torch.no_grad()
def taesd_preview(decoder, latents: torch.Tensor) -> Image.Image:
    """The first latent through TAESD's decoder (which outputs [-1, 1], as diffusers' decoders do)."""
    param = next(decoder.parameters())
    return to_pil(decoder(latents[:1].to(param.device, param.dtype)))[0]


@functools.cache
def _say_missing(family: str, folder: str, name: str) -> None:
    log.warning(
        "Live previews: TAESD's decoder for %s models is not there; showing the cheap approximation instead. "
        "Put %s_decoder.pth (github.com/madebyollin/taesd) into %s to use it.",
        "SDXL" if family == "sdxl" else "SD1/SD2",
        name,
        folder,
    )


@functools.cache
def _say_unreadable(path: str, why: str) -> None:
    log.warning("Live previews: %s is not TAESD's decoder (%s); showing the cheap approximation instead.", path, why)


# ---- one job's choice --------------------------------------------------------------------------------------------
class PreviewDecoder:
    """The live-preview picture of one job, by the show_progress_type setting: `decoder(latents)` -> PIL image of
    the first latent of the batch, the image's size. `folders`: where TAESD's files are looked for."""

    def __init__(self, method: str, vae: JobVae, *, family: str, scale: int, folders: Sequence[Path] = ()):
        if family not in LATENT_RGB:
            raise ValueError(f"no latent-to-RGB map for the {family!r} latent family")
        self.method = method  # one of settings.definitions.PREVIEW_METHODS; anything else: Approx cheap
        self.vae = vae
        self.family = family
        self.scale = scale
        self.folders = [Path(f) for f in folders]
        self._taesd = None
        self._looked = False

    def __call__(self, latents: torch.Tensor) -> Image.Image:
        if self.method == "Full":
            return self.vae.decode_to_pil(latents[:1])[0]
        if self.method in ("TAESD", "Approx NN"):
            decoder = self.taesd(latents.device)
            if decoder is not None:
                return taesd_preview(decoder, latents)
        return cheap_preview(latents, self.family, self.scale)

    def taesd(self, device: torch.device):
        """TAESD's decoder for this family (looked up once per job), or None after saying why."""
        if not self._looked:
            self._looked = True
            path = find_taesd(self.folders, self.family)
            if path is None:
                folder = self.folders[0] if self.folders else Path("models/VAE-approx")
                _say_missing(self.family, str(folder), TAESD_NAMES[self.family])
                return None
            try:
                self._taesd = load_taesd_decoder(path, device, self.vae.vae.dtype)
            except UNREADABLE as e:  # a preview never fails the job: an unreadable file means the cheap picture
                _say_unreadable(str(path), (str(e).splitlines() or [repr(e)])[0])
        return self._taesd
