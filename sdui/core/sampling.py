"""Step 5 of a generation: run the planned sampler over the Denoiser, A1111's way.

The sampler functions (k_samplers, timestep_samplers) are pure; here they get their model:
  * k-diffusion samplers and LCM call the Denoiser at (x, sigma) and get the guided denoised latent;
  * DDIM, PLMS and UniPC work on the variance-preserving latent at a training timestep and get the guided noise.
Every model call counts as one of A1111's sampling steps (second-order samplers make two per step: prompt
editing and hooks count them that way), asks first whether to stop (interrupt, skip: the latest prediction is
what comes back, as in A1111), and keeps the latest prediction for previews.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from sdui.core import k_samplers, timestep_samplers
from sdui.core.denoiser import Denoiser
from sdui.core.sampler_setup import SamplerSetup


class Stopped(Exception):  # a signal inside sampling, never seen outside this module
    pass


@dataclass
class MaskBlend:
    """Inpainting: what to keep comes from the original, A1111's `x * nmask + init_latent * mask`."""

    init_latents: torch.Tensor  # the clean init latents
    mask: torch.Tensor  # 1 = repaint

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask + self.init_latents.to(x) * (1 - self.mask)


class _Calls:
    """The Denoiser as a sampler's model: counts calls, stops when asked, remembers the latest prediction."""

    def __init__(self, denoiser: Denoiser, total: int, should_stop: Callable[[], bool] | None):
        self.denoiser = denoiser
        self.total = total
        self.should_stop = should_stop
        self.count = 0
        self.latest: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, sigma, timestep=None) -> torch.Tensor:
        if self.should_stop is not None and self.should_stop():
            raise Stopped
        denoised = self.denoiser(x, sigma, step=self.count, total=self.total, timestep=timestep)
        self.count += 1
        self.latest = denoised
        return denoised


class _LcmModel:
    """A1111's LCM denoiser: the timestep snapped to the 50 distilled ones (19, 39, ..., 999), and the consistency
    model's boundary condition around the usual prediction."""

    def __init__(self, calls: _Calls, table: torch.Tensor, skip: int = 20):
        self.calls, self.log_table, self.skip = calls, table.log(), skip

    def __call__(self, x, sigma):
        sigma = torch.as_tensor(sigma, dtype=torch.float32)
        index = int(torch.argmin((sigma.log().cpu() - self.log_table).abs()))
        t = index * self.skip + self.skip - 1
        denoised = self.calls(x, sigma, timestep=torch.tensor(float(t)))
        ts = 10.0 * t
        c_skip, c_out = 0.25 / (ts**2 + 0.25), ts / math.sqrt(ts**2 + 0.25)
        result = c_out * denoised + c_skip * x
        self.calls.latest = result
        return result


class _TimestepModel:
    """A1111's CompVis timesteps denoiser: the variance-preserving latent x_t at training timestep t (fractional
    for UniPC) -> the guided noise prediction; inpainting puts back what is kept before the model sees x_t."""

    def __init__(self, calls: _Calls, train_sigmas: torch.Tensor, blend: MaskBlend | None):
        self.calls, self.train_sigmas, self.blend = calls, train_sigmas, blend
        self._x_sigma: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, x_t, t):
        if self.blend is not None:
            x_t = self.blend(x_t)
        sigma = self.train_sigmas[min(int(t), len(self.train_sigmas) - 1)].to(x_t.device)
        x = x_t * (1 + sigma**2) ** 0.5  # k-diffusion scaling of the same latent
        denoised = self.calls(x, sigma, timestep=torch.tensor(float(t)))
        self._x_sigma = (x, sigma)
        return (x - denoised) / sigma

    def uncond_eps(self) -> torch.Tensor:
        """DDIM CFG++: the unguided noise prediction of the latest call."""
        x, sigma = self._x_sigma
        return (x - self.calls.denoiser.last["uncond"]) / sigma


def sample(
    setup: SamplerSetup,
    denoiser: Denoiser,
    x: torch.Tensor,
    *,
    noise: Callable,
    train_sigmas: torch.Tensor,
    blend: MaskBlend | None = None,
    on_step: Callable[[int, int, torch.Tensor], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[torch.Tensor, bool]:
    """Walk the planned schedule from the starting latents `x` (already noised to its first level).

    Returns (latents, stopped): when stopped early, the latest denoised prediction (as A1111 returns it).
    `noise(sigma, sigma_next)` is the sampler's noise source (per-image generators or Brownian trees)."""
    calls = _Calls(denoiser, setup.model_calls, should_stop)
    reported = {"n": 0}

    def step(i, latents, prediction):
        reported["n"] += 1
        if on_step is not None:
            on_step(reported["n"], setup.steps, latents)

    kwargs = dict(setup.kwargs)
    try:
        if setup.kind == "timesteps":
            model = _TimestepModel(calls, train_sigmas, blend)
            if setup.info.function == "ddim_cfgpp":
                denoiser.cond_scale_multiplier, denoiser.keep_uncond = 1 / 12.5, True
                kwargs["uncond_eps"] = model.uncond_eps
                function = timestep_samplers.ddim
            else:
                function = getattr(timestep_samplers, setup.info.function)
            timesteps = setup.timesteps.to(x.device)
            alphas_cumprod = 1 / (1 + train_sigmas.double() ** 2)
            out = function(model, x, timesteps, alphas_cumprod, noise=noise, step=step, **kwargs)
        else:
            denoiser.inpaint_blend = blend
            model = _LcmModel(calls, setup.lcm_table) if setup.kind == "lcm" else calls
            function = getattr(k_samplers, setup.info.function)
            if setup.info.function == "dpm_fast":
                out = function(model, x, *setup.sigma_range, setup.steps, noise=noise, step=step, **kwargs)
            elif setup.info.function == "dpm_adaptive":
                out = function(model, x, *setup.sigma_range, noise=noise, step=step, **kwargs)
            else:
                out = function(model, x, setup.walk.to(x.device), noise=noise, step=step, **kwargs)
    except Stopped:
        return (calls.latest if calls.latest is not None else x), True
    finally:
        denoiser.inpaint_blend = None
    if blend is not None:  # A1111 puts the kept area back once more after sampling
        out = blend(out)
    return out, False
