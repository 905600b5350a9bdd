"""Writing A1111's "generation parameters" text (infotext), byte-compatible with A1111 1.10:

    <prompt, may span lines>
    Negative prompt: <negative prompt, may span lines>      (omitted when empty)
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, ...

The parameters line is `Key: value` pairs joined by ", "; a value holding `,`, `:` or a newline is written as a JSON
string so the line stays splittable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

NEGATIVE = "Negative prompt:"

_UNSET: Any = object()


def quote(value: Any) -> Any:
    """A value as it goes after `Key: `; JSON-quoted only when it would break the pair grammar."""
    text = str(value)
    if "," in text or ":" in text or "\n" in text:
        return json.dumps(value, ensure_ascii=False)
    return value


def build_infotext(prompt: str, negative_prompt: str, params: Mapping[str, Any]) -> str:
    """The full infotext; `params` in the order they should appear, None values left out."""
    line = ", ".join(
        key if key == value else f"{key}: {quote(value)}" for key, value in params.items() if value is not None
    )
    negative = f"\n{NEGATIVE} {negative_prompt}" if negative_prompt else ""
    # A1111 strips the whole text: an empty prompt leaves no blank first line.
    return f"{prompt}{negative}\n{line}".strip()


def generation_params(
    request,
    *,
    seed: int,
    subseed: int | None = None,
    model_name: str | None = None,
    model_hash: str | None = None,
    schedule_label: str | None = _UNSET,
    clip_skip: int = 1,
    ensd: int | None = None,
    rng: str = "CPU",
    emphasis: str | None = None,
    denoising_strength: float | None = None,
    image_cfg_scale: float | None = None,
    face_restoration: str | None = None,
    vae_name: str | None = None,
    vae_hash: str | None = None,
    conditional_mask_weight: float | None = None,
    token_merging_ratio: float | None = None,
    token_merging_ratio_hr: float | None = None,
    init_image_hash: str | None = None,
    extra: Mapping[str, Any] | None = None,
    index: int = 0,
    version: str | None = None,
    user: str | None = None,
) -> dict:
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
    for extras in (request.extra_generation_params, extra or {}):
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
