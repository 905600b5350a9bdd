"""Device and dtype policy: decided once from the flags, handed to whoever needs it."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import importlib.util
import logging
import sys
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DevicePolicy:
    device: torch.device
    dtype: torch.dtype  # UNet and text encoders
    vae_dtype: torch.dtype
    attention: str = "sdpa"  # "sdpa" (torch scaled_dot_product_attention, diffusers' default) or "xformers"

    def describe(self) -> str:
        return (
            f"device={self.device.type} dtype={str(self.dtype).removeprefix('torch.')} "
            f"vae={str(self.vae_dtype).removeprefix('torch.')} attention={self.attention}"
        )


def pick_device(use_cpu: bool = False) -> torch.device:
    if not use_cpu and torch.cuda.is_available():
        return torch.device("cuda")
    if not use_cpu and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtypes(
    device_type: str, *, no_half: bool = False, no_half_vae: bool = False, precision: str = "autocast"
) -> tuple[torch.dtype, torch.dtype]:
    """(model dtype, VAE dtype): fp16 on CUDA/MPS unless told otherwise, fp32 on the CPU."""
    half = device_type in ("cuda", "mps") and not no_half and precision != "full"
    dtype = torch.float16 if half else torch.float32
    return dtype, (torch.float32 if (no_half_vae or not half) else torch.float16)


def pick_attention(device: torch.device, xformers: bool) -> str:
    """xformers only when asked for, on CUDA, and importable (it is a CUDA-only build); SDPA otherwise."""
    if not xformers:
        return "sdpa"
    if device.type != "cuda":
        log.warning(
            "--xformers ignored: xformers needs a CUDA GPU (running on %s); using torch SDPA attention", device.type
        )
        return "sdpa"
    if importlib.util.find_spec("xformers") is None:
        log.warning("--xformers ignored: the xformers package is not installed; using torch SDPA attention")
        return "sdpa"
    return "xformers"


def policy_from_flags(
    *,
    use_cpu: bool = False,
    no_half: bool = False,
    no_half_vae: bool = False,
    precision: str = "autocast",
    xformers: bool = False,
) -> DevicePolicy:
    """CUDA/MPS default to fp16 (A1111); the CPU runs fp32; --no-half / --precision full force fp32."""
    device = pick_device(use_cpu)
    dtype, vae_dtype = pick_dtypes(device.type, no_half=no_half, no_half_vae=no_half_vae, precision=precision)
    return DevicePolicy(device=device, dtype=dtype, vae_dtype=vae_dtype, attention=pick_attention(device, xformers))


def release_memory() -> None:
    """Give back what finished work allocated: Python's garbage, the CUDA cache, and (glibc) freed heap pages,
    which the C allocator otherwise keeps, so a server that made one large image would stay large."""
    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    if sys.platform.startswith("linux"):
        libc_name = ctypes.util.find_library("c")
        try:
            ctypes.CDLL(libc_name).malloc_trim(0)
        except (OSError, AttributeError, TypeError):  # not glibc (musl), or no libc found: nothing to trim
            pass
