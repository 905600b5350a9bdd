"""One ControlNet unit as a residual contributor of the Denoiser (sdui.core.denoiser.ResidualContributor).

At every UNet call inside the unit's guidance range, the ControlNet sees what the UNet sees (scaled latents,
timestep, text conditioning, SDXL's added embeddings) and its control map at the call's size; its 12 (SD1/SD2) or
9 (SDXL) down residuals and its middle residual are scaled and handed to the Denoiser, which adds every unit's
into the UNet's skip connections. As in the extension:
- a call at step i of n is inside the range when start <= i / n <= end;
- "Balanced": weight on every residual, cond and uncond rows alike;
- "My prompt is more important": the soft injection, residual k of n scaled by weight * 0.825 ** (n - 1 - k), so
  the deep blocks keep the most;
- "ControlNet is more important": the soft injection on the prompt's rows only, the negative prompt's rows get no
  residual, so classifier-free guidance amplifies the control (also how shuffle models, which average their
  residuals over the image, are always applied);
- the map is prepared lazily for each latent size it meets (hires fix's second pass gets it at its own size) from
  the unit's map with its resize mode; "soft_in_hires" applies the soft injection in the second pass (the extension
  does that for canny and mlsd maps); an inpaint unit's RGBA map reaches the ControlNet as -1 where masked.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from diffusers import ControlNetModel
from PIL import Image

from sdui.controlnet.control_image import control_tensor
from sdui.controlnet.modes import ControlMode, ResizeMode
from sdui.controlnet.modes import control_mode as parse_control_mode
from sdui.controlnet.modes import resize_mode as parse_resize_mode
from sdui.core.denoiser import Residuals, UNetCall
from sdui.errors import InvalidRequestError

SOFT_DECAY = 0.825  # the extension's per-block factor of the soft injection
MAX_CACHED_SIZES = 4  # control maps kept per unit (first pass, hires pass, and a spare)


def in_guidance(step: int, total: int, start: float, end: float) -> bool:
    """Whether model call `step` of `total` is inside [start, end] (fractions of the sampling steps)."""
    fraction = step / max(total, 1)
    return start <= fraction <= end


def block_scales(count: int, weight: float, soft: bool) -> list[float]:
    """The factor of each of `count` residuals (down blocks first, the middle last)."""
    if not soft:
        return [weight] * count
    return [weight * SOFT_DECAY ** float(count - 1 - k) for k in range(count)]


def check_fits(controlnet: ControlNetModel, unet, name: str) -> None:
    """Refuse a ControlNet made for another base model (SD1 with SDXL, ...), naming both, before sampling."""
    theirs, ours = controlnet.config, unet.config
    widths_fit = list(theirs.block_out_channels) == list(ours.block_out_channels)
    same = (
        theirs.cross_attention_dim == ours.cross_attention_dim
        and theirs.addition_embed_type == ours.addition_embed_type
        and widths_fit
    )
    if not same:
        raise InvalidRequestError(
            f"ControlNet model {name} does not fit the checkpoint: it is made for a model with "
            f"{_describe(theirs)}, the checkpoint has {_describe(ours)}. Choose a ControlNet for this base model "
            "(SD 1.5 ControlNets with SD 1.x checkpoints, SDXL ControlNets with SDXL)."
        )


def _describe(config) -> str:
    kind = (
        "SDXL"
        if config.addition_embed_type == "text_time"
        else {768: "SD1", 1024: "SD2"}.get(config.cross_attention_dim, "unknown")
    )
    return f"text width {config.cross_attention_dim} and block widths {list(config.block_out_channels)} ({kind})"


class ControlNetResiduals:
    """The residuals of one unit: a loaded ControlNet, its control map and its settings."""

    def __init__(
        self,
        controlnet: ControlNetModel,
        image: Image.Image | np.ndarray,
        *,
        weight: float = 1.0,
        guidance_start: float = 0.0,
        guidance_end: float = 1.0,
        control_mode: ControlMode | str | int = ControlMode.BALANCED,
        resize_mode: ResizeMode | str | int = ResizeMode.CROP_AND_RESIZE,
        soft_in_hires: bool = False,
        inpaint: bool = False,
    ):
        if not math.isfinite(float(weight)):
            raise InvalidRequestError(f"ControlNet weight must be a finite number, not {weight!r}")
        for label, value in (("guidance_start", guidance_start), ("guidance_end", guidance_end)):
            if not 0.0 <= float(value) <= 1.0:
                raise InvalidRequestError(f"ControlNet {label} must be between 0 and 1, not {value!r}")
        self.controlnet = controlnet
        self.image = image
        self.weight = float(weight)
        self.start, self.end = float(guidance_start), float(guidance_end)
        self.control_mode = parse_control_mode(control_mode)
        self.resize_mode = parse_resize_mode(resize_mode)
        self.soft_in_hires = soft_in_hires
        self.inpaint = inpaint  # an RGBA map whose alpha is the mask (inpaint modules)
        self.calls = 0  # UNet calls it added residuals to (for tests and logs)
        self._maps: dict[tuple[int, int], torch.Tensor] = {}
        self._first_size: tuple[int, int] | None = None

    def control_map(self, height: int, width: int) -> torch.Tensor:
        """(1, 3, height, width) float32 in [0, 1], made once per size."""
        key = (height, width)
        if key not in self._maps:
            if len(self._maps) >= MAX_CACHED_SIZES:
                self._maps.pop(next(iter(self._maps)))
            self._maps[key] = control_tensor(self.image, width, height, self.resize_mode, inpaint=self.inpaint)
        return self._maps[key]

    def __call__(self, call: UNetCall) -> Residuals | None:
        # 1. only inside the unit's steps, and only when it adds anything (weight 0 = no ControlNet, exactly);
        # the first size seen is the first pass's, whether the unit acts there or not
        rows, _, h, w = call.sample.shape
        self._first_size = self._first_size or (h, w)
        second_pass = (h, w) != self._first_size
        if self.weight == 0.0 or not in_guidance(call.step, call.total, self.start, self.end):
            return None

        # 2. the ControlNet on what the UNet gets (loaded in the job's dtype and device, as the UNet is)
        dtype, device = self.controlnet.dtype, self.controlnet.device
        hint = self.control_map(h * 8, w * 8).to(device, dtype).expand(rows, -1, -1, -1)
        added = call.added_cond_kwargs
        added = None if added is None else {k: v.to(device, dtype) for k, v in added.items()}
        timestep = call.timestep.to(device) if torch.is_tensor(call.timestep) else call.timestep
        down, mid = self.controlnet(
            call.sample.to(device, dtype),
            timestep,
            encoder_hidden_states=call.encoder_hidden_states.to(device, dtype),
            controlnet_cond=hint,
            added_cond_kwargs=added,
            return_dict=False,
        )
        dtype, device = call.sample.dtype, call.sample.device

        # 3. scaled per block; the negative prompt's rows dropped when the prompt's side leads
        cond_only = self.control_mode is ControlMode.CONTROLNET or bool(self.controlnet.config.global_pool_conditions)
        soft = self.control_mode is not ControlMode.BALANCED or (second_pass and self.soft_in_hires)
        outputs = [*down, mid]
        scales = block_scales(len(outputs), self.weight, soft)
        scaled = [(r * s).to(device, dtype) for r, s in zip(outputs, scales, strict=True)]
        if cond_only and call.uncond_rows:
            keep = torch.ones(rows, 1, 1, 1, dtype=dtype, device=device)
            keep[: call.uncond_rows] = 0
            scaled = [r * keep for r in scaled]
        self.calls += 1
        return Residuals(tuple(scaled[:-1]), scaled[-1])
