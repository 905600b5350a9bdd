"""A1111 sampler names -> configured diffusers schedulers.

Each A1111 sampler maps to the diffusers scheduler that implements the same algorithm; the A1111 schedule
("Schedule type") is then given to it in the way that class accepts:
  * Euler takes any sigma list (`set_timesteps(sigmas=...)`), so all twelve schedules are exact, and
    "Automatic" is k-diffusion's own discretization, as in A1111.
  * Other k-diffusion-style classes take Karras / exponential sigmas through their config flags (exact sigmas),
    evenly spaced timesteps through `timestep_spacing="linspace"` (diffusers interpolates sigma linearly
    between training steps where k-diffusion interpolates log-sigma: at most ~5e-4 relative at 150 steps),
    and, where `set_timesteps(timesteps=...)` exists, the schedules made of whole training timesteps
    (Simple, DDIM) exactly.
  * DDIM, PLMS, UniPC and LCM pick their own timesteps in A1111 (its schedule choice is ignored there):
    they accept "Automatic" only.
A sampler/schedule pair a class cannot honour is refused with an UnsupportedSamplerError that names the
pairs that work; nothing is swapped silently. Samplers without an honest diffusers equivalent are refused.

Everything is built with `from_config(model config + overrides)` and public `set_timesteps` arguments, so
a diffusers pipeline given the same scheduler config and `SamplerSetup.pipeline_kwargs` walks the same steps.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch

from sdui.core import schedules
from sdui.errors import UnsupportedSamplerError

# k-diffusion-style classes' schedule support, by how the class is told
_SPACING = ("uniform", "normal")  # timestep_spacing="linspace" (sigma interpolated linearly)
_FLAGS = ("karras", "exponential")  # use_karras_sigmas / use_exponential_sigmas (exact sigmas)
_WHOLE_TIMESTEPS = ("simple", "ddim")  # set_timesteps(timesteps=[ints]) (exact)
_ALL = tuple(s.name for s in schedules.SCHEDULERS if s.name != "automatic")


@dataclass(frozen=True)
class SamplerInfo:
    """One A1111 sampler. name/aliases/options are what /sdapi/v1/samplers returns."""

    name: str
    aliases: tuple[str, ...]
    options: dict  # string values, as A1111's API shows them
    scheduler_class: str | None = None  # diffusers class; None: refused
    schedules: tuple[str, ...] = ()  # schedules honoured besides "automatic"
    config: dict = field(default_factory=dict)  # overrides on top of the model's scheduler config
    refusal: str | None = None  # why a refused sampler is refused
    notes: tuple[str, ...] = ()  # known differences from A1111's implementation

    @property
    def supported(self) -> bool:
        return self.scheduler_class is not None

    @property
    def default_schedule(self) -> str | None:
        """What "Automatic" means: the sampler's own default, else the model's discretization ("uniform");
        None for samplers that choose their own timesteps."""
        if "scheduler" in self.options:
            return self.options["scheduler"]
        return None if self.scheduler_class in _OWN_TIMESTEPS else "uniform"

    @property
    def uses_ensd(self) -> bool:
        return self.options.get("uses_ensd") == "True"

    @property
    def noise_is_fixed(self) -> bool:
        """Ancestral and SDE samplers: A1111 scales their noise by eta, their diffusers classes always use 1."""
        return (
            self.supported
            and self.scheduler_class != "DDIMScheduler"
            and (self.uses_ensd or self.options.get("brownian_noise") == "True")
        )

    def to_api(self) -> dict:
        return {"name": self.name, "aliases": list(self.aliases), "options": dict(self.options)}


_OWN_TIMESTEPS = ("DDIMScheduler", "PNDMScheduler", "UniPCMultistepScheduler", "LCMScheduler")
_K_BASE = {
    "timestep_spacing": "linspace",
    "use_karras_sigmas": False,
    "use_exponential_sigmas": False,
    "use_beta_sigmas": False,
}
_DPMPP = {
    **_K_BASE,
    "algorithm_type": "dpmsolver++",
    "solver_order": 2,
    "solver_type": "midpoint",
    # k-diffusion drops to first order only on the very last step (sigma_next == 0)
    "lower_order_final": False,
    "euler_at_final": False,
    "final_sigmas_type": "zero",
    "use_lu_lambdas": False,
    "use_flow_sigmas": False,
    "thresholding": False,
}
_TIMESTEP_GRID = {"timestep_spacing": "leading", "steps_offset": 1, "set_alpha_to_one": False}  # 1, 1+1000//n, ...

_NOTE_LINEAR = (
    "Uniform/Normal: diffusers interpolates sigma linearly between training timesteps, "
    "A1111 log-linearly (relative difference below 1e-3)"
)
_NOTE_DISCARD = (
    "A1111 computes n+1 sigmas and drops the next-to-last one for this sampler; "
    "diffusers' class cannot, so the schedule has n points of the same family"
)
_NOTE_VP_START = (
    "diffusers starts from unit-variance noise in its variance-preserving form "
    "(A1111: sigma_max/sqrt(1+sigma_max^2) = 0.998 of it)"
)
_NOTE_ONE_SHORT = (
    "A1111 walks the timesteps 1, 1+1000//n, ... but stops one step short, at timestep 1; "
    "diffusers also takes the last step, to timestep 0"
)
_NOTE_GAUSS = "SDE noise is fresh Gaussian noise per step from each image's generator (A1111: a Brownian tree)"


def _s(**options) -> dict:
    return {k: str(v) for k, v in options.items()}


# A1111 v1.10.1 order (the UI's order; the first is the UI default).
SAMPLERS: list[SamplerInfo] = [
    SamplerInfo(
        "DPM++ 2M",
        ("k_dpmpp_2m",),
        _s(scheduler="karras"),
        "DPMSolverMultistepScheduler",
        _FLAGS + _WHOLE_TIMESTEPS,
        _DPMPP,
        notes=(_NOTE_VP_START, "Karras timesteps are rounded to whole numbers by diffusers"),
    ),
    SamplerInfo(
        "DPM++ SDE",
        ("k_dpmpp_sde",),
        _s(scheduler="karras", second_order=True, brownian_noise=True),
        "DPMSolverSDEScheduler",
        _SPACING + _FLAGS,
        dict(_K_BASE),
        notes=(_NOTE_LINEAR,),
    ),
    SamplerInfo(
        "DPM++ 2M SDE",
        ("k_dpmpp_2m_sde",),
        _s(scheduler="exponential", brownian_noise=True),
        "DPMSolverMultistepScheduler",
        _FLAGS + _WHOLE_TIMESTEPS,
        {**_DPMPP, "algorithm_type": "sde-dpmsolver++"},
        notes=(_NOTE_VP_START, _NOTE_GAUSS),
    ),
    SamplerInfo(
        "DPM++ 2M SDE Heun",
        ("k_dpmpp_2m_sde_heun",),
        _s(scheduler="exponential", brownian_noise=True, solver_type="heun"),
        "DPMSolverMultistepScheduler",
        _FLAGS + _WHOLE_TIMESTEPS,
        {**_DPMPP, "algorithm_type": "sde-dpmsolver++", "solver_type": "heun"},
        notes=(_NOTE_VP_START, _NOTE_GAUSS),
    ),
    SamplerInfo(
        "DPM++ 2S a",
        ("k_dpmpp_2s_a",),
        _s(scheduler="karras", uses_ensd=True, second_order=True),
        refusal="diffusers has no ancestral single-step DPM-Solver++ (DPMSolverSinglestepScheduler is not ancestral)",
    ),
    SamplerInfo(
        "DPM++ 3M SDE",
        ("k_dpmpp_3m_sde",),
        _s(scheduler="exponential", discard_next_to_last_sigma=True, brownian_noise=True),
        refusal="diffusers' third-order SDE DPM-Solver++ update weighs the second difference differently "
        "from k-diffusion's DPM++ 3M SDE, so it would not be the same sampler",
    ),
    SamplerInfo(
        "Euler a",
        ("k_euler_a", "k_euler_ancestral"),
        _s(uses_ensd=True),
        "EulerAncestralDiscreteScheduler",
        _SPACING,
        {"timestep_spacing": "linspace"},
        notes=(_NOTE_LINEAR,),
    ),
    SamplerInfo(
        "Euler",
        ("k_euler",),
        {},
        "EulerDiscreteScheduler",
        _ALL,
        {**_K_BASE, "timestep_type": "discrete", "final_sigmas_type": "zero"},
    ),
    SamplerInfo("LMS", ("k_lms",), {}, "LMSDiscreteScheduler", _SPACING + _FLAGS, dict(_K_BASE), notes=(_NOTE_LINEAR,)),
    SamplerInfo(
        "Heun",
        ("k_heun",),
        _s(second_order=True),
        "HeunDiscreteScheduler",
        _SPACING + _FLAGS + ("sgm_uniform",) + _WHOLE_TIMESTEPS,
        dict(_K_BASE),
        notes=(_NOTE_LINEAR.replace("Uniform/Normal", "Uniform/Normal/SGM Uniform"),),
    ),
    SamplerInfo(
        "DPM2",
        ("k_dpm_2",),
        _s(scheduler="karras", discard_next_to_last_sigma=True, second_order=True),
        "KDPM2DiscreteScheduler",
        _SPACING + _FLAGS,
        dict(_K_BASE),
        notes=(_NOTE_DISCARD, _NOTE_LINEAR),
    ),
    SamplerInfo(
        "DPM2 a",
        ("k_dpm_2_a",),
        _s(scheduler="karras", discard_next_to_last_sigma=True, uses_ensd=True, second_order=True),
        "KDPM2AncestralDiscreteScheduler",
        _SPACING + _FLAGS,
        dict(_K_BASE),
        notes=(_NOTE_DISCARD, _NOTE_LINEAR),
    ),
    SamplerInfo(
        "DPM fast",
        ("k_dpm_fast",),
        _s(uses_ensd=True),
        refusal="diffusers has no DPM-Solver-fast (fixed-order DPM-Solver over a log-SNR grid)",
    ),
    SamplerInfo("DPM adaptive", ("k_dpm_ad",), _s(uses_ensd=True), refusal="diffusers has no adaptive-step DPM-Solver"),
    SamplerInfo(
        "Restart", ("restart",), _s(scheduler="karras", second_order=True), refusal="diffusers has no Restart sampler"
    ),
    SamplerInfo(
        "DDIM",
        ("ddim",),
        {},
        "DDIMScheduler",
        (),
        {**_TIMESTEP_GRID, "clip_sample": False, "thresholding": False},
        notes=(_NOTE_ONE_SHORT,),
    ),
    SamplerInfo(
        "DDIM CFG++",
        ("ddim_cfgpp",),
        {},
        refusal="CFG++ re-noises with the unconditional prediction; no diffusers scheduler does that",
    ),
    SamplerInfo(
        "PLMS", ("plms",), {}, "PNDMScheduler", (), {**_TIMESTEP_GRID, "skip_prk_steps": True}, notes=(_NOTE_ONE_SHORT,)
    ),
    SamplerInfo(
        "UniPC",
        ("unipc",),
        {},
        "UniPCMultistepScheduler",
        (),
        # A1111's defaults: order 3, variant bh1, predict x0, time-uniform steps
        {
            "solver_order": 3,
            "solver_type": "bh1",
            "predict_x0": True,
            "lower_order_final": True,
            "timestep_spacing": "linspace",
            "use_karras_sigmas": False,
            "use_exponential_sigmas": False,
            "use_beta_sigmas": False,
            "use_flow_sigmas": False,
            # A1111 ends UniPC at timestep 0 (sigma_min); a zero sigma would make bh1 divide by zero
            "final_sigmas_type": "sigma_min",
        },
        notes=("diffusers rounds UniPC's time-uniform timesteps to whole numbers",),
    ),
    SamplerInfo(
        "LCM",
        ("k_lcm",),
        {},
        "LCMScheduler",
        (),
        {"original_inference_steps": 50, "timestep_scaling": 10.0},
        notes=("A1111 re-noises to the interpolated sigma; diffusers to the quantized timestep's",),
    ),
]

_SAMPLER_BY_KEY = {key.lower(): s for s in SAMPLERS for key in (s.name, *s.aliases)}


# --- names ------------------------------------------------------------------------------------------------


def _valid_samplers() -> str:
    return ", ".join(s.name for s in SAMPLERS if s.supported)


def find_sampler(name: str) -> SamplerInfo | None:
    return _SAMPLER_BY_KEY.get(str(name).strip().lower()) if name else None


# every way an old-style name ends with its schedule ("DPM++ 2M Karras", "Euler SGMUniform"), longest first so
# that "Euler SGM Uniform" is not read as "Euler SGM" + "Uniform"
_SCHEDULE_SUFFIXES = sorted(
    ((key, info.label) for info in schedules.SCHEDULERS[1:] for key in (info.label, info.name, *(info.aliases or ()))),
    key=lambda kv: -len(kv[0]),
)


def split_schedule_suffix(name: str) -> tuple[str, str | None]:
    """An old-style sampler name that carries its schedule, split: "DPM++ 2M Karras" -> ("DPM++ 2M", "Karras");
    any other name -> (name, None). The first part need not be a known sampler."""
    text = str(name or "").strip()
    for suffix, label in _SCHEDULE_SUFFIXES:
        if text.lower().endswith(" " + suffix.lower()) and len(text) > len(suffix) + 1:
            return text[: -len(suffix) - 1], label
    return text, None


def resolve_sampler_name(name: str) -> tuple[str, str | None]:
    """Canonical sampler name and the schedule label an old-style name carried:
    "k_euler_a" -> ("Euler a", None); "DPM++ 2M Karras" -> ("DPM++ 2M", "Karras")."""
    found = find_sampler(name)
    if found is not None:
        return found.name, None
    sampler, label = split_schedule_suffix(name)
    found = find_sampler(sampler) if label is not None else None
    if found is not None:
        return found.name, label
    raise UnsupportedSamplerError(f"Unknown sampler {name!r}. Choose one of: {_valid_samplers()}.")


def resolve_scheduler_name(name_or_label: str | None) -> str:
    """Canonical schedule name ("karras") from a name, label or alias, any case; empty means "automatic"."""
    if name_or_label is None or str(name_or_label).strip() == "":
        return "automatic"
    info = schedules.find_schedule(name_or_label)
    if info is None:
        labels = ", ".join(s.label for s in schedules.SCHEDULERS)
        raise UnsupportedSamplerError(f"Unknown schedule type {name_or_label!r}. Choose one of: {labels}.")
    return info.name


def _label(schedule_name: str) -> str:
    return schedules.find_schedule(schedule_name).label


def _infotext_label(info, requested: str) -> str:
    """A1111 writes the schedule a k-diffusion sampler really used: "Automatic" becomes the sampler's default
    scheduler's label (DPM++ 2M -> Karras) when it has one; samplers without one keep "Automatic"."""
    default = info.options.get("scheduler")
    return _label(default if requested == "automatic" and default else requested)


def supported_schedules(sampler: str) -> list[str]:
    """Schedule names (in A1111's list order) that `sampler` honours; empty for a refused sampler."""
    info = find_sampler(sampler)
    if info is None or not info.supported:
        return []
    allowed = {"automatic", *info.schedules}
    return [s.name for s in schedules.SCHEDULERS if s.name in allowed]


def sampler_supports(sampler: str, scheduler: str | None) -> bool:
    """Whether build_scheduler accepts this pair (names, labels or aliases)."""
    try:
        name, suffix = resolve_sampler_name(sampler)
        schedule = resolve_scheduler_name(suffix or scheduler)
    except UnsupportedSamplerError:
        return False
    return schedule in supported_schedules(name)


# --- building ---------------------------------------------------------------------------------------------


@dataclass
class SamplerSetup:
    scheduler: object  # a diffusers scheduler, set_timesteps already called
    sampler_name: str  # canonical A1111 name ("DPM++ 2M" for "DPM++ 2M Karras")
    schedule_label: str  # for infotext "Schedule type": the requested label ("Automatic" stays)
    schedule_name: str | None  # the schedule actually walked ("karras"); None: the sampler's own timesteps
    sigmas: torch.Tensor | None  # the sigma list walked (k-diffusion units), None for timestep samplers
    pipeline_kwargs: dict  # what set_timesteps got: give the same to a diffusers pipeline call
    uses_ensd: bool = False
    notes: tuple[str, ...] = ()  # known differences from A1111 for this sampler


def _diffusers_class(name: str):
    import diffusers

    return getattr(diffusers, name)


def _config_for(cls, model_config: dict, overrides: dict) -> dict:
    """The model's config plus overrides, limited to what `cls` takes (no warnings, no stray attributes)."""
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    merged = {**dict(model_config), **overrides}
    return {k: v for k, v in merged.items() if k in accepted}


def _unsupported_pair(info: SamplerInfo, schedule: str) -> UnsupportedSamplerError:
    works = ", ".join(_label(s) for s in supported_schedules(info.name))
    return UnsupportedSamplerError(
        f"Sampler {info.name!r} cannot run with schedule type {_label(schedule)!r}. "
        f"Schedule types that work with {info.name}: {works}."
    )


def _whole_timesteps(schedule: str, steps: int, train_sigmas: torch.Tensor) -> list[int]:
    """Training timesteps of the schedules made of whole timesteps (Simple, DDIM), descending."""
    n = len(train_sigmas)
    if schedule == "simple":
        stride = n / steps
        return [n - 1 - int(i * stride) for i in range(steps)]
    stride = max(n // steps, 1)
    return list(range(1, n, stride))[::-1]


def _lcm_timesteps(steps: int, train_sigmas: torch.Tensor, original_steps: int = 50) -> list[int]:
    """A1111's LCM discretization: n points evenly over the 50 distilled timesteps' indices, each snapped
    to the nearest one in log-sigma (19, 39, ..., 999 for 1000 training steps)."""
    skip = len(train_sigmas) // original_steps
    valid = train_sigmas[torch.arange(original_steps) * skip + (skip - 1)]
    idx = torch.linspace(original_steps - 1, 0, steps)
    sigma = schedules.t_to_sigma(idx, valid)
    nearest = (sigma.log()[None, :] - valid.log()[:, None]).abs().argmin(dim=0)
    return [int(i) * skip + (skip - 1) for i in nearest]


def build_scheduler(
    sampler_name: str,
    scheduler_name: str | None,
    steps: int,
    scheduler_config: dict,
    *,
    eta: float | None = None,
    seeds: list[int] | None = None,
    is_sdxl: bool = False,
    params: schedules.ScheduleParams | None = None,
) -> SamplerSetup:
    """A diffusers scheduler configured as A1111's `sampler_name` with schedule `scheduler_name`, timesteps set.

    eta: A1111's eta. DDIM reads it in `step(eta=...)`; ancestral samplers only support the default 1.
    seeds: the batch's seeds, for DPM++ SDE's Brownian-tree noise (one tree per image, as A1111).
    """
    name, suffix = resolve_sampler_name(sampler_name)
    info = find_sampler(name)
    requested = resolve_scheduler_name(suffix or scheduler_name)
    if not info.supported:
        raise UnsupportedSamplerError(
            f"Sampler {info.name!r} is not available: {info.refusal}. Choose one of: {_valid_samplers()}."
        )
    if requested not in supported_schedules(info.name):
        raise _unsupported_pair(info, requested)
    if steps < 1:
        raise UnsupportedSamplerError(f"Sampling steps must be at least 1, got {steps}.")
    if eta is not None and info.noise_is_fixed and float(eta) != 1.0:
        raise UnsupportedSamplerError(
            f"Sampler {info.name!r} supports only eta 1 (its diffusers scheduler has no eta setting); got {eta}."
        )

    params = params or schedules.ScheduleParams(is_sdxl=is_sdxl)
    schedule = info.default_schedule if requested == "automatic" else requested
    train_sigmas = schedules.training_sigmas(scheduler_config)
    cls = _diffusers_class(info.scheduler_class)
    overrides = dict(info.config)
    sigmas = None

    if info.scheduler_class == "EulerDiscreteScheduler":
        sigmas = schedules.get_sigmas(schedule, steps, train_sigmas, params)
        kwargs = {"sigmas": sigmas.tolist()}
    elif schedule is None:  # the sampler's own timesteps
        kwargs = {"num_inference_steps": steps}
        if info.scheduler_class == "LCMScheduler":
            timesteps = _lcm_timesteps(steps, train_sigmas)
            if len(set(timesteps)) != len(timesteps):
                raise UnsupportedSamplerError(f"LCM supports at most 50 steps; got {steps}.")
            kwargs = {"timesteps": timesteps}
    elif schedule in _FLAGS:
        overrides[f"use_{schedule}_sigmas"] = True
        kwargs = {"num_inference_steps": steps}
    elif schedule in _SPACING:
        kwargs = {"num_inference_steps": steps}
    elif schedule in _WHOLE_TIMESTEPS:
        kwargs = {"timesteps": _whole_timesteps(schedule, steps, train_sigmas)}
    elif schedule == "sgm_uniform":  # Heun takes fractional timesteps
        kwargs = {"timesteps": torch.linspace(len(train_sigmas) - 1, 0, steps + 1)[:-1].tolist()}
    else:  # pragma: no cover - SamplerInfo.schedules lists only the cases above
        raise _unsupported_pair(info, schedule)

    if info.scheduler_class == "DPMSolverSDEScheduler":
        overrides["noise_sampler_seed"] = list(seeds) if seeds else 0  # deterministic even without seeds
    config = _config_for(cls, scheduler_config, overrides)
    scheduler = cls.from_config(config)
    scheduler.set_timesteps(**kwargs)
    if sigmas is None and schedule is not None:
        sigmas = walked_sigmas(scheduler)

    return SamplerSetup(
        scheduler=scheduler,
        sampler_name=info.name,
        schedule_label=_infotext_label(info, requested),
        schedule_name=schedule,
        sigmas=sigmas,
        pipeline_kwargs=kwargs,
        uses_ensd=info.uses_ensd,
        notes=info.notes,
    )


def walked_sigmas(scheduler) -> torch.Tensor:
    """The plain sigma list a k-diffusion-style diffusers scheduler walks (second-order classes repeat each
    inner sigma; the repeats are folded back)."""
    return torch.unique_consecutive(scheduler.sigmas.detach().cpu().to(torch.float32))
