"""Step 3 of a generation: the batch's prompts -> text conditioning for the Denoiser (SDXL adds pooled
embeddings and its size/crop micro-conditioning)."""

from __future__ import annotations

import torch

from sdui.core.denoiser import TextConditioning
from sdui.devices import DevicePolicy
from sdui.models.sd_model import SDModel
from sdui.request import GenerationRequest
from sdui.settings.snapshot import Settings
from sdui.text.encoder import PromptEncoder

REFINER_NEGATIVE_AESTHETIC_SCORE = 2.5
REFINER_AESTHETIC_SCORE = 6.0


def prompt_encoder(model: SDModel, settings: Settings) -> PromptEncoder:
    return PromptEncoder(model, comma_backtrack=int(settings.comma_padding_backtrack))


def encode_text(
    model: SDModel,
    encoder: PromptEncoder,
    prompts: list[str],
    negative_prompts: list[str],
    request: GenerationRequest,
    settings: Settings,
    policy: DevicePolicy,
) -> TextConditioning:
    options = dict(
        clip_skip=int(settings.CLIP_stop_at_last_layers),
        emphasis=settings.emphasis,
        sdxl_clip_l_skip=bool(settings.sdxl_clip_l_skip),
    )
    cond = encoder.encode(prompts, **options)
    uncond = encoder.encode(negative_prompts, is_negative=True, **options)
    dtype, device = policy.dtype, policy.device
    text = TextConditioning(cond=cond.embeds.to(device, dtype), uncond=uncond.embeds.to(device, dtype))
    if model.is_sdxl:
        n = len(prompts)
        time_ids = sdxl_time_ids(model, request, n).to(device, dtype)
        text.added_cond = {"text_embeds": cond.pooled.to(device, dtype), "time_ids": time_ids}
        if model.arch == "sdxl-refiner":
            time_ids = sdxl_time_ids(model, request, n, REFINER_NEGATIVE_AESTHETIC_SCORE).to(device, dtype)
        text.added_uncond = {"text_embeds": uncond.pooled.to(device, dtype), "time_ids": time_ids}
    return text


def sdxl_time_ids(
    model: SDModel, request: GenerationRequest, batch_size: int, aesthetic_score: float = REFINER_AESTHETIC_SCORE
) -> torch.Tensor:
    """SDXL micro-conditioning: original size, crop top-left, target size (refiner: aesthetic score instead)."""
    size = (request.height, request.width)
    if model.arch == "sdxl-refiner":
        ids = [*size, 0, 0, aesthetic_score]
    else:
        ids = [*size, 0, 0, *size]
    return torch.tensor([ids], dtype=torch.float32).repeat(batch_size, 1)
