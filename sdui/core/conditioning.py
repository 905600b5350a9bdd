"""Step 3 of a generation: the batch's prompts -> text conditioning for the Denoiser, with A1111's prompt language
over time (editing, alternation, AND); SDXL adds pooled embeddings and its size/crop micro-conditioning."""

from __future__ import annotations

import torch

from sdui.core.denoiser import Cond, ScheduledConditioning, TextConditioning, UncondOptions, stack_rows
from sdui.core.kept_encodings import KeptEncodings, kept_encodings
from sdui.core.sampler_setup import SamplerSetup
from sdui.devices import DevicePolicy
from sdui.models.sd_model import SDModel
from sdui.request import GenerationRequest
from sdui.settings.snapshot import Settings
from sdui.text.encoder import PromptEncoder
from sdui.text.extra_networks import strip_tags
from sdui.text.prompt_schedule import prompt_schedules, split_and

REFINER_NEGATIVE_AESTHETIC_SCORE = 2.5
REFINER_AESTHETIC_SCORE = 6.0


def prompt_encoder(model: SDModel, settings: Settings, embeddings=None) -> PromptEncoder:
    return PromptEncoder(model, comma_backtrack=int(settings.comma_padding_backtrack), embeddings=embeddings)


def uncond_options(
    request: GenerationRequest, settings: Settings, encoder: PromptEncoder, notes: dict
) -> UncondOptions:
    """The negative prompt's options of a job: NGMS (the request's s_min_uncond, else the setting), skipping it
    early, padding cond and uncond to one length."""
    s_min = request.s_min_uncond if request.s_min_uncond is not None else settings.s_min_uncond
    pad = "v0" if settings.pad_cond_uncond_v0 else "empty" if settings.pad_cond_uncond else None
    return UncondOptions(
        skip_early_cond=float(settings.skip_early_cond),
        s_min_uncond=float(s_min or 0.0),
        s_min_uncond_all=bool(settings.s_min_uncond_all),
        pad=pad,
        empty=encoder.encode([""]).embeds if pad == "empty" else None,
        notes=notes,
    )


def prompt_steps(steps: int, setup: SamplerSetup) -> int:
    """The steps prompt editing counts: model calls, so twice the steps for second-order samplers (A1111's
    total_steps)."""
    return steps * (2 if setup.info.second_order else 1)


class ConditioningCache:
    """What a job has encoded: each distinct prompt is encoded once per job (a batch count of 100 with one prompt
    is one encode), keyed by everything its encoding depends on. With `kept` (the model's store, when the
    persistent_cond_cache setting is on) an encoding made by an earlier job is used again where it provably
    equals a new one (sdui.core.kept_encodings)."""

    def __init__(self, kept: KeptEncodings | None = None):
        self._found: dict[tuple, list[tuple[int, torch.Tensor, torch.Tensor | None]]] = {}
        self.kept = kept

    @classmethod
    def for_job(cls, model: SDModel, settings: Settings) -> ConditioningCache:
        return cls(kept_encodings(model) if settings.persistent_cond_cache else None)

    def get(self, key: tuple, make):
        if key not in self._found:
            self._found[key] = make()
        return self._found[key]

    def encoded(self, model: SDModel, key: tuple, encoder: PromptEncoder, texts: list[str], emphasis: str, encode):
        """encode() (the encoding of `texts` under the job's `key`), or the same one kept from an earlier job."""
        if self.kept is None:
            return encode()
        return self.kept.get(model.text_encoders, key, encoder, texts, emphasis, encode)


def encode_text(
    model: SDModel,
    encoder: PromptEncoder,
    prompts: list[str],
    negative_prompts: list[str],
    request: GenerationRequest,
    settings: Settings,
    policy: DevicePolicy,
    *,
    steps: int,
    hires_steps: int | None = None,
    cache: ConditioningCache | None = None,
    notes: dict | None = None,
    encoder_key: tuple = (),
) -> TextConditioning:
    """A batch's conditioning with A1111's prompt language over time: prompt editing and alternation give each
    image a schedule of conditionings over the `steps` model calls (hires fix's second pass: `hires_steps`, its
    numbers counted on from the first pass), and `AND` several weighted conditionings per image. `notes` gets
    "Old prompt editing timelines" when that setting changes a schedule, as A1111 writes it."""
    cache = cache if cache is not None else ConditioningCache()
    options = dict(
        clip_skip=int(settings.CLIP_stop_at_last_layers),
        emphasis=settings.emphasis,
        sdxl_clip_l_skip=bool(settings.sdxl_clip_l_skip),
    )
    old = bool(settings.use_old_scheduling)
    if old and notes is not None:
        every = [strip_tags(t) for t in [*negative_prompts, *(text for p in prompts for text, _ in split_and(p))]]
        if prompt_schedules(every, steps, hires_steps, True) != prompt_schedules(every, steps, hires_steps, False):
            notes["Old prompt editing timelines"] = True

    def schedule_of(prompt: str, negative: bool):
        key = (prompt, negative, steps, hires_steps, old, tuple(sorted(options.items())), encoder_key)

        def make():
            (schedule,) = prompt_schedules([strip_tags(prompt)], steps, hires_steps, old)
            texts = [text for _, text in schedule]
            encoded = cache.encoded(
                model,
                key,
                encoder,
                texts,
                options["emphasis"],
                lambda: encoder.encode(texts, is_negative=negative, **options),
            )
            pooled = encoded.pooled if encoded.pooled is not None else [None] * len(schedule)
            return [(end, e, p) for (end, _), e, p in zip(schedule, encoded.embeds, pooled, strict=True)]

        return cache.get(key, make)

    uncond_rows = [schedule_of(p, True) for p in negative_prompts]
    cond_rows, weights = [], []
    for prompt in prompts:
        parts = []
        for text, weight in split_and(prompt):
            parts.append((len(cond_rows), weight))
            cond_rows.append(schedule_of(text, False))
        weights.append(parts)
    single = all(len(parts) == 1 and parts[0][1] == 1.0 for parts in weights)

    dtype, device = policy.dtype, policy.device
    text = TextConditioning(
        cond=_conditioning(cond_rows, 1, dtype, device),
        uncond=_conditioning(uncond_rows, 1, dtype, device),
        weights=None if single else weights,
    )
    if model.is_sdxl:
        n = len(prompts)
        time_ids = sdxl_time_ids(model, request, len(cond_rows)).to(device, dtype)
        text.added_cond = {"text_embeds": _conditioning(cond_rows, 2, dtype, device), "time_ids": time_ids}
        if model.arch == "sdxl-refiner":
            time_ids = sdxl_time_ids(model, request, n, REFINER_NEGATIVE_AESTHETIC_SCORE).to(device, dtype)
        else:
            time_ids = sdxl_time_ids(model, request, n).to(device, dtype)
        text.added_uncond = {"text_embeds": _conditioning(uncond_rows, 2, dtype, device), "time_ids": time_ids}
    return text


def _conditioning(rows, part: int, dtype, device) -> Cond:
    """One tensor per row when nothing changes during sampling, else a ScheduledConditioning. part 1: the token
    embeddings, 2: SDXL's pooled embedding."""
    schedules = [[(entry[0], entry[part].to(device, dtype)) for entry in row] for row in rows]
    if all(len(s) == 1 for s in schedules):
        return stack_rows([s[0][1] for s in schedules])
    return ScheduledConditioning(schedules)


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
