"""ControlNet's reference_only, reference_adain and reference_adain+attn: the generation follows a reference image,
with no ControlNet model (the sd-webui-controlnet extension's "attention injection").

Before each UNet call inside a unit's steps:
  1. the reference image (the unit's map fitted to the generation size, VAE-encoded once per size) is noised to
     the call's timestep, rounded to the training step: sqrt(a) * ref + sqrt(1 - a) * noise, noise from a
     generator seeded with the job's first seed (the extension draws from the global RNG);
  2. the UNet runs on it with the call's timestep and text conditioning ("write"), its output thrown away:
     - attention (reference_only, +attn): each self-attention layer keeps its normed input tokens if the unit's
       weight exceeds the layer's threshold (layers ordered widest first, layer i of n has i / n: weight 1 takes
       every layer, 0.5 the wider half);
     - AdaIN (reference_adain, +attn): the outputs of the middle block and of the extension's encoder and decoder
       blocks (`adain_blocks`) keep their per-channel mean and variance, if the weight exceeds the block's
       threshold (0 for the middle, 2 down to 1/3 along the encoder, 0 up to 1.75 along the decoder);
  3. in the real call ("read") such a layer attends over its own tokens and the kept reference tokens together,
     and such a block's output is renormalised to the kept mean and variance. The negative prompt's rows blend
     that with the plain result by the style fidelity f (threshold_a; cubed for SDXL; 1 for "ControlNet is more
     important", 0 for "My prompt is more important" and in hires fix's second pass):
     uncond = f * plain + (1 - f) * with_reference, so guidance pushes toward the reference by f.
Several reference units write into the same banks (their fidelities averaged per layer), as the extension's do.
The attention layers get our processor through diffusers' attention-processor interface (wrapping whatever they
had), the AdaIN blocks a forward hook, for the UNet calls of one Denoiser step only: the script ends the step in
on_denoised. What a job that fails half-way through a step leaves behind only passes calls on, and the next job
takes it out (`restore_unet`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from sdui.controlnet.control_image import control_tensor
from sdui.controlnet.modes import ControlMode, HiresOption, ResizeMode
from sdui.core.denoiser import UNetCall
from sdui.core.hooks import DenoisedParams, ProcessingHooks
from sdui.core.token_merging import self_attention_layers
from sdui.imaging import vae as vae_io

MODULES = ("reference_only", "reference_adain", "reference_adain+attn")
ATTENTION = ("reference_only", "reference_adain+attn")
ADAIN = ("reference_adain", "reference_adain+attn")
MAX_CACHED_SIZES = 4  # reference latents kept per unit (first pass, hires pass, a spare)
_FIDELITY_EPS = 1e-5  # below this the negative prompt's rows need no plain result (the extension's cut-off)
_VAR_EPS = 1e-6  # the smallest variance AdaIN divides by
# the extension's AdaIN blocks by their LDM index (input_blocks, output_blocks) for 4-level (SD1/SD2) and 3-level
# (SDXL) UNets
_LDM_ADAIN = {4: ((4, 5, 7, 8, 10, 11), tuple(range(8))), 3: ((4, 5, 7, 8), tuple(range(6)))}


# ------------------------------------------------------------------------------------------------- pure functions
def style_fidelity(threshold_a: float, control_mode: ControlMode, *, sdxl: bool, second_pass: bool) -> float:
    """f of step 3: the unit's Style Fidelity, as the control mode and the pass bend it."""
    fidelity = min(max(float(threshold_a), 0.0), 1.0)
    if sdxl:
        fidelity = fidelity**3.0  # the extension: SDXL's attention sharing is unstable at higher values
    if control_mode is ControlMode.CONTROLNET:
        return 1.0
    if control_mode is ControlMode.PROMPT or second_pass:
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


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, variance) of each row's channels over the image, (N, C, 1, 1) each."""
    var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, correction=0)
    return mean, var


def adain(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """x with each row's channels moved to the given mean and variance."""
    own_mean, own_var = channel_stats(x)
    std, target_std = own_var.clamp_min(_VAR_EPS).sqrt(), var.clamp_min(_VAR_EPS).sqrt()
    return (x.float() - own_mean) / std * target_std + mean


def adain_blocks(unet) -> list[tuple[torch.nn.Module, float]]:
    """(module whose output is renormalised, its threshold), as the extension picks LDM's blocks: the middle block;
    the encoder's blocks from its second level on; the decoder's first ones. A UNet of another shape (the tiny
    test models) takes every encoder block from the second level and every decoder block above full size."""
    levels, per_level = len(unet.down_blocks), unet.config.layers_per_block
    per_level = per_level if isinstance(per_level, int) else per_level[0]
    down = [(level, j) for level in range(1, levels) for j in range(per_level)]  # no downsamplers
    up = [(level, j) for level in range(levels - 1) for j in range(per_level + 1)]
    if levels in _LDM_ADAIN and per_level == 2:
        inputs, outputs = _LDM_ADAIN[levels]
        down = [((i - 1) // (per_level + 1), (i - 1) % (per_level + 1)) for i in inputs]
        up = [(i // (per_level + 1), i % (per_level + 1)) for i in outputs]
    blocks = [(unet.mid_block, 0.0)]
    blocks += [(_down_layer(unet, *at), 2.0 * (1.0 - w / len(down))) for w, at in enumerate(down)]
    blocks += [(_up_layer(unet, *at, per_level), 2.0 * w / len(up)) for w, at in enumerate(up)]
    return blocks


def _down_layer(unet, level: int, j: int) -> torch.nn.Module:
    block = unet.down_blocks[level]
    return block.attentions[j] if getattr(block, "attentions", None) else block.resnets[j]


def _up_layer(unet, level: int, j: int, per_level: int) -> torch.nn.Module:
    block = unet.up_blocks[level]
    if j == per_level and block.upsamplers is not None:  # LDM's last block of a level ends with its upsampler
        return block.upsamplers[0]
    return block.attentions[j] if getattr(block, "attentions", None) else block.resnets[j]


# ---------------------------------------------------------------------------------------- what the layers share
@dataclass
class _Injection:
    """The state the layers read: write or read, the writing unit's weights, the call's rows."""

    mode: str | None = None  # "write", "read", or None (pass everything on)
    attention_weight: float | None = None  # the writing unit's weight, when it writes attention
    adain_weight: float | None = None  # ... and when it writes AdaIN statistics
    fidelity: float = 0.0
    uncond_rows: int = 0


@dataclass
class _Bank:
    """What one layer kept from the reference passes of this call, with each pass's fidelity."""

    entries: list = field(default_factory=list)
    fidelities: list[float] = field(default_factory=list)

    def fidelity(self) -> float:
        return sum(self.fidelities) / len(self.fidelities)

    def clear(self) -> None:
        self.entries, self.fidelities = [], []


class ReferenceAttnProcessor:
    """Self-attention that keeps its tokens while a reference passes ("write") and attends to them as well in the
    next call ("read"); anything else, and every call outside an injection, goes to the wrapped processor as is."""

    def __init__(self, inner, state: _Injection, threshold: float):
        self.inner, self.state, self.threshold = inner, state, threshold
        self.bank = _Bank()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        state = self.state
        if encoder_hidden_states is not None or hidden_states.ndim != 3:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs)
        weight = state.attention_weight
        if state.mode == "write" and weight is not None and weight > self.threshold:
            self.bank.entries.append(hidden_states.detach().clone())
            self.bank.fidelities.append(state.fidelity)
        if state.mode != "read" or not self.bank.entries:
            return self.inner(attn, hidden_states, None, attention_mask, *args, **kwargs)
        fidelity = self.bank.fidelity()
        context = torch.cat([hidden_states, *[b.to(hidden_states) for b in self.bank.entries]], dim=1)
        self.bank.clear()
        out = self.inner(attn, hidden_states, context, attention_mask, *args, **kwargs)
        plain = None
        rows = min(state.uncond_rows, hidden_states.shape[0])
        if rows > 0 and fidelity > _FIDELITY_EPS:
            plain = self.inner(attn, hidden_states[:rows], None, attention_mask, *args, **kwargs)
        return blended(out, plain, fidelity)


class AdainHook:
    """A forward hook on one AdaIN block: keeps its output's statistics while a reference passes, renormalises its
    output to them in the next call."""

    def __init__(self, state: _Injection, threshold: float):
        self.state, self.threshold = state, threshold
        self.bank = _Bank()

    def __call__(self, module, args, output):
        sample = output[0] if isinstance(output, tuple) else getattr(output, "sample", output)
        state = self.state
        if state.mode == "write" and state.adain_weight is not None and state.adain_weight > self.threshold:
            self.bank.entries.append(channel_stats(sample))
            self.bank.fidelities.append(state.fidelity)
            return None
        if state.mode != "read" or not self.bank.entries:
            return None
        fidelity = self.bank.fidelity()
        mean = sum(m for m, _ in self.bank.entries) / len(self.bank.entries)
        var = sum(v for _, v in self.bank.entries) / len(self.bank.entries)
        self.bank.clear()
        rows = min(state.uncond_rows, sample.shape[0])
        plain = sample[:rows].float() if rows > 0 and fidelity > _FIDELITY_EPS else None
        result = blended(adain(sample, mean.to(sample.device), var.to(sample.device)), plain, fidelity)
        result = result.to(sample.dtype)
        if isinstance(output, tuple):
            return (result, *output[1:])
        if hasattr(output, "sample"):
            output.sample = result
            return output
        return result


def restore_unet(unet) -> None:
    """Take out what a job that failed half-way through a step left on the UNet: every self-attention layer gets
    back the processor ours wrapped, every block loses our forward hook (each would only pass things on)."""
    for layer in self_attention_layers(unet):
        processor = layer.processor
        while isinstance(processor, ReferenceAttnProcessor):
            processor = processor.inner
        if processor is not layer.processor:
            layer.set_processor(processor)
    for module in unet.modules():
        for key in [k for k, hook in module._forward_hooks.items() if isinstance(hook, AdainHook)]:
            module._forward_hooks.pop(key)
            module._forward_hooks_with_kwargs.pop(key, None)
            module._forward_hooks_always_called.pop(key, None)


# -------------------------------------------------------------------------------------------------------- the units
@dataclass
class ReferenceUnit:
    """One reference unit's settings and image (HWC uint8, the unit's map)."""

    module: str
    image: np.ndarray
    weight: float
    threshold_a: float
    control_mode: ControlMode
    guidance_start: float
    guidance_end: float
    resize_mode: ResizeMode
    hr_option: HiresOption = HiresOption.BOTH
    latents: dict = field(default_factory=dict)

    def acts(self, step: int, total: int, second_pass: bool) -> bool:
        fraction = step / max(total, 1)
        if self.weight <= 0.0 or not self.guidance_start <= fraction <= self.guidance_end:
            return False
        return self.hr_option != (HiresOption.LOW_RES_ONLY if second_pass else HiresOption.HIGH_RES_ONLY)

    def latent(self, vae, height: int, width: int, device: torch.device) -> torch.Tensor:
        """The image fitted to (height, width) latent pixels by the resize mode, VAE-encoded once per size."""
        key = (height, width)
        if key not in self.latents:
            if len(self.latents) >= MAX_CACHED_SIZES:
                self.latents.pop(next(iter(self.latents)))
            pixels = control_tensor(self.image[..., :3], width * 8, height * 8, self.resize_mode) * 2.0 - 1.0
            self.latents[key] = vae_io.encode(vae, pixels).float()
        return self.latents[key].to(device)


class ReferenceInjection(ProcessingHooks):
    """The reference units of one job: a residual contributor that adds nothing but runs each acting unit's
    reference pass before a UNet call (steps 1-2) and leaves the read to the call itself (step 3); on_denoised
    ends the step, putting the UNet's own processors back and taking the hooks off."""

    def __init__(self, units: list[ReferenceUnit], model, *, seed: int, alphas_cumprod: torch.Tensor):
        self.units = units
        self.unet, self.vae = model.unet, model.vae
        self.sdxl = self.unet.config.addition_embed_type == "text_time"
        self.alphas_cumprod = alphas_cumprod.float()
        self.generator = torch.Generator().manual_seed(int(seed) & 0xFFFFFFFFFFFFFFFF)
        self.calls = 0  # reference passes run (tests, logs)
        self._state = _Injection()
        self._own: dict | None = None  # layer -> its own processor while ours is in
        self._attention: list[ReferenceAttnProcessor] = []
        self._adain: list[AdainHook] = []
        self._handles: list = []
        self._first_size: tuple[int, int] | None = None

    def __call__(self, call: UNetCall) -> None:
        rows, channels, height, width = call.sample.shape
        self._first_size = self._first_size or (height, width)
        second_pass = (height, width) != self._first_size
        acting = [u for u in self.units if u.acts(call.step, call.total, second_pass)]
        state = self._state
        state.mode = None
        if not acting:
            return None
        self._install()
        for layer in [*self._attention, *self._adain]:
            layer.bank.clear()  # a call reads only what was written for it
        state.uncond_rows = call.uncond_rows
        for unit in acting:
            state.attention_weight = unit.weight if unit.module in ATTENTION else None
            state.adain_weight = unit.weight if unit.module in ADAIN else None
            state.fidelity = style_fidelity(
                unit.threshold_a, unit.control_mode, sdxl=self.sdxl, second_pass=second_pass
            )
            state.mode = "write"
            self.unet(
                self._reference_input(unit, call),
                call.timestep,
                encoder_hidden_states=call.encoder_hidden_states,
                added_cond_kwargs=call.added_cond_kwargs,
            )
            self.calls += 1
        state.mode = "read"  # the call these passes were for reads what they wrote
        return None

    def _reference_input(self, unit: ReferenceUnit, call: UNetCall) -> torch.Tensor:
        """Step 1, with the extra channels the UNet takes (an inpainting UNet: no mask, the reference itself as the
        masked image, as the extension feeds it; others: zeros)."""
        rows, channels, height, width = call.sample.shape
        device = call.sample.device
        reference = unit.latent(self.vae, height, width, device).expand(rows, -1, -1, -1)
        noise = torch.randn(reference.shape, generator=self.generator, dtype=torch.float32).to(device)
        sample = noised(reference, noise, call.timestep, self.alphas_cumprod.to(device))
        extra = self.unet.config.in_channels - channels
        if extra == 5:
            sample = torch.cat([sample, torch.zeros_like(sample[:, :1]), reference], dim=1)
        elif extra > 0:
            sample = torch.cat([sample, sample.new_zeros(rows, extra, height, width)], dim=1)
        return sample.to(call.sample.dtype)

    def _install(self) -> None:
        if self._own is not None:
            return
        self._own, self._attention, self._adain = {}, [], []
        if any(u.module in ATTENTION for u in self.units):
            layers = self_attention_layers(self.unet)
            thresholds = layer_thresholds(layers)
            for layer in layers:
                self._own[layer] = layer.processor
                processor = ReferenceAttnProcessor(layer.processor, self._state, thresholds[layer])
                layer.set_processor(processor)
                self._attention.append(processor)
        if any(u.module in ADAIN for u in self.units):
            for module, threshold in adain_blocks(self.unet):
                hook = AdainHook(self._state, threshold)
                self._handles.append(module.register_forward_hook(hook))
                self._adain.append(hook)

    def on_denoised(self, params: DenoisedParams) -> None:
        self.close()

    def close(self) -> None:
        """The step (or the job) is over: the own processors back, the hooks off, the banks empty."""
        self._state.mode = None
        for layer, processor in (self._own or {}).items():
            current = layer.processor
            if isinstance(current, ReferenceAttnProcessor) and current.state is self._state:
                layer.set_processor(processor)
        for handle in self._handles:
            handle.remove()
        self._own, self._attention, self._adain, self._handles = None, [], [], []
