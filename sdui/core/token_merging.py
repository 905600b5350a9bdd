"""Token merging (ToMe for SD, Bolya & Hoffman 2023): A1111's "Token merging ratio" settings.

Before a transformer block's self-attention, the most similar tokens are averaged into one; the attention runs on
fewer tokens and its output is copied back to each token that was merged ("unmerge"). As A1111 applies it (with
tomesd: merge_attn only, max_downsample 1, sx = sy = 2, use_rand False):

1. only the self-attention (attn1) at the full latent resolution merges; cross-attention and the MLP do not;
2. destinations: the top-left token of each 2x2 cell, sources: the other three (fixed, so the same seed gives
   the same image); each source's most similar destination (cosine similarity) is its match;
3. the `ratio * tokens` sources with the best matches are merged (averaged) into their destinations.

It acts through diffusers' attention-processor interface: the full-resolution self-attention layers get a
processor that merges, calls the layer's own processor (diffusers' default, or whatever another feature put there)
on the merged tokens and unmerges. tomesd measures similarity on the block's input before its layer norm; a
processor sees the normed tokens only, so those are the measure here (close, not equal). The processors are put in
for one sampling pass (`merged_tokens`) and the own ones put back after it, so features that change processors
between passes (hypernetworks, per batch) never capture ours.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sdui.request import Img2ImgRequest

SX = SY = 2  # destinations: one per SY x SX cell (tomesd's sx, sy)
MAX_DOWNSAMPLE = 1  # merge only where the tokens are the latent's own pixels (A1111's tomesd default)


def merging_ratio(request, settings, *, hires: bool = False) -> float:
    """A1111's get_token_merging_ratio: img2img takes its own setting unless the request overrides the general
    one; the hires pass takes token_merging_ratio_hr, or the general ratio when that is 0."""
    general = float(settings.token_merging_ratio)
    if isinstance(request, Img2ImgRequest):
        if "token_merging_ratio" in (request.override_settings or {}):
            return general
        return float(settings.token_merging_ratio_img2img) or general
    if hires:
        return float(settings.token_merging_ratio_hr) or general
    return general


# ------------------------------------------------------------------------------------------- the matching (pure)
def destinations(height: int, width: int, device=None) -> torch.Tensor:
    """(height * width,) bool, row-major: True at the top-left token of each whole SY x SX cell. Rows and columns
    past the last whole cell (odd sizes) hold sources only, as in tomesd."""
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    row_ok = (rows % SY == 0) & (rows < height // SY * SY)
    col_ok = (cols % SX == 0) & (cols < width // SX * SX)
    return (row_ok[:, None] & col_ok[None, :]).flatten()


@dataclass(frozen=True)
class MergePlan:
    """Which tokens of each row of a batch are merged into which: all (B, ...) long tensors."""

    kept: torch.Tensor  # (B, N - r) positions of the tokens that stay, ascending
    merged: torch.Tensor  # (B, r) positions of the tokens merged away
    into: torch.Tensor  # (B, r) for each merged token, the index in `kept` of the token it joins

    @property
    def tokens(self) -> int:
        return self.kept.shape[1] + self.merged.shape[1]


def plan_merge(metric: torch.Tensor, is_destination: torch.Tensor, r: int) -> MergePlan | None:
    """Bipartite soft matching: each source token (not `is_destination`) is matched with its most similar
    destination by the cosine similarity of `metric` (B, N, C); the `r` best-matched sources are merged. None when
    nothing is merged."""
    batch, n, _ = metric.shape
    sources = (~is_destination).nonzero().flatten()
    targets = is_destination.nonzero().flatten()
    r = min(r, sources.numel())
    if r <= 0 or targets.numel() == 0:
        return None
    # cosine similarity; each source's own length divides all its scores alike, so it is applied after the max
    candidates = metric[:, sources].float()
    scores = candidates @ F.normalize(metric[:, targets].float(), dim=-1).transpose(1, 2)  # (B, sources, dest.)
    best, best_target = scores.max(dim=-1)
    best = best / candidates.norm(dim=-1).clamp_min(1e-12)
    chosen = torch.sort(best, dim=-1, descending=True, stable=True).indices[:, :r]  # stable: ties in a fixed order
    merged = sources[chosen]
    joins = targets[best_target.gather(1, chosen)]
    keep = torch.ones(batch, n, dtype=torch.bool, device=metric.device)
    keep.scatter_(1, merged, False)
    kept = keep.nonzero()[:, 1].view(batch, n - r)
    slot = torch.zeros(batch, n, dtype=torch.long, device=metric.device)
    slot.scatter_(1, kept, torch.arange(n - r, device=metric.device).expand(batch, -1))
    return MergePlan(kept=kept, merged=merged, into=slot.gather(1, joins))


def _rows(index: torch.Tensor, channels: int) -> torch.Tensor:
    return index[..., None].expand(-1, -1, channels)


def merge(x: torch.Tensor, plan: MergePlan) -> torch.Tensor:
    """(B, N, C) -> (B, N - r, C): the kept tokens, each the mean of itself and the tokens merged into it.

    The sums are one index_add over the flattened batch (on the CPU two to three times as fast as scatter_reduce's
    mean, and exactly equal); on CUDA its accumulation order, like tomesd's scatter_reduce, is not fixed unless
    torch's deterministic mode is on."""
    b, n_kept = plan.kept.shape
    c = x.shape[-1]
    kept = x.gather(1, _rows(plan.kept, c)).reshape(b * n_kept, c)
    merged = x.gather(1, _rows(plan.merged, c)).reshape(-1, c)
    into = (plan.into + torch.arange(b, device=x.device)[:, None] * n_kept).flatten()
    sums = kept.index_add(0, into, merged)
    counts = torch.ones(b * n_kept, device=x.device).index_add_(0, into, torch.ones(into.numel(), device=x.device))
    return (sums / counts[:, None]).to(x.dtype).view(b, n_kept, c)  # float32 counts: exact in any dtype


def unmerge(y: torch.Tensor, plan: MergePlan) -> torch.Tensor:
    """(B, N - r, C) -> (B, N, C): every token takes the value of the kept token it is (or was merged into)."""
    b, _, c = y.shape
    out = y.new_empty(b, plan.tokens, c)
    out.scatter_(1, _rows(plan.kept, c), y)
    out.scatter_(1, _rows(plan.merged, c), y.gather(1, _rows(plan.into, c)))
    return out


def grid_of(tokens: int, latent_size: tuple[int, int], max_downsample: int = MAX_DOWNSAMPLE) -> tuple[int, int] | None:
    """(height, width) of a layer's token grid when it works at most `max_downsample` times below the latent's size
    (each UNet level halves it, rounding up); None for deeper layers or tokens that fit no level."""
    height, width = latent_size
    down = 1
    while down <= max_downsample:
        h, w = math.ceil(height / down), math.ceil(width / down)
        if h * w == tokens:
            return h, w
        down *= 2
    return None


# -------------------------------------------------------------------------------------- the attention processor
class _Pass:
    """What the processors of one sampling pass share: the ratio, the latent size of the UNet's current call (the
    token grid of a layer is known from it), and whether the pass is still on."""

    def __init__(self, ratio: float):
        self.ratio = ratio
        self.latent_size: tuple[int, int] | None = None
        self.active = True

    def record(self, module, args, kwargs) -> None:
        sample = args[0] if args else kwargs.get("sample")
        if sample is not None:
            self.latent_size = (int(sample.shape[-2]), int(sample.shape[-1]))

    def plan_for(self, hidden_states: torch.Tensor) -> MergePlan | None:
        if not self.active or self.latent_size is None or hidden_states.ndim != 3:
            return None
        n = hidden_states.shape[1]
        grid = grid_of(n, self.latent_size)
        if grid is None:
            return None
        return plan_merge(hidden_states, destinations(*grid, device=hidden_states.device), int(n * self.ratio))


class TokenMergingAttnProcessor:
    """Self-attention on merged tokens: merge, the layer's own processor, unmerge. Anything else (cross-attention,
    a mask, a deeper level, a pass that has ended) goes to the own processor untouched."""

    def __init__(self, inner, state: _Pass):
        self.inner, self.state = inner, state

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        plan = None
        if encoder_hidden_states is None and attention_mask is None:
            plan = self.state.plan_for(hidden_states)
        if plan is None:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, **kwargs)
        out = self.inner(attn, merge(hidden_states, plan), None, None, **kwargs)
        return unmerge(out, plan)


def self_attention_layers(unet) -> list:
    """The self-attention layers of the UNet's transformer blocks (diffusers' Attention modules named attn1)."""
    return [
        module
        for name, module in unet.named_modules()
        if name.endswith(".attn1") and hasattr(module, "set_processor") and not module.is_cross_attention
    ]


@contextmanager
def merged_tokens(unet, ratio: float) -> Iterator[None]:
    """While inside: the UNet's full-resolution self-attention merges `ratio` of its tokens. Ratio 0 changes
    nothing. On exit the layers' own processors are back, the very objects; a processor of ours that something
    else captured meanwhile does nothing from then on."""
    ratio = float(ratio)
    if not ratio > 0:  # also NaN
        yield
        return
    state = _Pass(min(ratio, 1.0))
    own = {}
    handle = unet.register_forward_pre_hook(state.record, with_kwargs=True)
    try:
        for layer in self_attention_layers(unet):
            own[layer] = layer.processor
            layer.set_processor(TokenMergingAttnProcessor(layer.processor, state))
        yield
    finally:
        state.active = False
        handle.remove()
        for layer, processor in own.items():
            current = layer.processor
            if isinstance(current, TokenMergingAttnProcessor) and current.state is state:
                layer.set_processor(processor)
