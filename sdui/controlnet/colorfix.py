"""ControlNet's tile_colorfix and tile_colorfix+sharp: the UNet's prediction keeps its details but takes the low
frequencies (the colours) of the control image, as the sd-webui-controlnet extension does after every UNet call.

With x0 the denoised prediction of a row, L the control map's VAE latent at the generation size and blur a box
blur of radius k (replicate padding, the extension's):
  1. x0' = x0 - blur(x0, k) + blur(L, k)                      k = Variation (threshold_a), doubled in hires fix's
                                                               second pass unless the unit is for the first only;
  2. +sharp: the negative prompt's rows go to d * blur(x0', k) + (1 - d) * x0' with d = Sharpness (threshold_b)
     / 100, so classifier-free guidance pushes the prompt's rows away from the blur: sharper details;
  3. the result is w * x0' + (1 - w) * x0 with w the unit's weight clamped to [0, 1].
The extension works on the noise prediction (eps -> x0 -> eps); that is the same blend in x0, so it is done on the
Denoiser's denoised rows (on_denoised), for epsilon and v models alike. As in the extension it acts on every step,
whatever the unit's guidance start/end (those limit the tile ControlNet's residuals, which apply as for any unit).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sdui.controlnet.control_image import control_tensor
from sdui.controlnet.modes import HiresOption, ResizeMode
from sdui.core.denoiser import UNetCall
from sdui.core.hooks import DenoisedParams, DenoiserParams, ProcessingHooks
from sdui.imaging import vae as vae_io

MAX_CACHED_SIZES = 4  # control latents kept per unit (first pass, hires pass, a spare)


# ------------------------------------------------------------------------------------------------- pure functions
def box_blur(x: torch.Tensor, k: int) -> torch.Tensor:
    """The mean over the (2k+1)² neighbourhood of each latent pixel, edges replicated (the extension's blur)."""
    if k <= 0:
        return x
    padded = F.pad(x, (k, k, k, k), mode="replicate")
    return F.avg_pool2d(padded, 2 * k + 1, stride=1)


def colorfix(x0: torch.Tensor, control_latent: torch.Tensor, k: int) -> torch.Tensor:
    """x0 with its low frequencies replaced by the control latent's (step 1)."""
    return x0 - box_blur(x0, k) + box_blur(control_latent.to(x0), k)


def sharpen_uncond(x0: torch.Tensor, k: int, detail: float, uncond_rows: int) -> torch.Tensor:
    """Step 2: the first `uncond_rows` rows (the negative prompt's) blended toward their blur by `detail`."""
    if uncond_rows <= 0 or detail == 0.0:
        return x0
    out = x0.clone()
    neg = x0[:uncond_rows]
    out[:uncond_rows] = detail * box_blur(neg, k) + (1.0 - detail) * neg
    return out


def corrected(
    x0: torch.Tensor, control_latent: torch.Tensor, *, k: int, weight: float, detail: float | None, uncond_rows: int
) -> torch.Tensor:
    """Steps 1-3 on denoised rows (N, C, h, w), uncond rows first; `detail` None: plain colorfix."""
    w = min(max(float(weight), 0.0), 1.0)
    if w == 0.0:
        return x0
    fixed = colorfix(x0, control_latent, k)
    if detail is not None:
        fixed = sharpen_uncond(fixed, k, detail, uncond_rows)
    return w * fixed + (1.0 - w) * x0


# -------------------------------------------------------------------------------------------------------- the hook
class ColorFix(ProcessingHooks):
    """One tile_colorfix(+sharp) unit of a job. It rides in the job's residual contributors (adding nothing) so that
    the ControlNet script hands it the on_denoiser / on_denoised calls of its own job's Denoisers only."""

    def __init__(
        self,
        control_map: np.ndarray,
        vae,
        *,
        variation: float,
        sharpness: float | None,
        weight: float,
        resize_mode: ResizeMode,
        hr_option: HiresOption = HiresOption.BOTH,
    ):
        self.control_map = control_map[..., :3]
        self.vae = vae
        self.k = int(variation)
        self.detail = None if sharpness is None else float(sharpness) * 0.01
        self.weight = float(weight)
        self.resize_mode = resize_mode
        self.hr_option = hr_option
        self.steps = 0  # denoiser calls it corrected (tests, logs)
        self._latents: dict[tuple[int, int], torch.Tensor] = {}
        self._first_size: tuple[int, int] | None = None
        self._cond_rows = 0

    def __call__(self, call: UNetCall) -> None:
        return None  # no residuals: the correction happens on the denoised rows

    def latent(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """The control map fitted to (height, width) latent pixels by the unit's resize mode, VAE-encoded once."""
        key = (height, width)
        if key not in self._latents:
            if len(self._latents) >= MAX_CACHED_SIZES:
                self._latents.pop(next(iter(self._latents)))
            pixels = control_tensor(self.control_map, width * 8, height * 8, self.resize_mode) * 2.0 - 1.0
            self._latents[key] = vae_io.encode(self.vae, pixels).float()
        return self._latents[key].to(device)

    def on_denoiser(self, params: DenoiserParams) -> None:
        # the prompt's rows are the last ones of on_denoised's batch: one per image, or one per AND part
        weights = getattr(params.denoiser, "text", None)
        weights = None if weights is None else weights.weights
        self._cond_rows = params.x.shape[0] if weights is None else sum(len(parts) for parts in weights)

    def on_denoised(self, params: DenoisedParams) -> None:
        x0 = params.x
        height, width = x0.shape[-2:]
        self._first_size = self._first_size or (height, width)
        second_pass = (height, width) != self._first_size
        if min(max(self.weight, 0.0), 1.0) == 0.0:
            return
        k = self.k * 2 if second_pass and self.hr_option != HiresOption.LOW_RES_ONLY else self.k
        uncond_rows = max(x0.shape[0] - self._cond_rows, 0)
        latent = self.latent(height, width, x0.device)
        params.x = corrected(
            x0.float(), latent, k=k, weight=self.weight, detail=self.detail, uncond_rows=uncond_rows
        ).to(x0.dtype)
        self.steps += 1
