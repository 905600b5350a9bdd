"""The denoising loop: one diffusers scheduler, one UNet, classifier-free guidance.

The loop is the one diffusers' pipelines run (scale_model_input -> UNet -> CFG -> scheduler.step), so that
our pixels equal theirs for the same weights, noise and scheduler. The A1111 flavour lives in how the
scheduler was configured (modules/samplers.py) and how the noise was made (modules/rng.py).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass
class Guidance:
    """Text conditioning for one batch: positive and negative, plus SDXL's pooled embeds and time ids."""
    cond: torch.Tensor                      # (B, T, D)
    uncond: torch.Tensor                    # (B, T', D); T' may differ from T (long prompts)
    cfg_scale: float
    added_cond: dict | None = None          # SDXL: {"text_embeds": (B, P), "time_ids": (B, 6)}
    added_uncond: dict | None = None
    extra_channels: torch.Tensor | None = None   # inpainting (B, 5, h, w) / depth (B, 1, h, w) UNet inputs

    @property
    def uses_uncond(self) -> bool:
        # cfg 1 gives uncond + 1*(cond - uncond) = cond: skip the wasted half of the work.
        return self.cfg_scale != 1.0


@dataclass
class LatentBlend:
    """Inpainting with an ordinary checkpoint: after every step the area to keep is put back, noised to the level
    of the next step (clean after the last), as diffusers' inpaint pipeline does for 4-channel UNets."""
    init_latents: torch.Tensor
    noise: torch.Tensor
    mask: torch.Tensor          # 1 = repaint

    def apply(self, scheduler, latents, next_timestep) -> torch.Tensor:
        keep = self.init_latents
        if next_timestep is not None:
            keep = scheduler.add_noise(keep, self.noise, next_timestep.reshape(1).repeat(keep.shape[0]))
        return (1 - self.mask) * keep + self.mask * latents


@dataclass
class LoopHooks:
    # (steps done, total, latents, the scheduler's denoised estimate or None) — the estimate feeds live previews
    on_step: Callable[[int, int, torch.Tensor, torch.Tensor | None], None] | None = None
    should_stop: Callable[[], bool] | None = None
    step_kwargs: dict = field(default_factory=dict)


def _step_kwargs(scheduler, generators, eta) -> dict:
    accepted = set(inspect.signature(scheduler.step).parameters)
    kwargs = {}
    if "generator" in accepted and generators is not None:
        kwargs["generator"] = generators
    if "eta" in accepted and eta is not None:
        kwargs["eta"] = eta
    return kwargs


def _unet_input(scheduler, latents: torch.Tensor, t, extra_channels):
    x = scheduler.scale_model_input(latents, t)
    if extra_channels is not None:
        x = torch.cat([x, extra_channels.to(x.dtype)], dim=1)
    return x


def predict_noise(unet, scheduler, latents, t, g: Guidance) -> torch.Tensor:
    """One guided prediction. cond and uncond share a UNet call when their token counts match (as A1111)."""
    x = _unet_input(scheduler, latents, t, g.extra_channels)
    if not g.uses_uncond:
        return unet(x, t, encoder_hidden_states=g.cond, added_cond_kwargs=g.added_cond).sample
    if g.uncond.shape[1] == g.cond.shape[1]:
        added = None
        if g.added_cond is not None:
            added = {k: torch.cat([g.added_uncond[k], g.added_cond[k]]) for k in g.added_cond}
        out = unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([g.uncond, g.cond]),
                   added_cond_kwargs=added).sample
        pred_uncond, pred_cond = out.chunk(2)
    else:
        pred_uncond = unet(x, t, encoder_hidden_states=g.uncond, added_cond_kwargs=g.added_uncond).sample
        pred_cond = unet(x, t, encoder_hidden_states=g.cond, added_cond_kwargs=g.added_cond).sample
    return pred_uncond + g.cfg_scale * (pred_cond - pred_uncond)


@torch.no_grad()
def denoise(unet, scheduler, latents: torch.Tensor, guidance: Guidance, *, generators=None, eta=None,
            hooks: LoopHooks | None = None, begin_index: int = 0, progress_offset: int = 0,
            progress_total: int | None = None, blend: LatentBlend | None = None) -> torch.Tensor:
    """Run the timesteps of an already configured scheduler from `begin_index` on (img2img starts part-way;
    its latents are the noised init image, txt2img's the noise scaled by init_noise_sigma)."""
    hooks = hooks or LoopHooks()
    kwargs = _step_kwargs(scheduler, generators, eta)
    timesteps = scheduler.timesteps[begin_index:]
    total = progress_total or len(timesteps)
    for i, t in enumerate(timesteps):
        if hooks.should_stop is not None and hooks.should_stop():
            break
        pred = predict_noise(unet, scheduler, latents, t, guidance)
        out = scheduler.step(pred, t, latents, **kwargs, return_dict=True)
        latents = out.prev_sample
        if blend is not None:
            latents = blend.apply(scheduler, latents, timesteps[i + 1] if i + 1 < len(timesteps) else None)
        if hooks.on_step is not None:
            hooks.on_step(progress_offset + i + 1, total, latents, getattr(out, "pred_original_sample", None))
    return latents
