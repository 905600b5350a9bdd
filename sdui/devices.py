"""Device and dtype policy: decided once from the flags, handed to whoever needs it.

float16 on CUDA and MPS, as A1111. On the CPU, bfloat16 where the CPU computes it natively (AMX-BF16, AVX512-BF16,
Arm BF16: about twice as fast as float32 there) and float32 elsewhere, where A1111 users run with --no-half anyway.
The CPU's features are read, not assumed; `--cpu-precision fp32` keeps A1111's float32 pixels on such a CPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import importlib.util
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DevicePolicy:
    device: torch.device
    dtype: torch.dtype  # UNet and text encoders
    vae_dtype: torch.dtype
    attention: str = "sdpa"  # "sdpa" (torch scaled_dot_product_attention, diffusers' default) or "xformers"
    reason: str = ""  # why these dtypes: what the start-up log says

    def describe(self) -> str:
        dtypes = f"dtype={_name(self.dtype)} vae={_name(self.vae_dtype)}"
        text = f"device={self.device.type} {dtypes} attention={self.attention}"
        return f"{text} ({self.reason})" if self.reason else text


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def pick_device(use_cpu: bool = False) -> torch.device:
    if not use_cpu and torch.cuda.is_available():
        return torch.device("cuda")
    if not use_cpu and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


# ------------------------------------------------------------------------------------------- bfloat16 on the CPU

# CPU features that compute bfloat16 in hardware, best first: (the flag as Linux's /proc/cpuinfo and
# torch.cpu.get_capabilities() spell it, the name the log shows). Plain AVX-512 is not among them: oneDNN runs
# bf16 there too, emulated and slower than float32 (which is why torch's mkldnn bf16 check is not used here).
BF16_FEATURES = (
    ("amx_bf16", "AMX-BF16"),  # Sapphire Rapids and later Xeons
    ("avx512_bf16", "AVX512-BF16"),  # Cooper Lake, Zen 4 and later
    ("bf16", "Arm BF16"),  # FEAT_BF16: Graviton 3/4, Neoverse V1/V2/N2, Apple M2 and later
)


def cpu_flags(description: str) -> frozenset[str]:
    """The feature flags in a CPU's own description: /proc/cpuinfo's "flags" (x86) or "Features" (arm64) lines,
    or macOS's `sysctl hw.optional.arm` lines ("hw.optional.arm.FEAT_BF16: 1" gives "bf16")."""
    found: set[str] = set()
    for line in description.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("flags", "features"):
            found.update(value.lower().split())
        elif key.startswith("hw.optional.arm.feat_") and value.strip() == "1":
            found.add(key.removeprefix("hw.optional.arm.feat_"))
    return frozenset(found)


def native_bf16(flags) -> str | None:
    """The CPU feature that computes bfloat16 natively ("AMX-BF16", ...) among `flags`, or None."""
    have = {flag.lower() for flag in flags}
    return next((name for flag, name in BF16_FEATURES if flag in have), None)


def detect_cpu_bf16() -> str | None:
    """This CPU's native bfloat16 feature, if torch can use it: torch's own view of the CPU first (what its kernels
    dispatch on), the operating system's description where this torch has no public one; None without oneDNN."""
    if not torch.backends.mkldnn.is_available():  # torch's bf16 matmuls and convolutions go through oneDNN
        return None
    capabilities = getattr(torch.cpu, "get_capabilities", None)  # public in recent torch (2.14 has it)
    if capabilities is not None:
        try:
            return native_bf16(name for name, value in capabilities().items() if value is True)
        except (RuntimeError, AttributeError):  # no cpuinfo support for this CPU: ask the OS
            pass
    return native_bf16(cpu_flags(_os_cpu_description()))


def _os_cpu_description() -> str:
    if sys.platform.startswith("linux"):
        try:
            return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
    if sys.platform == "darwin":
        try:
            done = subprocess.run(["sysctl", "hw.optional.arm"], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout
    return ""


# ------------------------------------------------------------------------------------------------------- dtypes


@dataclass(frozen=True)
class Precision:
    dtype: torch.dtype  # UNet and text encoders
    vae_dtype: torch.dtype
    reason: str


def pick_precision(
    device_type: str,
    *,
    no_half: bool = False,
    no_half_vae: bool = False,
    precision: str = "autocast",
    cpu_precision: str = "auto",
    cpu_bf16: str | None = None,
) -> Precision:
    """The dtypes and why: float16 on CUDA/MPS (A1111); on the CPU bfloat16 when it has native bf16 (`cpu_bf16`,
    the feature's name), float32 otherwise; --no-half / --precision full: float32 everywhere (A1111's flags win
    over --cpu-precision); --no-half-vae: the VAE in float32."""
    # 1. the model's dtype
    if no_half or precision == "full":
        flag = "--no-half" if no_half else "--precision full"
        reason = f"float32: {flag}"
        if device_type == "cpu" and cpu_bf16:  # most CPU users carry --no-half over from A1111: say what it costs
            reason += f"; this CPU has {cpu_bf16}: drop {flag} for bfloat16, about twice as fast"
        return Precision(torch.float32, torch.float32, reason)
    if device_type in ("cuda", "mps"):
        dtype, reason = torch.float16, f"float16: the {device_type.upper()} default"
    elif cpu_precision == "fp32":
        dtype, reason = torch.float32, "float32: --cpu-precision fp32"
    elif cpu_precision == "bf16":
        native = f"the CPU has {cpu_bf16}" if cpu_bf16 else "no native bf16 on this CPU, so it is slow"
        dtype, reason = torch.bfloat16, f"bfloat16: --cpu-precision bf16 ({native})"
    elif cpu_bf16:
        dtype, reason = torch.bfloat16, f"bfloat16: the CPU has {cpu_bf16}"
    else:
        dtype, reason = torch.float32, "float32: no native bf16 on this CPU"
    # 2. the VAE's: the same, unless kept in float32
    if no_half_vae and dtype != torch.float32:
        return Precision(dtype, torch.float32, f"{reason}; VAE float32: --no-half-vae")
    return Precision(dtype, dtype, reason)


def conv_memory_format(device: torch.device, dtype: torch.dtype) -> torch.memory_format:
    """The layout convolutions run fastest in: channels-last for bfloat16 on the CPU, where oneDNN's bf16
    kernels work on it directly (the full-size VAE decodes 2x faster than in the default layout, which makes
    bfloat16 pay off for the VAE too; a full-size SD1.5 UNet step is 14% faster at 512x512, 7% at 768x768);
    the default elsewhere (float32 on the CPU is slower channels-last)."""
    return torch.channels_last if device.type == "cpu" and dtype == torch.bfloat16 else torch.contiguous_format


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
    cpu_precision: str = "auto",
    xformers: bool = False,
) -> DevicePolicy:
    """CUDA/MPS default to fp16 (A1111); the CPU runs bf16 where it has native bf16, fp32 otherwise;
    --no-half / --precision full force fp32."""
    device = pick_device(use_cpu)
    cpu_bf16 = detect_cpu_bf16() if device.type == "cpu" and cpu_precision != "fp32" else None
    chosen = pick_precision(
        device.type,
        no_half=no_half,
        no_half_vae=no_half_vae,
        precision=precision,
        cpu_precision=cpu_precision,
        cpu_bf16=cpu_bf16,
    )
    return DevicePolicy(
        device=device,
        dtype=chosen.dtype,
        vae_dtype=chosen.vae_dtype,
        attention=pick_attention(device, xformers),
        reason=chosen.reason,
    )


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
