"""Device and dtype policy: decided once from the flags, handed to whoever needs it."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DevicePolicy:
    device: torch.device
    dtype: torch.dtype        # UNet and text encoders
    vae_dtype: torch.dtype

    def describe(self) -> str:
        return f"device={self.device.type} dtype={str(self.dtype).removeprefix('torch.')} vae={str(self.vae_dtype).removeprefix('torch.')}"


def pick_device(use_cpu: bool = False) -> torch.device:
    if not use_cpu and torch.cuda.is_available():
        return torch.device("cuda")
    if not use_cpu and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def policy_from_flags(*, use_cpu: bool = False, no_half: bool = False, no_half_vae: bool = False,
                      precision: str = "autocast") -> DevicePolicy:
    """CUDA/MPS default to fp16 (A1111); the CPU runs fp32; --no-half / --precision full force fp32."""
    device = pick_device(use_cpu)
    half = device.type in ("cuda", "mps") and not no_half and precision != "full"
    dtype = torch.float16 if half else torch.float32
    vae_dtype = torch.float32 if (no_half_vae or not half) else torch.float16
    return DevicePolicy(device=device, dtype=dtype, vae_dtype=vae_dtype)
