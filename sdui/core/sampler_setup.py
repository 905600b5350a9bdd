"""The sampler of a request: A1111's sampler and schedule as a configured diffusers scheduler, where on its schedule
the request starts (img2img starts part-way), and the eta it runs with."""

from __future__ import annotations

from sdui.core.samplers import SamplerSetup, build_scheduler, find_sampler, resolve_sampler_name
from sdui.errors import UnsupportedSamplerError
from sdui.models.sd_model import SDModel
from sdui.modes import img2img
from sdui.request import GenerationRequest, Img2ImgRequest
from sdui.settings.snapshot import Settings


def sampler_for(request: GenerationRequest, model: SDModel, seeds, settings: Settings) -> tuple[SamplerSetup, int]:
    """A fresh scheduler and the index of its first step: 0 for txt2img, part-way along for img2img."""
    steps, steps_to_run = request.steps, None
    if isinstance(request, Img2ImgRequest):
        steps, steps_to_run = img2img.schedule_steps(request, bool(settings.img2img_fix_steps))
    setup = build_scheduler(
        request.sampler_name,
        request.scheduler,
        steps,
        model.scheduler_config,
        eta=eta_for(request, settings),
        seeds=seeds,
        is_sdxl=model.is_sdxl,
    )
    begin = img2img.begin_index(setup.scheduler, steps, steps_to_run) if steps_to_run is not None else 0
    return setup, begin


def eta_for(request: GenerationRequest, settings: Settings) -> float | None:
    """The request's eta, else the setting for the sampler's kind: eta_ddim for DDIM, eta_ancestral for samplers
    that add noise; None for the others (they have no eta)."""
    if request.eta is not None:
        return request.eta
    try:
        info = find_sampler(resolve_sampler_name(request.sampler_name)[0])
    except UnsupportedSamplerError:
        return None  # build_scheduler says what is wrong with the name
    if info.scheduler_class == "DDIMScheduler":
        return float(settings.eta_ddim)
    if info.noise_is_fixed:
        return float(settings.eta_ancestral)
    return None
