"""A1111's "generation parameters" text (infotext): build it, parse it back, turn it into request fields.

Format (reference §2.6), byte-compatible with A1111 1.10:

    <prompt, may span lines>
    Negative prompt: <negative prompt, may span lines>      (omitted when empty)
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, ...

The parameters line is `Key: value` pairs joined by ", "; a value holding `,`, `:` or a newline is written as a JSON
string so the line stays splittable. Parsing (§2.7) returns string values as A1111's png-info does, plus A1111's
defaults for keys an old infotext lacks (a missing `RNG` means the image was made with GPU noise, and so on).
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

# key = a word character then word characters, spaces, '-' or '/'; value = a JSON string or anything up to a comma
_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_WXH = re.compile(r"^(\d+)x(\d+)$")
_NEGATIVE = "Negative prompt:"

# Scheduler labels, names and aliases (§2.9) that old infotexts glued onto the sampler ("DPM++ 2M Karras").
_SCHEDULER_SUFFIXES: dict[str, str] = {}
for _label, _name in (("Automatic", "automatic"), ("Uniform", "uniform"), ("Karras", "karras"),
                      ("Exponential", "exponential"), ("Polyexponential", "polyexponential"),
                      ("SGM Uniform", "sgm_uniform"), ("KL Optimal", "kl_optimal"),
                      ("Align Your Steps", "align_your_steps"), ("Simple", "simple"), ("Normal", "normal"),
                      ("DDIM", "ddim"), ("Beta", "beta")):
    _SCHEDULER_SUFFIXES[_label] = _label
    _SCHEDULER_SUFFIXES[_name] = _label
_SCHEDULER_SUFFIXES["SGMUniform"] = "SGM Uniform"
# longest first, so "Euler SGM Uniform" is not read as "Euler SGM" + "Uniform"
_SCHEDULER_SUFFIXES = dict(sorted(_SCHEDULER_SUFFIXES.items(), key=lambda item: -len(item[0])))

_UNSET: Any = object()


# ---------------------------------------------------------------------------------------------------- building

def quote(value: Any) -> Any:
    """A value as it goes after `Key: `; JSON-quoted only when it would break the pair grammar."""
    text = str(value)
    if "," in text or ":" in text or "\n" in text:
        return json.dumps(value, ensure_ascii=False)
    return value


def build_infotext(prompt: str, negative_prompt: str, params: Mapping[str, Any]) -> str:
    """The full infotext; `params` in the order they should appear, None values left out."""
    line = ", ".join(key if key == value else f"{key}: {quote(value)}"
                     for key, value in params.items() if value is not None)
    negative = f"\n{_NEGATIVE} {negative_prompt}" if negative_prompt else ""
    # A1111 strips the whole text: an empty prompt leaves no blank first line.
    return f"{prompt}{negative}\n{line}".strip()


def generation_params(request, *, seed: int, subseed: int | None = None, model_name: str | None = None,
                      model_hash: str | None = None, schedule_label: str | None = _UNSET,
                      clip_skip: int = 1, ensd: int | None = None, rng: str = "CPU", emphasis: str | None = None,
                      denoising_strength: float | None = None, image_cfg_scale: float | None = None,
                      face_restoration: str | None = None, vae_name: str | None = None, vae_hash: str | None = None,
                      conditional_mask_weight: float | None = None, token_merging_ratio: float | None = None,
                      token_merging_ratio_hr: float | None = None, init_image_hash: str | None = None,
                      extra: Mapping[str, Any] | None = None, index: int = 0,
                      version: str | None = None, user: str | None = None) -> dict:
    """The ordered A1111 parameters of one image of `request` (a GenerationRequest or anything with its fields).

    Every fixed key has its A1111 slot even when empty, so an entry of `request.extra_generation_params` or `extra`
    with the same key lands in that slot (e.g. "Denoising strength", or "Schedule type" set by a sampler); other
    extra keys follow in insertion order, then `Emphasis` (A1111 adds it last, while encoding the prompt), then
    `Version` and `User`. A list value in the extras is per image and indexed by `index`.

    - schedule_label: the resolved scheduler label (e.g. "Karras"); default `request.scheduler`; None omits it.
    - ensd: written only when non-zero; pass it only for samplers that use it (A1111's `uses_ensd`).
    - emphasis: written unless None or "Original"; pass it only when the prompt has brackets.
    - rng: written unless "GPU" (A1111's default, implied by its absence).
    """
    strength = request.subseed_strength or 0
    resize_w, resize_h = request.seed_resize_from_w, request.seed_resize_from_h
    params: dict[str, Any] = {
        "Steps": request.steps,
        "Sampler": request.sampler_name,
        "Schedule type": request.scheduler if schedule_label is _UNSET else schedule_label,
        "CFG scale": request.cfg_scale,
        "Image CFG scale": image_cfg_scale,
        "Seed": seed,
        "Face restoration": face_restoration,
        "Size": f"{request.width}x{request.height}",
        "Model hash": model_hash,
        "Model": model_name,
        "FP8 weight": None,
        "Cache FP16 weight for LoRA": None,
        "VAE hash": vae_hash,
        "VAE": vae_name,
        "Variation seed": (request.subseed if subseed is None else subseed) if strength > 0 else None,
        "Variation seed strength": strength if strength > 0 else None,
        "Seed resize from": f"{resize_w}x{resize_h}" if resize_w > 0 and resize_h > 0 else None,
        "Denoising strength": denoising_strength,
        "Conditional mask weight": conditional_mask_weight,
        "Clip skip": clip_skip if clip_skip > 1 else None,
        "ENSD": ensd or None,
        "Token merging ratio": token_merging_ratio or None,
        "Token merging ratio hr": token_merging_ratio_hr or None,
        "Init image hash": init_image_hash,
        "RNG": rng if rng != "GPU" else None,
        "Tiling": "True" if request.tiling else None,
    }
    for extras in (getattr(request, "extra_generation_params", None) or {}, extra or {}):
        for key, value in extras.items():
            params[key] = _per_image(value, index)
    if emphasis not in (None, "Original") and params.get("Emphasis") is None:
        params["Emphasis"] = emphasis
    params["Version"] = version
    params["User"] = user
    return {key: value for key, value in params.items() if value is not None}


def _per_image(value: Any, index: int) -> Any:
    if isinstance(value, list):
        return value[index] if index < len(value) else None
    if callable(value):
        return value()
    return value


# ----------------------------------------------------------------------------------------------------- parsing

def parse_infotext(text: str, *, defaults: bool = True, split_old_sampler: bool = True,
                   skip_fields: Iterable[str] = (), backcompat: bool = True) -> dict:
    """Parse an infotext into A1111's dict: the pairs of the last line (strings), `Prompt`, `Negative prompt`,
    then A1111's defaults for absent keys (`defaults=False` leaves them out).

    `split_old_sampler` turns a pre-1.9 "Sampler: DPM++ 2M Karras" into Sampler "DPM++ 2M" + Schedule type "Karras";
    A1111's png-info does that only when pasting, so pass False for its exact output.
    `backcompat` adds the compatibility switches A1111 derives from an old `Version` (<1.6.0, <1.7.0-225, <1.8.0).
    """
    *lines, last = text.strip().split("\n")
    if len(_PAIR.findall(last)) < 3:        # not a parameters line: it belongs to the prompt
        lines.append(last)
        last = ""

    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    target = prompt_lines
    for line in lines:
        line = line.strip()
        if line.startswith(_NEGATIVE):
            target = negative_lines
            line = line[len(_NEGATIVE):].strip()
        target.append(line)
    prompt, negative_prompt = "\n".join(prompt_lines), "\n".join(negative_lines)

    res: dict[str, Any] = {}
    for key, value in _PAIR.findall(last):
        value = _unquote(value)
        size = _WXH.match(value)
        if size:
            res[f"{key}-1"], res[f"{key}-2"] = size.group(1), size.group(2)
        else:
            res[key] = value

    if split_old_sampler and "Sampler" in res:
        sampler, label = split_sampler_scheduler(res["Sampler"])
        if label is not None:
            res["Sampler"] = sampler
            if res.get("Schedule type") in (None, "Automatic"):
                res["Schedule type"] = label

    res["Prompt"] = prompt
    res["Negative prompt"] = negative_prompt
    if defaults:
        _add_defaults(res, prompt, negative_prompt)
    if backcompat:
        _add_backcompat(res)
    for key in skip_fields:
        res.pop(key, None)
    return res


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def split_sampler_scheduler(sampler: str) -> tuple[str, str | None]:
    """("DPM++ 2M Karras") -> ("DPM++ 2M", "Karras"); a name without a scheduler suffix -> (name, None)."""
    for suffix, label in _SCHEDULER_SUFFIXES.items():
        if sampler.endswith(" " + suffix) and len(sampler) > len(suffix) + 1:
            return sampler[:-len(suffix) - 1], label
    return sampler, None


# Absent keys mean the A1111 default was used (§2.7); types as A1111 returns them.
_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("Hires sampler", "Use same sampler"),
    ("Hires schedule type", "Use same scheduler"),
    ("Hires checkpoint", "Use same checkpoint"),
    ("Hires prompt", ""),
    ("Hires negative prompt", ""),
    ("Mask mode", "Inpaint masked"),
    ("Masked content", "original"),
    ("Inpaint area", "Whole picture"),
    ("Masked area padding", 32),
)
_LATE_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("RNG", "GPU"),
    ("Schedule type", "Automatic"),
    ("Schedule max sigma", 0),
    ("Schedule min sigma", 0),
    ("Schedule rho", 0),
    ("VAE Encoder", "Full"),
    ("VAE Decoder", "Full"),
    ("FP8 weight", "Disable"),
)


def _add_defaults(res: dict, prompt: str, negative_prompt: str) -> None:
    res.setdefault("Clip skip", "1")
    if "Hypernet" in res:
        res["Prompt"] += f"<hypernet:{res['Hypernet']}:{res.get('Hypernet strength', '1.0')}>"
    if "Hires resize-1" not in res:
        res["Hires resize-1"] = 0
        res["Hires resize-2"] = 0
    for key, value in _DEFAULTS:
        res.setdefault(key, value)
    _restore_first_pass_size(res)
    for key, value in _LATE_DEFAULTS:
        res.setdefault(key, value)
    if res["FP8 weight"] != "Disable":
        res.setdefault("Cache FP16 weight for LoRA", False)
    if "Emphasis" not in res and (_uses_emphasis(prompt) or _uses_emphasis(negative_prompt)):
        res["Emphasis"] = "Original"
    res.setdefault("Refiner switch by sampling steps", False)


def _uses_emphasis(text: str) -> bool:
    from sdui.text.emphasis import parse_prompt_attention  # pure text module; imported late to stay light
    return any(weight != 1.0 and part != "BREAK" for part, weight in parse_prompt_attention(text))


def _restore_first_pass_size(res: dict) -> None:
    """Pre-1.0 hires infotexts gave `First pass size` and the final size as `Size`; today's fields are the reverse."""
    first_w, first_h = res.get("First pass size-1"), res.get("First pass size-2")
    if first_w is None or first_h is None:
        return
    try:
        first_w, first_h = int(first_w), int(first_h)
        width, height = int(res.get("Size-1", 512)), int(res.get("Size-2", 512))
    except ValueError:
        return
    if first_w == 0 or first_h == 0:        # "0x0" meant: pick a first pass of about 512x512 pixels
        scale = math.sqrt(512 * 512 / (width * height))
        first_w, first_h = math.ceil(scale * width / 64) * 64, math.ceil(scale * height / 64) * 64
    res["Size-1"], res["Size-2"] = first_w, first_h
    res["Hires resize-1"], res["Hires resize-2"] = width, height


_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:-(\d+))?")


def _parse_version(text: Any) -> tuple[int, int, int, int] | None:
    m = _VERSION.match(str(text)) if text is not None else None
    if not m:
        return None
    major, minor, patch, commits = m.groups()
    return int(major), int(minor), int(patch), int(commits or 0)


def _add_backcompat(res: dict) -> None:
    version = _parse_version(res.get("Version"))
    if version is None:
        return
    if version < (1, 6, 0, 0) and "[" in res.get("Prompt", ""):
        res["Old prompt editing timelines"] = True
    if version < (1, 6, 0, 0) and res.get("Sampler", "") in ("DDIM", "PLMS"):
        res["Pad conds v0"] = True
    if version < (1, 7, 0, 225):
        res["Downcast alphas_cumprod"] = True
    if version < (1, 8, 0, 0) and res.get("Refiner"):
        res["Refiner switch by sampling steps"] = True


# ---------------------------------------------------------------------------------------- to request fields

# infotext key -> (request field, type); `mode` picks the tab-specific ones.
_FIELDS: tuple[tuple[str, str, type], ...] = (
    ("Prompt", "prompt", str), ("Negative prompt", "negative_prompt", str), ("Steps", "steps", int),
    ("Sampler", "sampler_name", str), ("Schedule type", "scheduler", str), ("CFG scale", "cfg_scale", float),
    ("Seed", "seed", int), ("Variation seed", "subseed", int), ("Variation seed strength", "subseed_strength", float),
    ("Seed resize from-1", "seed_resize_from_w", int), ("Seed resize from-2", "seed_resize_from_h", int),
    ("Size-1", "width", int), ("Size-2", "height", int), ("Batch size", "batch_size", int),
    ("Denoising strength", "denoising_strength", float),
    ("Refiner", "refiner_checkpoint", str), ("Refiner switch at", "refiner_switch_at", float),
)
_TXT2IMG_FIELDS: tuple[tuple[str, str, type], ...] = (
    ("Hires upscale", "hr_scale", float), ("Hires upscaler", "hr_upscaler", str),
    ("Hires steps", "hr_second_pass_steps", int), ("Hires resize-1", "hr_resize_x", int),
    ("Hires resize-2", "hr_resize_y", int), ("Hires checkpoint", "hr_checkpoint_name", str),
    ("Hires sampler", "hr_sampler_name", str), ("Hires schedule type", "hr_scheduler", str),
    ("Hires prompt", "hr_prompt", str), ("Hires negative prompt", "hr_negative_prompt", str),
)
_IMG2IMG_FIELDS: tuple[tuple[str, str, type], ...] = (
    ("Image CFG scale", "image_cfg_scale", float), ("Mask blur", "mask_blur", int),
    ("Masked area padding", "inpaint_full_res_padding", int),
)
_IMG2IMG_CHOICES = {   # radio labels -> API values
    "Mask mode": ("inpainting_mask_invert", {"Inpaint masked": 0, "Inpaint not masked": 1}),
    "Masked content": ("inpainting_fill", {"fill": 0, "original": 1, "latent noise": 2, "latent nothing": 3}),
    "Inpaint area": ("inpaint_full_res", {"Whole picture": False, "Only masked": True}),
}

# infotext label -> (setting key, type): what A1111's `OptionInfo(..., infotext=...)` declares.
INFOTEXT_OPTION_LABELS: dict[str, tuple[str, type]] = {
    "Clip skip": ("CLIP_stop_at_last_layers", int),
    "RNG": ("randn_source", str),
    "ENSD": ("eta_noise_seed_delta", int),
    "Emphasis": ("emphasis", str),
    "Eta": ("eta_ancestral", float),
    "Eta DDIM": ("eta_ddim", float),
    "Sigma churn": ("s_churn", float),
    "Sigma tmin": ("s_tmin", float),
    "Sigma tmax": ("s_tmax", float),
    "Sigma noise": ("s_noise", float),
    "Schedule min sigma": ("sigma_min", float),
    "Schedule max sigma": ("sigma_max", float),
    "Schedule rho": ("rho", float),
    "Discard penultimate sigma": ("always_discard_next_to_last_sigma", bool),
    "SGM noise multiplier": ("sgm_noise_multiplier", bool),
    "Noise multiplier": ("initial_noise_multiplier", float),
    "Extra noise": ("img2img_extra_noise", float),
    "Conditional mask weight": ("inpainting_mask_weight", float),
    "VAE": ("sd_vae", str),
    "VAE Encoder": ("sd_vae_encode_method", str),
    "VAE Decoder": ("sd_vae_decode_method", str),
    "UniPC variant": ("uni_pc_variant", str),
    "UniPC skip type": ("uni_pc_skip_type", str),
    "UniPC order": ("uni_pc_order", int),
    "UniPC lower order final": ("uni_pc_lower_order_final", bool),
    "Noise Schedule": ("sd_noise_schedule", str),
}


def request_fields_from_infotext(params: Mapping[str, Any], *, mode: str = "txt2img",
                                 current_options: Any = None,
                                 option_labels: Mapping[str, tuple[str, type]] = INFOTEXT_OPTION_LABELS) -> dict:
    """Request fields (A1111 API names) from a parsed infotext, plus `override_settings` for setting-backed keys.

    Values that do not convert (e.g. "Steps: many") are left out, as A1111's paste leaves such fields alone.
    With `current_options` (anything with `.get(key)`), overrides equal to the current setting are dropped.
    """
    fields: dict[str, Any] = {}
    table = _FIELDS + (_TXT2IMG_FIELDS if mode == "txt2img" else _IMG2IMG_FIELDS if mode == "img2img" else ())
    for key, field_name, kind in table:
        if key in params and params[key] is not None:
            value = _convert(params[key], kind)
            if value is not None:
                fields[field_name] = value

    if "sampler_name" in fields:
        sampler, label = split_sampler_scheduler(fields["sampler_name"])
        if label is not None:
            fields["sampler_name"] = sampler
            if fields.get("scheduler") in (None, "Automatic"):
                fields["scheduler"] = label

    if mode == "txt2img":
        hires_resize = _convert(params.get("Hires resize-1", 0), int)
        fields["enable_hr"] = "Denoising strength" in params and (
            "Hires upscale" in params or "Hires upscaler" in params or bool(hires_resize))
    elif mode == "img2img":
        for key, (field_name, choices) in _IMG2IMG_CHOICES.items():
            if params.get(key) in choices:
                fields[field_name] = choices[params[key]]

    overrides: dict[str, Any] = {}
    for label, (setting, kind) in option_labels.items():
        if params.get(label) is None:
            continue
        value = _convert(params[label], kind)
        if value is None or (current_options is not None and current_options.get(setting) == value):
            continue
        overrides[setting] = value
    if overrides:
        fields["override_settings"] = overrides
    return fields


def _convert(value: Any, kind: type) -> Any:
    try:
        if kind is bool:
            return value if isinstance(value, bool) else str(value).strip() not in ("False", "false", "0", "")
        if kind is int:
            try:
                return int(str(value).strip())     # exact for seeds beyond float precision
            except ValueError:
                number = float(value)
                return int(number) if math.isfinite(number) else None
        if kind is float:
            number = float(value)
            return number if math.isfinite(number) else None
        return str(value)
    except (TypeError, ValueError):
        return None
