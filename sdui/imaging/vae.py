"""Pixels <-> latents through the model's VAE, for every mode: the one place that encodes and decodes.

Encoding takes the posterior's mean, not a sample: the same init image gives the same latents on every run (A1111
samples with the global RNG; the difference is far below 1/255). Decoding in half precision can overflow (SDXL's
VAE does: A1111's "NaNs in VAE"); `JobVae` then decodes again in float32, as A1111's auto_vae_precision does,
instead of returning black images. The upcast lasts for the job only: the model is handed back in the dtype it was
loaded in, with a note that its VAE overflows, so the next job starts in float32 without the failed attempt.
Images larger than the job's `VaeTiling` threshold go through the VAE in tiles (imaging/vae_tiles.py); below it
nothing changes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from sdui.imaging.vae_tiles import NEVER, VaeTiling, decode_tiled, encode_tiled, scale_factor

log = logging.getLogger(__name__)


@torch.no_grad()
def encode(vae, pixels: torch.Tensor, tiling: VaeTiling = NEVER) -> torch.Tensor:
    """VAE latents of (N, 3, H, W) images in [-1, 1], scaled for the UNet, in the VAE's dtype."""
    device = next(vae.parameters()).device
    pixels = pixels.to(device, vae.dtype).contiguous(memory_format=_layout(vae))
    height, width = pixels.shape[-2:]
    f = scale_factor(vae)
    if tiling.applies(height, width) and height % f == width % f == 0:
        return encode_tiled(vae, pixels, tiling) * vae.config.scaling_factor
    return vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor


@torch.no_grad()
def decode(vae, latents: torch.Tensor, tiling: VaeTiling = NEVER) -> torch.Tensor:
    """(N, 3, H, W) images in [-1, 1] of scaled latents, in the VAE's dtype (NaN where a half VAE overflowed)."""
    z = (latents.to(vae.dtype) / vae.config.scaling_factor).contiguous(memory_format=_layout(vae))
    f = scale_factor(vae)
    if tiling.applies(z.shape[-2] * f, z.shape[-1] * f):
        return decode_tiled(vae, z, tiling)
    return vae.decode(z).sample


def _layout(vae) -> torch.memory_format:
    """The memory layout the VAE's weights are in (channels-last for bf16 on the CPU): inputs follow it, as the
    convolutions only run in that layout's fast path when their input is in it too."""
    weight = getattr(getattr(getattr(vae, "decoder", None), "conv_in", None), "weight", None)
    if weight is None or weight.ndim != 4:
        return torch.contiguous_format
    channels_last = weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    return torch.channels_last if channels_last else torch.contiguous_format


def to_pil(decoded: torch.Tensor) -> list[Image.Image]:
    """[-1, 1] NCHW -> 8-bit RGB, rounding like diffusers' image processor."""
    return [Image.fromarray(a) for a in to_uint8(to_unit(decoded))]


def to_unit(decoded: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> float32 [0, 1] (what A1111 hands to postprocess_batch)."""
    return (decoded.float() / 2 + 0.5).clamp(0, 1)


def to_uint8(unit: torch.Tensor) -> Sequence[np.ndarray]:
    """[0, 1] NCHW -> HWC uint8 arrays."""
    arr = unit.permute(0, 2, 3, 1).cpu().numpy()
    return [(a * 255).round().astype(np.uint8) for a in arr]


class JobVae:
    """The model's VAE for the length of one job (a context manager; the model is restored on exit). `tiling`:
    when images go through it in tiles (the job's settings; never by default)."""

    def __init__(self, model, *, auto_upcast: bool = True, tiling: VaeTiling = NEVER):
        self.model = model
        self.vae = model.vae
        self.auto_upcast = auto_upcast
        self.tiling = tiling
        self._loaded_dtype = self.vae.dtype
        if auto_upcast and model.vae_overflows and self._loaded_dtype != torch.float32:
            self.vae.to(torch.float32)

    def __enter__(self) -> JobVae:
        return self

    def __exit__(self, *exc) -> None:
        if self.vae.dtype != self._loaded_dtype:
            self.vae.to(self._loaded_dtype)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return encode(self.vae, pixels, self.tiling)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        decoded = decode(self.vae, latents, self.tiling)
        if self.auto_upcast and self.vae.dtype != torch.float32 and not torch.isfinite(decoded).all():
            log.warning(
                "The VAE produced NaNs in %s; decoding in float32 instead (start with --no-half-vae to "
                "skip the first attempt).",
                str(self.vae.dtype).removeprefix("torch."),
            )
            self.model.vae_overflows = True
            self.vae.to(torch.float32)
            decoded = decode(self.vae, latents.float(), self.tiling)
        return decoded

    def decode_to_pil(self, latents: torch.Tensor) -> list[Image.Image]:
        return to_pil(self.decode(latents))
