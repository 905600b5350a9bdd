"""ControlNet's reference_only: the generation attends to a reference image, with no ControlNet model (the
sd-webui-controlnet extension's "attention injection").

Before each UNet call inside the unit's steps:
  1. the reference image (the unit's map fitted to the generation size, VAE-encoded once per size) is noised to
     the call's timestep, rounded to the training step: sqrt(a) * ref + sqrt(1 - a) * noise, noise from a
     generator seeded with the job's first seed (the extension draws from the global RNG);
  2. the UNet runs on it with the call's timestep and text conditioning ("write"): each self-attention layer keeps
     its normed input tokens, if the unit's weight exceeds the layer's threshold (layers ordered widest first, layer
     i of n has threshold i / n: weight 1 takes every layer, 0.5 the wider half); the output is thrown away;
  3. in the real call ("read") such a layer attends over its own tokens and the kept reference tokens together.
     The negative prompt's rows blend that with plain self-attention by the style fidelity f (threshold_a; cubed
     for SDXL; 1 for "ControlNet is more important", 0 for "My prompt is more important" and in hires fix's second
     pass): uncond = f * plain + (1 - f) * with_reference, so guidance pushes toward the reference by f.
The layers get our processor through diffusers' attention-processor interface (wrapping whatever processor they
had) for the UNet calls of one Denoiser step only: the script puts the own processors back in on_denoised, and a
processor of ours left behind by a failed job does nothing but call the one it wraps (`restore_processors` then
takes it out).

reference_adain(+attn) (matching group-norm statistics as well) is not built yet: the job hook refuses it.
"""

from __future__ import annotations

import numpy as np
import torch

from sdui.controlnet.control_image import control_tensor
from sdui.controlnet.units import HiresOption
from sdui.core.denoiser import UNetCall
from sdui.core.hooks import DenoisedParams, ProcessingHooks
from sdui.core.token_merging import self_attention_layers
from sdui.imaging import vae as vae_io

MAX_CACHED_SIZES = 4  # reference latents kept per unit (first pass, hires pass, a spare)
_FIDELITY_EPS = 1e-5  # below this the negative prompt's rows need no plain attention (the extension's cut-off)


# ------------------------------------------------------------------------------------------------- pure functions
def style_fidelity(threshold_a: float, control_mode: str, *, sdxl: bool, second_pass: bool) -> float:
    """f of step 3: the unit's Style Fidelity, as the control mode and the pass bend it."""
    fidelity = min(max(float(threshold_a), 0.0), 1.0)
    if sdxl:
        fidelity = fidelity**3.0  # the extension: SDXL's attention sharing is unstable at higher values
    if control_mode == "ControlNet is more important":
        return 1.0
    if control_mode == "My prompt is more important" or second_pass:
        return 0.0
    return fidelity


def layer_thresholds(layers: list) -> dict:
    """layer -> i / n, the layers ordered by width, widest first (stable: UNet order within a width)."""
    ordered = sorted(layers, key=lambda layer: -layer.to_q.in_features)
    return {layer: i / len(ordered) for i, layer in enumerate(ordered)}


def noised(latent: torch.Tensor, noise: torch.Tensor, timestep, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """q_sample at the rounded training step: sqrt(a_t) * latent + sqrt(1 - a_t) * noise, per row."""
    t = torch.as_tensor(timestep, device=alphas_cumprod.device).float().round().long()
    a = alphas_cumprod[t.clamp(0, alphas_cumprod.numel() - 1)].reshape(-1, 1, 1, 1).to(latent)
    return a.sqrt() * latent + (1.0 - a).sqrt() * noise


def blended(with_reference: torch.Tensor, plain_uncond: torch.Tensor | None, fidelity: float) -> torch.Tensor:
    """Step 3's rows: the negative prompt's (the first len(plain_uncond)) blended, the prompt's as they are."""
    if plain_uncond is None:
        return with_reference
    out = with_reference.clone()
    n = plain_uncond.shape[0]
    out[:n] = fidelity * plain_uncond + (1.0 - fidelity) * with_reference[:n]
    return out


# ----------------------------------------------------------------------------------------- the attention processor
class _Injection:
    """What the processors of one unit's injection share: write or read, and the call's rows and fidelity."""

    def __init__(self):
        self.mode: str | None = None  # "write", "read", or None (do nothing)
        self.weight = 0.0
        self.fidelity = 0.0
        self.uncond_rows = 0


class ReferenceAttnProcessor:
    """Self-attention that keeps its tokens while the reference passes ("write") and attends to them as well in the
    next call ("read"); anything else, and every call outside an injection, goes to the wrapped processor as is."""

    def __init__(self, inner, state: _Injection, threshold: float):
        self.inner, self.state, self.threshold = inner, state, threshold
        self.bank: list[torch.Tensor] = []

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        state = self.state
        if encoder_hidden_states is not None or hidden_states.ndim != 3:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs)
        if state.mode == "write" and state.weight > self.threshold:
            self.bank.append(hidden_states.detach().clone())
        if state.mode != "read" or not self.bank:
            return self.inner(attn, hidden_states, None, attention_mask, *args, **kwargs)
        context = torch.cat([hidden_states, *[b.to(hidden_states) for b in self.bank]], dim=1)
        self.bank = []
        out = self.inner(attn, hidden_states, context, attention_mask, *args, **kwargs)
        plain = None
        rows = min(state.uncond_rows, hidden_states.shape[0])
        if rows > 0 and state.fidelity > _FIDELITY_EPS:
            plain = self.inner(attn, hidden_states[:rows], None, attention_mask, *args, **kwargs)
        return blended(out, plain, state.fidelity)


def restore_processors(unet) -> None:
    """Every self-attention layer holding a processor of ours gets back the one it wrapped."""
    for layer in self_attention_layers(unet):
        processor = layer.processor
        while isinstance(processor, ReferenceAttnProcessor):
            processor = processor.inner
        if processor is not layer.processor:
            layer.set_processor(processor)


# -------------------------------------------------------------------------------------------------------- the unit
class ReferenceOnly(ProcessingHooks):
    """One reference_only unit of a job: a residual contributor that adds nothing but runs the reference pass before
    each UNet call (step 1-2) and leaves the read for the call itself (step 3); on_denoised ends the step."""

    def __init__(
        self,
        control_map: np.ndarray,
        model,
        *,
        weight: float,
        fidelity: float,
        control_mode: str,
        guidance_start: float,
        guidance_end: float,
        resize_mode: str,
        seed: int,
        alphas_cumprod: torch.Tensor,
        hr_option: HiresOption = HiresOption.BOTH,
    ):
        self.control_map = control_map[..., :3]
        self.unet, self.vae = model.unet, model.vae
        self.sdxl = self.unet.config.addition_embed_type == "text_time"
        self.weight = float(weight)
        self.threshold_a = float(fidelity)
        self.control_mode = control_mode
        self.start, self.end = float(guidance_start), float(guidance_end)
        self.resize_mode = resize_mode
        self.hr_option = hr_option
        self.alphas_cumprod = alphas_cumprod.float()
        self.generator = torch.Generator().manual_seed(int(seed) & 0xFFFFFFFFFFFFFFFF)
        self.calls = 0  # reference passes run (tests, logs)
        self._state = _Injection()
        self._own: dict | None = None  # layer -> its own processor while ours is in
        self._latents: dict[tuple[int, int], torch.Tensor] = {}
        self._first_size: tuple[int, int] | None = None

    # 1. the reference latent
    def latent(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        key = (height, width)
        if key not in self._latents:
            if len(self._latents) >= MAX_CACHED_SIZES:
                self._latents.pop(next(iter(self._latents)))
            pixels = control_tensor(self.control_map, width * 8, height * 8, self.resize_mode) * 2.0 - 1.0
            self._latents[key] = vae_io.encode(self.vae, pixels).float()
        return self._latents[key].to(device)

    def _acts(self, call: UNetCall, second_pass: bool) -> bool:
        fraction = call.step / max(call.total, 1)
        if self.weight <= 0.0 or not self.start <= fraction <= self.end:
            return False
        wrong_pass = HiresOption.LOW_RES_ONLY if second_pass else HiresOption.HIGH_RES_ONLY
        return self.hr_option != wrong_pass

    # 2. the reference pass, before the call
    def __call__(self, call: UNetCall) -> None:
        rows, channels, height, width = call.sample.shape
        self._first_size = self._first_size or (height, width)
        second_pass = (height, width) != self._first_size
        if not self._acts(call, second_pass):
            self._state.mode = None
            return None
        self._install()
        device, dtype = call.sample.device, call.sample.dtype
        reference = self.latent(height, width, device).expand(rows, -1, -1, -1)
        noise = torch.randn(reference.shape, generator=self.generator, dtype=torch.float32).to(device)
        sample = noised(reference, noise, call.timestep, self.alphas_cumprod.to(device))
        extra = self.unet.config.in_channels - channels
        if extra == 5:  # an inpainting UNet: no mask, the reference itself as the masked image (the extension's)
            sample = torch.cat([sample, torch.zeros_like(sample[:, :1]), reference], dim=1)
        elif extra > 0:
            sample = torch.cat([sample, sample.new_zeros(rows, extra, height, width)], dim=1)
        state = self._state
        state.weight = self.weight
        state.fidelity = style_fidelity(self.threshold_a, self.control_mode, sdxl=self.sdxl, second_pass=second_pass)
        state.uncond_rows = call.uncond_rows
        state.mode = "write"
        self.unet(
            sample.to(dtype),
            call.timestep,
            encoder_hidden_states=call.encoder_hidden_states,
            added_cond_kwargs=call.added_cond_kwargs,
        )
        state.mode = "read"  # the call this pass was for reads what it wrote
        self.calls += 1
        return None

    def _install(self) -> None:
        if self._own is not None:
            return
        layers = self_attention_layers(self.unet)
        thresholds = layer_thresholds(layers)
        self._own = {}
        for layer in layers:
            self._own[layer] = layer.processor
            layer.set_processor(ReferenceAttnProcessor(layer.processor, self._state, thresholds[layer]))

    # 3. the step is over: the own processors go back
    def on_denoised(self, params: DenoisedParams) -> None:
        self.close()

    def close(self) -> None:
        self._state.mode = None
        for layer, processor in (self._own or {}).items():
            current = layer.processor
            if isinstance(current, ReferenceAttnProcessor) and current.state is self._state:
                layer.set_processor(processor)
        self._own = None
