"""The Denoiser: one guided model evaluation at a noise level, as A1111's CFGDenoiser does it.

    denoised = denoiser(x, sigma, step=i, total=n)

`x` is the noisy latent in k-diffusion scaling (x = x0 + sigma * noise), `sigma` its noise level. One call:
  1. picks the text conditioning for this step (prompt editing changes it during sampling);
  2. lets hooks see and replace x, the extra image channels, sigma and the conditioning (on_denoiser);
  3. scales the input (c_in), turns sigma into the UNet's (fractional) timestep, appends the extra image channels
     (inpainting: mask + masked image, depth: depth map), and runs cond and uncond in one batched UNet call when
     their token counts match, with the additive residuals of every contributor (ControlNet) added in;
  4. turns the model's output (epsilon or v) into denoised latents (c_skip, c_out), lets hooks see both halves
     (on_denoised), combines them with classifier-free guidance, and lets hooks see the result (after_cfg).
The arithmetic around the UNet runs in float32 whatever the model's dtype, as A1111's samplers do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from sdui.core.hooks import AfterCFGParams, DenoisedParams, DenoiserParams, ProcessingHooks
from sdui.core.schedules import sigma_to_t

PREDICTION_TYPES = ("epsilon", "v_prediction")


@dataclass
class ScheduledConditioning:
    """Conditioning that changes during sampling (prompt editing `[a:b:0.5]`): per image, a list of
    (last step it applies to, tensor (T, D)), in step order. Image i at step s uses its first entry with
    last step >= s (the last entry beyond that)."""

    schedules: list[list[tuple[int, torch.Tensor]]]

    def at(self, step: int) -> torch.Tensor:
        rows = []
        for entries in self.schedules:
            chosen = entries[-1][1]
            for last_step, tensor in entries:
                if step <= last_step:
                    chosen = tensor
                    break
            rows.append(chosen)
        return torch.stack(rows)


Cond = torch.Tensor | ScheduledConditioning


def cond_at(cond: Cond, step: int) -> torch.Tensor:
    return cond.at(step) if isinstance(cond, ScheduledConditioning) else cond


@dataclass
class TextConditioning:
    """A batch's text conditioning (A1111's c and uc); SDXL adds pooled embeddings and time ids."""

    cond: Cond  # (B, T, D)
    uncond: Cond  # (B, T', D); T' may differ from T (long prompts)
    added_cond: dict | None = None  # SDXL: {"text_embeds": (B, P), "time_ids": (B, 6)}
    added_uncond: dict | None = None


@dataclass
class UNetCall:
    """What a residual contributor sees of one UNet call (cond and uncond batched together when they are)."""

    sample: torch.Tensor  # the scaled latent input, without extra image channels
    timestep: torch.Tensor
    encoder_hidden_states: torch.Tensor
    added_cond_kwargs: dict | None
    step: int
    total: int


@dataclass
class Residuals:
    """Additions to the UNet's skip connections (diffusers' down_block_additional_residuals and
    mid_block_additional_residual), as a ControlNet produces them."""

    down: tuple[torch.Tensor, ...]
    mid: torch.Tensor

    def __add__(self, other: Residuals) -> Residuals:
        return Residuals(tuple(a + b for a, b in zip(self.down, other.down, strict=False)), self.mid + other.mid)


class ResidualContributor(Protocol):
    def __call__(self, call: UNetCall) -> Residuals | None:
        """Residuals for this call, or None to add nothing (e.g. outside its start/end steps)."""


def scalings(sigma: torch.Tensor, prediction_type: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c_skip, c_out, c_in) of k-diffusion's discrete DDPM denoisers:
    denoised = c_skip * x + c_out * model(c_in * x)."""
    c_in = 1 / (sigma**2 + 1) ** 0.5
    if prediction_type == "v_prediction":
        return 1 / (sigma**2 + 1), -sigma * c_in, c_in
    return torch.ones_like(sigma), -sigma, c_in


def model_output_from_denoised(
    x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor, prediction_type: str
) -> torch.Tensor:
    """The inverse of the scalings: the epsilon or v that gives `denoised` from `x` at `sigma`."""
    c_skip, c_out, _ = (_per_sample(c, x) for c in scalings(sigma, prediction_type))
    return (denoised - c_skip * x) / c_out


def _per_sample(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    value = value.to(like.device, torch.float32)
    if value.ndim == 0:
        value = value.repeat(like.shape[0])
    return value.reshape(-1, *([1] * (like.ndim - 1)))


class Denoiser:
    def __init__(
        self,
        unet,
        text: TextConditioning,
        *,
        cfg_scale: float,
        prediction_type: str,
        train_sigmas: torch.Tensor,
        image_cond: torch.Tensor | None = None,
        hooks: ProcessingHooks | None = None,
        contributors: Sequence[ResidualContributor] = (),
    ):
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction type must be one of {PREDICTION_TYPES}, not {prediction_type!r}")
        self.unet = unet
        self.text = text
        self.cfg_scale = float(cfg_scale)
        self.prediction_type = prediction_type
        self.train_sigmas = train_sigmas
        self.image_cond = image_cond
        self.hooks = hooks or ProcessingHooks()
        self.contributors = list(contributors)
        # the latest predictions, for live previews: "cond", "uncond" (when guided) and "combined"
        self.last: dict[str, torch.Tensor] = {}

    @property
    def uses_uncond(self) -> bool:
        # cfg 1 gives uncond + 1 * (cond - uncond) = cond: skip the wasted half of the work
        return self.cfg_scale != 1.0

    @torch.no_grad()
    def __call__(
        self,
        x: torch.Tensor,
        sigma: torch.Tensor | float,
        *,
        step: int,
        total: int,
        timestep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # 1-2. this step's conditioning; hooks may replace any input
        sigma = _per_sample(torch.as_tensor(sigma), x).flatten()
        params = DenoiserParams(
            x=x.float(),
            image_cond=self.image_cond,
            sigma=sigma,
            sampling_step=step,
            total_sampling_steps=total,
            text_cond=cond_at(self.text.cond, step),
            text_uncond=cond_at(self.text.uncond, step),
            denoiser=self,
        )
        self.hooks.on_denoiser(params)
        x, sigma = params.x.float(), _per_sample(params.sigma, params.x).flatten()

        # 3. the model, on the scaled input at the matching timestep
        c_skip, c_out, c_in = (_per_sample(c, x) for c in scalings(sigma, self.prediction_type))
        if timestep is None:
            timestep = sigma_to_t(sigma, self.train_sigmas.to(sigma.device))
        conds = [(params.text_uncond, self.text.added_uncond)] if self.uses_uncond else []
        conds.append((params.text_cond, self.text.added_cond))
        outputs = self._model(x * c_in, timestep, params.image_cond, conds, step, total)

        # 4. denoised predictions, guidance
        denoised = [c_skip * x + c_out * out.float() for out in outputs]
        both = DenoisedParams(torch.cat(denoised), step, total, inner_model=self.unet)
        self.hooks.on_denoised(both)
        parts = both.x.chunk(len(denoised))
        if self.uses_uncond:
            uncond, cond = parts
            guided = uncond + self.cfg_scale * (cond - uncond)
            self.last = {"uncond": uncond, "cond": cond}
        else:
            guided = parts[0]
            self.last = {"cond": guided}
        after = AfterCFGParams(guided, step, total)
        self.hooks.after_cfg(after)
        self.last["combined"] = after.x
        return after.x

    def _model(
        self,
        x_in: torch.Tensor,
        timestep: torch.Tensor,
        image_cond: torch.Tensor | None,
        conds: list[tuple[torch.Tensor, dict | None]],
        step: int,
        total: int,
    ) -> list[torch.Tensor]:
        """UNet outputs for each (text, added) conditioning, in one batched call when the token counts match."""
        dtype = self.unet.dtype
        sample = x_in.to(dtype)
        if all(text.shape[1] == conds[0][0].shape[1] for text, _ in conds):
            n = len(conds)
            added = None
            if conds[0][1] is not None:
                added = {k: torch.cat([a[k] for _, a in conds]).to(dtype) for k in conds[0][1]}
            out = self._unet(
                sample.repeat(n, 1, 1, 1),
                _repeat(timestep, n),
                image_cond,
                n,
                torch.cat([text for text, _ in conds]).to(dtype),
                added,
                step,
                total,
            )
            return list(out.chunk(n))
        return [
            self._unet(
                sample,
                timestep,
                image_cond,
                1,
                text.to(dtype),
                {k: v.to(dtype) for k, v in a.items()} if a is not None else None,
                step,
                total,
            )
            for text, a in conds
        ]

    def _unet(self, sample, timestep, image_cond, repeats, hidden, added, step, total) -> torch.Tensor:
        residuals = None
        call = UNetCall(sample, timestep, hidden, added, step, total)
        for contributor in self.contributors:
            found = contributor(call)
            if found is not None:
                residuals = found if residuals is None else residuals + found
        model_input = sample
        if image_cond is not None:
            model_input = torch.cat([sample, image_cond.to(sample.dtype).repeat(repeats, 1, 1, 1)], dim=1)
        extra = {}
        if residuals is not None:
            extra = {"down_block_additional_residuals": residuals.down, "mid_block_additional_residual": residuals.mid}
        return self.unet(model_input, timestep, encoder_hidden_states=hidden, added_cond_kwargs=added, **extra).sample


def _repeat(timestep: torch.Tensor, n: int) -> torch.Tensor:
    timestep = torch.as_tensor(timestep)
    return timestep if timestep.ndim == 0 else timestep.repeat(n)
