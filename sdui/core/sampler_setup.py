"""Step 2 of a generation: the sampler of a request, planned before any work, with A1111's arithmetic.

    setup = sampler_for(request, model, settings)                          # txt2img
    setup = sampler_for(request, model, settings, denoising=0.75)          # img2img: the tail of the schedule
    setup = sampler_for(hr_request, model, settings, denoising=0.7, fix_steps=True)   # hires fix's second pass

It decides the schedule (sigmas for k-diffusion samplers, training timesteps for DDIM/PLMS/UniPC), where
img2img starts on it, the parameters the sampler takes from the request and the settings (eta, churn, ...),
how many steps and model calls that makes, and what of it the infotext says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from sdui.core import schedules
from sdui.core.samplers import CHURN_PARAMS, SamplerInfo, find_sampler, resolve_sampler_name, resolve_scheduler_name
from sdui.models.sd_model import SDModel
from sdui.request import GenerationRequest
from sdui.settings.snapshot import Settings

# A1111's defaults of the s_* parameters; a setting away from them overrides the request and is written down
CHURN_DEFAULTS = {"s_churn": 0.0, "s_tmin": 0.0, "s_tmax": math.inf, "s_noise": 1.0}
CHURN_LABELS = {"s_churn": "Sigma churn", "s_tmin": "Sigma tmin", "s_tmax": "Sigma tmax", "s_noise": "Sigma noise"}
LCM_SKIP = 20  # an LCM model was distilled on every 20th of the 1000 training timesteps (19, 39, ..., 999)


@dataclass
class SamplerSetup:
    info: SamplerInfo
    schedule_label: str  # infotext "Schedule type"
    steps: int  # sampler steps this run reports (progress)
    model_calls: int  # A1111's sampling steps as prompt editing and hooks count them
    kind: str = "k"
    sigmas: torch.Tensor | None = None  # k/LCM: the whole schedule (the Brownian trees span it)
    walk: torch.Tensor | None = None  # k/LCM: the sigmas this run walks (img2img: the tail)
    sigma_range: tuple[float, float] = (0.0, 0.0)  # DPM fast / adaptive: from where to where
    lcm_table: torch.Tensor | None = None  # LCM: the sigmas of its 50 timesteps
    timesteps: torch.Tensor | None = None  # DDIM/PLMS/UniPC: the timesteps this run walks
    start_timestep: int | None = None  # DDIM/PLMS/UniPC img2img: where the init image is noised
    kwargs: dict = field(default_factory=dict)  # eta, churn, ... for the sampler function
    infotext: dict = field(default_factory=dict)  # what A1111 writes about the sampler
    eta: float | None = None

    @property
    def sampler_name(self) -> str:
        return self.info.name

    @property
    def uses_ensd(self) -> bool:
        """Whether the infotext names ENSD: samplers that draw noise during sampling, with a non-zero eta."""
        return self.info.uses_ensd and self.eta not in (0, 0.0)

    @property
    def brownian(self) -> bool:
        return self.info.brownian_noise


def sampler_for(
    request: GenerationRequest,
    model: SDModel,
    settings: Settings,
    *,
    denoising: float | None = None,
    fix_steps: bool = False,
) -> SamplerSetup:
    """The sampler for `request`; `denoising` plans img2img (start part-way), `fix_steps` A1111's "fix steps"
    (img2img_fix_steps, and always for hires fix): about request.steps run whatever the strength."""
    name, suffix = resolve_sampler_name(request.sampler_name)
    info = find_sampler(name)
    requested = resolve_scheduler_name(suffix or request.scheduler)
    total, t_enc = _steps(request.steps, denoising, fix_steps)
    train_sigmas = schedules.training_sigmas(model.scheduler_config)
    if info.kind == "timesteps":
        setup = _timesteps_setup(info, requested, total, t_enc, settings)
    else:
        setup = _sigmas_setup(info, requested, total, t_enc, train_sigmas, model, settings)
    setup.eta = _eta(info, request, settings, setup)
    _churn(info, request, settings, setup)
    return setup


def _steps(steps: int, denoising: float | None, fix_steps: bool) -> tuple[int, int | None]:
    """(steps of the whole schedule, t_enc): img2img runs the last t_enc + 1 of them (A1111's
    setup_img2img_steps); t_enc None for txt2img."""
    if denoising is None:
        return steps, None
    strength = min(float(denoising), 0.999)
    if fix_steps:
        return max(int(steps / strength), 1) if strength > 0 else 1, steps - 1
    return steps, int(strength * steps)


def _sigmas_setup(info, requested, total, t_enc, train_sigmas, model, settings) -> SamplerSetup:
    discard = info.discard_next_to_last_sigma or bool(settings.always_discard_next_to_last_sigma)
    infotext = {}
    if discard and not info.discard_next_to_last_sigma:
        infotext["Discard penultimate sigma"] = True
    table = train_sigmas[LCM_SKIP - 1 :: LCM_SKIP] if info.kind == "lcm" else train_sigmas
    schedule = info.default_schedule if requested == "automatic" and info.kind == "k" else requested
    if schedule in (None, "automatic"):
        schedule = "uniform"  # the model's own discretization, unnamed in the infotext
        label = schedules.find_schedule(requested).label
    else:
        label = schedules.find_schedule(schedule).label
    params, overrides = _schedule_params(schedule, table, model, settings)
    infotext.update(overrides)
    sigmas = schedules.get_sigmas(schedule, total, table, params, discard_penultimate=discard)
    if t_enc is None:
        walk = sigmas
        runs = total
    else:
        walk = sigmas[total - t_enc - 1 :]
        runs = t_enc + 1
    if info.function in ("dpm_fast", "dpm_adaptive"):
        # txt2img: the model's whole range whatever the schedule; img2img: the tail's, as A1111
        sigma_range = (float(table[0]), float(table[-1])) if t_enc is None else (float(walk[-2]), float(walk[0]))
        steps = runs if t_enc is None else len(walk) - 1
    else:
        sigma_range, steps = (0.0, 0.0), len(walk) - 1
    return SamplerSetup(
        info=info,
        schedule_label=label,
        steps=steps,
        model_calls=runs * (2 if info.second_order else 1),
        kind=info.kind,
        sigmas=sigmas,
        walk=walk,
        sigma_range=sigma_range,
        lcm_table=table if info.kind == "lcm" else None,
        infotext=infotext,
    )


def _schedule_params(schedule, table, model, settings) -> tuple[schedules.ScheduleParams, dict]:
    """The schedule's parameters from the settings (A1111's sigma_min/sigma_max/rho options, Beta's alpha and
    beta) and the infotext entries for those that differ from the model's and the schedule's own."""
    info = schedules.find_schedule(schedule)
    sigma_min, sigma_max = float(table[0]), float(table[-1])
    if settings.use_old_karras_scheduler_sigmas:
        sigma_min, sigma_max = 0.1, 10.0
    written = {}
    if settings.sigma_min and float(settings.sigma_min) != sigma_min:
        sigma_min = written["Schedule min sigma"] = float(settings.sigma_min)
    if settings.sigma_max and float(settings.sigma_max) != sigma_max:
        sigma_max = written["Schedule max sigma"] = float(settings.sigma_max)
    rho = None
    if info.default_rho != -1 and settings.rho and float(settings.rho) != info.default_rho:
        rho = written["Schedule rho"] = float(settings.rho)
    params = schedules.ScheduleParams(
        rho=rho,
        beta_alpha=float(settings.beta_dist_alpha),
        beta_beta=float(settings.beta_dist_beta),
        is_sdxl=model.is_sdxl,
        sigma_min=sigma_min,
        sigma_max=sigma_max,
    )
    return params, written


def timesteps_for(steps: int, n_train: int = 1000) -> torch.Tensor:
    """A1111's timesteps for DDIM/PLMS/UniPC: 1, 1 + n//steps, ... below n (more than `steps` when n is not a
    multiple of it)."""
    stride = max(n_train // max(steps, 1), 1)
    return (torch.arange(0, n_train, stride) + 1).clamp(0, n_train - 1)


def _timesteps_setup(info, requested, total, t_enc, settings) -> SamplerSetup:
    discard = bool(settings.always_discard_next_to_last_sigma)
    timesteps = timesteps_for(total + 1 if discard else total)
    label = schedules.find_schedule(requested).label  # written as asked, though these samplers do not use it
    start = None
    if t_enc is not None:
        start = int(timesteps[t_enc])
        timesteps = timesteps[:t_enc]
    runs = (t_enc + 1) if t_enc is not None else total
    if info.function == "unipc":
        steps = len(timesteps)
    else:
        steps = max(len(timesteps) - 1, 0)
    setup = SamplerSetup(
        info=info,
        schedule_label=label,
        steps=steps,
        model_calls=runs,
        kind="timesteps",
        timesteps=timesteps,
        start_timestep=start,
        infotext={"Discard penultimate sigma": True} if discard else {},
    )
    if info.function == "unipc":
        setup.kwargs.update(
            variant=settings.uni_pc_variant,
            skip_type=settings.uni_pc_skip_type,
            order=int(settings.uni_pc_order),
            lower_order_final=bool(settings.uni_pc_lower_order_final),
        )
        if t_enc is not None:
            setup.kwargs["t_start"] = float(timesteps[-1]) / 1000 + 1 / 1000 if len(timesteps) else 1 / 1000
    return setup


def _eta(info: SamplerInfo, request: GenerationRequest, settings: Settings, setup: SamplerSetup) -> float | None:
    """The request's eta, else the setting of the sampler's kind (eta_ddim 0 for DDIM, eta_ancestral 1 for the
    others); written as "Eta"/"Eta DDIM" when it is not that kind's default."""
    if not info.has_eta:
        return None
    timesteps = info.kind == "timesteps"
    default = 0.0 if timesteps else 1.0
    eta = (
        float(request.eta)
        if request.eta is not None
        else float(settings.eta_ddim if timesteps else settings.eta_ancestral)
    )
    setup.kwargs["eta"] = eta
    if eta != default:
        setup.infotext["Eta DDIM" if timesteps else "Eta"] = eta
    return eta


def _churn(info: SamplerInfo, request: GenerationRequest, settings: Settings, setup: SamplerSetup) -> None:
    """s_churn, s_tmin, s_tmax, s_noise for the samplers that take them: the request's values, overridden by a
    setting that is not at A1111's default (and then written in the infotext)."""
    if info.solver_type:
        setup.kwargs["solver_type"] = info.solver_type
    for name in info.extra_params:
        value = getattr(request, name, None)
        value = CHURN_DEFAULTS[name] if value is None else float(value)
        configured = float(settings[name]) if name != "s_tmax" else float(settings[name] or math.inf)
        if configured != CHURN_DEFAULTS[name]:
            value = configured
            setup.infotext[CHURN_LABELS[name]] = settings[name]
        if name == "s_tmax" and value == 0:
            value = math.inf
        setup.kwargs[name] = value


__all__ = ["CHURN_PARAMS", "SamplerSetup", "sampler_for", "timesteps_for"]
