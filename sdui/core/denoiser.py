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
from dataclasses import dataclass, field
from typing import Protocol

import torch

from sdui.core.hooks import AfterCFGParams, DenoisedParams, DenoiserParams, ProcessingHooks
from sdui.core.schedules import sigma_to_t

PREDICTION_TYPES = ("epsilon", "v_prediction")


@dataclass
class ScheduledConditioning:
    """Conditioning that changes during sampling (prompt editing `[a:b:10]`, alternation `[a|b]`): per row, a
    list of (last step it applies to, tensor), in step order. At step s (the model call, from 0) a row uses its
    first entry with last step >= s, and its first entry again past the end, as A1111's reconstruct does."""

    schedules: list[list[tuple[int, torch.Tensor]]]

    def at(self, step: int) -> torch.Tensor:
        rows = []
        for entries in self.schedules:
            chosen = entries[0][1]
            for last_step, tensor in entries:
                if step <= last_step:
                    chosen = tensor
                    break
            rows.append(chosen)
        return stack_rows(rows)


def stack_rows(rows: list[torch.Tensor]) -> torch.Tensor:
    """Rows of token embeddings of different lengths (prompts of different chunk counts) stacked after repeating
    each shorter row's last vector, as A1111 lines up the conds of a batch."""
    longest = max(r.shape[0] for r in rows)
    if rows[0].ndim == 2 and any(r.shape[0] != longest for r in rows):
        rows = [torch.cat([r, r[-1:].repeat(longest - r.shape[0], 1)]) if r.shape[0] < longest else r for r in rows]
    return torch.stack(rows)


Cond = torch.Tensor | ScheduledConditioning


def cond_at(cond: Cond, step: int) -> torch.Tensor:
    return cond.at(step) if isinstance(cond, ScheduledConditioning) else cond


def _added_at(added: dict | None, step: int) -> dict | None:
    return None if added is None else {k: cond_at(v, step) for k, v in added.items()}


@dataclass
class TextConditioning:
    """A batch's text conditioning (A1111's c and uc); SDXL adds pooled embeddings and time ids.

    Composable diffusion (`a AND b :0.5`) gives an image several cond rows: `weights[i]` lists image i's
    (row of cond, weight); None means one row per image with weight 1."""

    cond: Cond  # (R, T, D): R = B without AND
    uncond: Cond  # (B, T', D); T' may differ from T (long prompts)
    added_cond: dict | None = None  # SDXL: {"text_embeds": (R, P), "time_ids": (R, 6)}
    added_uncond: dict | None = None
    weights: list[list[tuple[int, float]]] | None = None


@dataclass
class UNetCall:
    """What a residual contributor sees of one UNet call (cond and uncond batched together when they are)."""

    sample: torch.Tensor  # the scaled latent input, without extra image channels
    timestep: torch.Tensor
    encoder_hidden_states: torch.Tensor
    added_cond_kwargs: dict | None
    step: int
    total: int
    uncond_rows: int = 0  # the first rows are the negative prompt's (ControlNet's "ControlNet is more important")


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


@dataclass
class UncondOptions:
    """A1111's options about the negative prompt's half of the work, and the infotext entries they write
    (`notes`, the run's) when they act."""

    skip_early_cond: float = 0.0  # skip the uncond while step / total <= this ("Skip Early CFG")
    s_min_uncond: float = 0.0  # NGMS: below this sigma skip the uncond on odd steps ...
    s_min_uncond_all: bool = False  # ... or on every step
    pad: str | None = None  # "empty": pad the shorter with empty-prompt chunks; "v0": the uncond's last vector
    empty: torch.Tensor | None = None  # the empty prompt's encoding (1, T0, D), for "empty"
    notes: dict = field(default_factory=dict)

    def skips(self, step: int, total: int, sigma: float) -> bool:
        if self.skip_early_cond and step / max(total, 1) <= self.skip_early_cond:
            self.notes["Skip Early CFG"] = self.skip_early_cond
            return True
        if (step % 2 or self.s_min_uncond_all) and self.s_min_uncond > 0 and sigma < self.s_min_uncond:
            self.notes["NGMS"] = self.s_min_uncond
            if self.s_min_uncond_all:
                self.notes["NGMS all steps"] = True
            return True
        return False

    def padded(self, cond: torch.Tensor, uncond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cond and uncond of one token count, so that they go through the UNet in one batch."""
        if self.pad is None or cond.shape[1] == uncond.shape[1]:
            return cond, uncond
        if self.pad == "v0":
            self.notes["Pad conds v0"] = True
            if uncond.shape[1] < cond.shape[1]:
                filler = uncond[:, -1:].repeat(1, cond.shape[1] - uncond.shape[1], 1)
                return cond, torch.cat([uncond, filler], dim=1)
            return cond, uncond[:, : cond.shape[1]]
        self.notes["Pad conds"] = True
        empty = self.empty.to(cond)
        repeats = (cond.shape[1] - uncond.shape[1]) // empty.shape[1]

        def pad(tensor, n):
            return torch.cat([tensor, empty.repeat(tensor.shape[0], n, 1)], dim=1)

        return (pad(cond, -repeats), uncond) if repeats < 0 else (cond, pad(uncond, repeats))


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
        uncond_options: UncondOptions | None = None,
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
        # set by the sampling step for one run: DDIM CFG++ scales the guidance down and needs the unguided
        # prediction; inpainting with a k-diffusion sampler puts back the kept area into the guided prediction
        self.cond_scale_multiplier = 1.0
        self.keep_uncond = False
        self.inpaint_blend = None
        self.uncond_options = uncond_options or UncondOptions()

    @property
    def uses_uncond(self) -> bool:
        # cfg 1 gives uncond + 1 * (cond - uncond) = cond: skip the wasted half of the work
        return self.keep_uncond or self.text.weights is not None or self.cfg_scale * self.cond_scale_multiplier != 1.0

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
        weights = self.text.weights
        rows = None if weights is None else torch.tensor([i for i, parts in enumerate(weights) for _ in parts])
        skipped = self.uses_uncond and self.uncond_options.skips(step, total, float(sigma[0]))
        text_cond, text_uncond = params.text_cond, params.text_uncond
        if self.uses_uncond and not skipped:
            text_cond, text_uncond = self.uncond_options.padded(text_cond, text_uncond)
        groups = [(text_uncond, _added_at(self.text.added_uncond, step), None)] if self.uses_uncond else []
        groups.append((text_cond, _added_at(self.text.added_cond, step), rows))
        if skipped:
            groups = groups[1:]
        has_uncond = self.uses_uncond and not skipped  # then groups[0] is the negative prompt's
        outputs = self._model(x * c_in, timestep, params.image_cond, groups, step, total, has_uncond)

        # 4. denoised predictions, guidance (A1111's combine_denoised: each cond row of an image adds its weight)
        denoised = [
            _take(c_skip, index) * _take(x, index) + _take(c_out, index) * out.float()
            for out, (_, _, index) in zip(outputs, groups, strict=True)
        ]
        both = DenoisedParams(torch.cat(denoised), step, total, inner_model=self.unet)
        self.hooks.on_denoised(both)
        parts = list(both.x.split([d.shape[0] for d in denoised]))
        if skipped:  # A1111 puts each image's first cond prediction where its uncond would be
            first_rows = (
                [parts[0][i] for i in range(x.shape[0])] if weights is None else [parts[0][p[0][0]] for p in weights]
            )
            parts.insert(0, torch.stack(first_rows))
        if self.uses_uncond:
            uncond, cond = parts
            scale = self.cfg_scale * self.cond_scale_multiplier
            if weights is None:
                guided = uncond + scale * (cond - uncond)
            else:
                guided = uncond.clone()
                for i, image_parts in enumerate(weights):
                    for row, weight in image_parts:
                        guided[i] += (cond[row] - uncond[i]) * (weight * scale)
            self.last = {"uncond": uncond, "cond": cond}
        else:
            guided = parts[0]
            self.last = {"cond": guided}
        if self.inpaint_blend is not None:  # A1111 blends after CFG, before its after-CFG callback
            guided = self.inpaint_blend(guided)
        after = AfterCFGParams(guided, step, total)
        self.hooks.after_cfg(after)
        self.last["combined"] = after.x
        return after.x

    def _model(
        self,
        x_in: torch.Tensor,
        timestep: torch.Tensor,
        image_cond: torch.Tensor | None,
        groups: list[tuple[torch.Tensor, dict | None, torch.Tensor | None]],
        step: int,
        total: int,
        has_uncond: bool = False,
    ) -> list[torch.Tensor]:
        """UNet outputs for each (text, added, images) group, in one batched call when the token counts match.
        `images` picks the latents each text row goes with (None: row i with latent i)."""
        dtype = self.unet.dtype
        timestep = torch.as_tensor(timestep)
        calls = []
        for text, added, index in groups:
            t = timestep if timestep.ndim == 0 else _take(timestep, index)
            image = None if image_cond is None else _take(image_cond, index).to(dtype)
            calls.append((_take(x_in, index).to(dtype), t, image, text.to(dtype), added))
        if len(calls) > 1 and all(c[3].shape[1] == calls[0][3].shape[1] for c in calls):
            sizes = [c[0].shape[0] for c in calls]
            added = None
            if calls[0][4] is not None:
                added = {k: torch.cat([c[4][k] for c in calls]).to(dtype) for k in calls[0][4]}
            t = timestep if timestep.ndim == 0 else torch.cat([c[1] for c in calls])
            image = None if image_cond is None else torch.cat([c[2] for c in calls])
            hidden = torch.cat([c[3] for c in calls])
            uncond_rows = sizes[0] if has_uncond else 0
            out = self._unet(torch.cat([c[0] for c in calls]), t, image, hidden, added, step, total, uncond_rows)
            return list(out.split(sizes))
        return [
            self._unet(
                sample,
                t,
                image,
                hidden,
                None if a is None else {k: v.to(dtype) for k, v in a.items()},
                step,
                total,
                sample.shape[0] if has_uncond and i == 0 else 0,
            )
            for i, (sample, t, image, hidden, a) in enumerate(calls)
        ]

    def _unet(self, sample, timestep, image_cond, hidden, added, step, total, uncond_rows=0) -> torch.Tensor:
        residuals = None
        call = UNetCall(sample, timestep, hidden, added, step, total, uncond_rows)
        for contributor in self.contributors:
            found = contributor(call)
            if found is not None:
                residuals = found if residuals is None else residuals + found
        model_input = sample if image_cond is None else torch.cat([sample, image_cond], dim=1)
        extra = {}
        if residuals is not None:
            extra = {"down_block_additional_residuals": residuals.down, "mid_block_additional_residual": residuals.mid}
        return self.unet(model_input, timestep, encoder_hidden_states=hidden, added_cond_kwargs=added, **extra).sample


def _take(value: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    return value if index is None else value[index.to(value.device)]
