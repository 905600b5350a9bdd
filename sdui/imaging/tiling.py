"""Seamless tiling ("Tiling" in A1111): convolutions pad circularly, so the image wraps around its edges.

torch.nn.Conv2d has a public `padding_mode`; with "circular" it pads its input by wrapping (F.pad) before convolving.
Switching it on every padded Conv2d of the UNet and the VAE turns the networks into functions on a torus: the
generated image's left column continues its right column, its top row its bottom row.

What wraps exactly (checked in tests/test_tiling.py):
- the UNet (diffusers UNet2DConditionModel): its down-sampling convs are stride 2 with padding 1, which wrap too;
  the torus is only consistent when every level has an even size, i.e. latent sides divisible by 2**(levels - 1)
  (8 for SD1/SD2, 4 for SDXL) = image sides multiple of 64 (SD) / 32 (SDXL). At other sizes some level has an odd
  side, its stride-2 grid cannot repeat evenly around the torus, and the wrap is only approximate.
- the VAE decoder (up-sampling is nearest interpolation + convs, attention and GroupNorm have no notion of position).
What does not: the VAE encoder's down-sampling pads (0, 1, 0, 1) with zeros in its forward before a padding=0 conv,
so encoding (img2img, hires fix with a pixel upscaler) is not circular at the right/bottom edges. A1111 behaves the
same; the following denoising pass with the tiled UNet and decoder restores the wrap.

The switch mutates the given modules, so a model must not be shared by a tiled and an untiled job at the same time
(the job queue runs one generation at a time).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

CIRCULAR = "circular"


def _pads(conv: torch.nn.Conv2d) -> bool:
    # padding_mode only matters for a conv that pads; leaving 1x1 / padding=0 convs alone saves an F.pad copy each
    if isinstance(conv.padding, str):
        return conv.padding == "same" and any(k > 1 for k in conv.kernel_size)
    return any(p > 0 for p in conv.padding)


def padded_convs(*modules: torch.nn.Module | None) -> list[torch.nn.Conv2d]:
    """Every Conv2d that pads, inside the given modules (None entries skipped, shared convs listed once)."""
    found: dict[int, torch.nn.Conv2d] = {}
    for module in modules:
        if module is None:
            continue
        for layer in module.modules():
            if isinstance(layer, torch.nn.Conv2d) and _pads(layer):
                found.setdefault(id(layer), layer)
    return list(found.values())


@contextmanager
def tiled(*modules: torch.nn.Module | None, enabled: bool = True) -> Iterator[list[torch.nn.Conv2d]]:
    """Within the block, convs of `modules` pad circularly; their previous padding modes come back afterwards,
    also when the block raises. `enabled=False` makes it a no-op so callers can write `with tiled(..., enabled=flag)`.
    Yields the convs it switched."""
    convs = padded_convs(*modules) if enabled else []
    previous = [conv.padding_mode for conv in convs]
    try:
        for conv in convs:
            conv.padding_mode = CIRCULAR
        yield convs
    finally:
        for conv, mode in zip(convs, previous, strict=False):
            conv.padding_mode = mode
