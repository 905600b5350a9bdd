"""The sampling loop: a configured diffusers scheduler walks its timesteps, the Denoiser predicts at each.

The loop is the one diffusers' pipelines run (scale_model_input -> model -> scheduler.step), so that our pixels
equal theirs for the same weights, noise and scheduler. The model call goes through the Denoiser, which works in
k-diffusion terms (x at noise level sigma -> denoised), so hooks see what A1111's see: the scheduler's UNet input is
turned into x and sigma, and the Denoiser's answer back into the epsilon or v the scheduler expects (exact up to
float rounding). The A1111 flavour lives in how the scheduler was configured (samplers.py) and how the noise was
made (rng.py).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch

from sdui.core.denoiser import Denoiser, model_output_from_denoised
from sdui.core.schedules import t_to_sigma


@dataclass
class LatentBlend:
    """Inpainting with an ordinary checkpoint: after every step the area to keep is put back, noised to the level
    of the next step (clean after the last), as diffusers' inpaint pipeline does for 4-channel UNets."""

    init_latents: torch.Tensor
    noise: torch.Tensor
    mask: torch.Tensor  # 1 = repaint

    def apply(self, scheduler, latents, next_timestep) -> torch.Tensor:
        keep = self.init_latents
        if next_timestep is not None:
            keep = scheduler.add_noise(keep, self.noise, next_timestep.reshape(1).repeat(keep.shape[0]))
        return (1 - self.mask) * keep + self.mask * latents


def _step_kwargs(scheduler, generators, eta) -> dict:
    accepted = set(inspect.signature(scheduler.step).parameters)
    kwargs = {}
    if "generator" in accepted and generators is not None:
        kwargs["generator"] = generators
    if "eta" in accepted and eta is not None:
        kwargs["eta"] = eta
    return kwargs


@torch.no_grad()
def denoise(
    scheduler,
    latents: torch.Tensor,
    denoiser: Denoiser,
    *,
    train_sigmas: torch.Tensor,
    generators=None,
    eta: float | None = None,
    begin_index: int = 0,
    blend: LatentBlend | None = None,
    on_step: Callable[[int, int, torch.Tensor], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """Run the timesteps of an already configured scheduler from `begin_index` on (img2img starts part-way;
    its latents are the noised init image, txt2img's the noise scaled by init_noise_sigma).

    on_step(steps done, steps in this run, latents) follows every step; should_stop() is asked before each."""
    kwargs = _step_kwargs(scheduler, generators, eta)
    timesteps = scheduler.timesteps[begin_index:]
    total = len(timesteps)
    for i, t in enumerate(timesteps):
        if should_stop is not None and should_stop():
            break
        model_input = scheduler.scale_model_input(latents, t)
        sigma = t_to_sigma(t.cpu(), train_sigmas).to(latents.device)
        x = model_input.float() * (sigma**2 + 1) ** 0.5  # the scheduler's latents in k-diffusion scaling
        denoised = denoiser(x, sigma, step=i, total=total, timestep=t)
        output = model_output_from_denoised(x, denoised, sigma, denoiser.prediction_type)
        latents = scheduler.step(output.to(latents.dtype), t, latents, **kwargs, return_dict=True).prev_sample
        if blend is not None:
            latents = blend.apply(scheduler, latents, timesteps[i + 1] if i + 1 < total else None)
        if on_step is not None:
            on_step(i + 1, total, latents)
    return latents
