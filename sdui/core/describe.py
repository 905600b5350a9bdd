"""Step 7 of a generation: the A1111 infotext of each image (and of the grid), from the run as hooks left it."""

from __future__ import annotations

from sdui.core.run import Batch, Run
from sdui.core.sampler_setup import SamplerSetup
from sdui.core.token_merging import merging_ratio
from sdui.infotext import build_infotext, generation_params
from sdui.models.sd_model import SDModel
from sdui.modes.hires import HiresPlan
from sdui.modes.img2img import InitInputs
from sdui.settings.snapshot import Settings


def model_identity(model: SDModel, settings: Settings) -> tuple[str | None, str | None]:
    info = model.checkpoint
    if info is None:
        return None, None
    name = info.name_for_extra if settings.add_model_name_to_info else None
    return name, (info.shorthash or info.hash) if settings.add_model_hash_to_info else None


def infotext_for(
    run: Run, batch: Batch | None, j: int, setup: SamplerSetup, init: InitInputs | None, hires_plan: HiresPlan | None
) -> str:
    """The infotext of image j of `batch`, or of the whole job (the grid) when batch is None."""
    request, settings = run.request, run.settings
    seed = batch.seeds[j] if batch is not None else run.all_seeds[0]
    subseed = batch.subseeds[j] if batch is not None else run.all_subseeds[0]
    prompt = batch.prompts[j] if batch is not None else run.all_prompts[0]
    negative = batch.negative_prompts[j] if batch is not None else run.all_negative_prompts[0]
    model_name, model_hash = model_identity(run.model, settings)
    extra, strength = {}, None
    if hires_plan is not None:
        extra = {k: v for k, v in hires_plan.infotext.items() if k != "Denoising strength"}
        strength = request.denoising_strength
    elif init is not None:
        extra = dict(init.infotext)
        if request.initial_noise_multiplier not in (None, 1, 1.0):
            extra["Noise multiplier"] = request.initial_noise_multiplier
        strength = request.denoising_strength
    extra.update(run.extra_generation_params)
    for key, value in setup.infotext.items():  # what the sampler wrote (eta, churn, schedule overrides, ...)
        extra.setdefault(key, value)
    ensd = int(settings.eta_noise_seed_delta)
    params = generation_params(
        request,
        seed=seed,
        subseed=subseed,
        model_name=model_name,
        model_hash=model_hash,
        schedule_label=setup.schedule_label,
        rng=settings.randn_source,
        clip_skip=int(settings.CLIP_stop_at_last_layers),
        ensd=ensd if ensd and setup.uses_ensd else None,
        denoising_strength=strength,
        face_restoration=run.face_restoration,
        token_merging_ratio=merging_ratio(request, settings),
        token_merging_ratio_hr=merging_ratio(request, settings, hires=True) if hires_plan is not None else None,
        extra=extra,
        index=batch.index * request.batch_size + j if batch else 0,
    )
    return build_infotext(prompt, negative, params)
