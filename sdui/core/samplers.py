"""A1111's samplers: names, aliases and options as /sdapi/v1/samplers lists them, and the algorithm each runs.

Three kinds, as in A1111:
  * "k": k-diffusion samplers (sdui.core.k_samplers) walking a sigma schedule; every schedule type applies, and
    "Automatic" means the sampler's own default schedule (the `scheduler` option), else the model's
    discretization.
  * "timesteps": DDIM, DDIM CFG++, PLMS and UniPC (sdui.core.timestep_samplers) walking training timesteps
    1, 1 + 1000//n, ...; like A1111's they do not read the schedule type, so any is accepted.
  * "lcm": LCM on the 50 timesteps an LCM model was distilled on.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdui.core import schedules
from sdui.errors import UnsupportedSamplerError

CHURN_PARAMS = ("s_churn", "s_tmin", "s_tmax", "s_noise")


@dataclass(frozen=True)
class SamplerInfo:
    """One A1111 sampler. name/aliases/options are what /sdapi/v1/samplers returns."""

    name: str
    aliases: tuple[str, ...]
    options: dict  # string values, as A1111's API shows them
    kind: str  # "k", "timesteps" or "lcm"
    function: str  # its function in k_samplers / timestep_samplers
    extra_params: tuple[str, ...] = ()  # the s_* settings A1111 hands this sampler
    has_eta: bool = False  # takes eta (ancestral, SDE, DPM fast/adaptive, DDIM)

    @property
    def default_schedule(self) -> str | None:
        return self.options.get("scheduler")

    def _flag(self, key: str) -> bool:
        return self.options.get(key) == "True"

    second_order = property(lambda self: self._flag("second_order"))  # two model calls per step
    brownian_noise = property(lambda self: self._flag("brownian_noise"))  # SDE noise from a Brownian tree
    uses_ensd = property(lambda self: self._flag("uses_ensd"))
    discard_next_to_last_sigma = property(lambda self: self._flag("discard_next_to_last_sigma"))

    @property
    def solver_type(self) -> str | None:
        return self.options.get("solver_type")

    def to_api(self) -> dict:
        return {"name": self.name, "aliases": list(self.aliases), "options": dict(self.options)}


def _s(**options) -> dict:
    return {k: str(v) for k, v in options.items()}


_NOISE = ("s_noise",)

# A1111 v1.10's order (the UI's order; the first is the UI default).
SAMPLERS: list[SamplerInfo] = [
    SamplerInfo("DPM++ 2M", ("k_dpmpp_2m",), _s(scheduler="karras"), "k", "dpmpp_2m"),
    SamplerInfo(
        "DPM++ SDE",
        ("k_dpmpp_sde",),
        _s(scheduler="karras", second_order=True, brownian_noise=True),
        "k",
        "dpmpp_sde",
        _NOISE,
        has_eta=True,
    ),
    SamplerInfo(
        "DPM++ 2M SDE",
        ("k_dpmpp_2m_sde",),
        _s(scheduler="exponential", brownian_noise=True),
        "k",
        "dpmpp_2m_sde",
        _NOISE,
        has_eta=True,
    ),
    SamplerInfo(
        "DPM++ 2M SDE Heun",
        ("k_dpmpp_2m_sde_heun",),
        _s(scheduler="exponential", brownian_noise=True, solver_type="heun"),
        "k",
        "dpmpp_2m_sde",
        _NOISE,
        has_eta=True,
    ),
    SamplerInfo(
        "DPM++ 2S a",
        ("k_dpmpp_2s_a",),
        _s(scheduler="karras", uses_ensd=True, second_order=True),
        "k",
        "dpmpp_2s_ancestral",
        _NOISE,
        has_eta=True,
    ),
    SamplerInfo(
        "DPM++ 3M SDE",
        ("k_dpmpp_3m_sde",),
        _s(scheduler="exponential", discard_next_to_last_sigma=True, brownian_noise=True),
        "k",
        "dpmpp_3m_sde",
        _NOISE,
        has_eta=True,
    ),
    SamplerInfo(
        "Euler a", ("k_euler_a", "k_euler_ancestral"), _s(uses_ensd=True), "k", "euler_ancestral", has_eta=True
    ),
    SamplerInfo("Euler", ("k_euler",), {}, "k", "euler", CHURN_PARAMS),
    SamplerInfo("LMS", ("k_lms",), {}, "k", "lms"),
    SamplerInfo("Heun", ("k_heun",), _s(second_order=True), "k", "heun", CHURN_PARAMS),
    SamplerInfo(
        "DPM2",
        ("k_dpm_2",),
        _s(scheduler="karras", discard_next_to_last_sigma=True, second_order=True),
        "k",
        "dpm_2",
        CHURN_PARAMS,
    ),
    SamplerInfo(
        "DPM2 a",
        ("k_dpm_2_a",),
        _s(scheduler="karras", discard_next_to_last_sigma=True, uses_ensd=True, second_order=True),
        "k",
        "dpm_2_ancestral",
        _NOISE,
        has_eta=True,
    ),
    SamplerInfo("DPM fast", ("k_dpm_fast",), _s(uses_ensd=True), "k", "dpm_fast", _NOISE, has_eta=True),
    SamplerInfo("DPM adaptive", ("k_dpm_ad",), _s(uses_ensd=True), "k", "dpm_adaptive", has_eta=True),
    SamplerInfo("Restart", ("restart",), _s(scheduler="karras", second_order=True), "k", "restart"),
    SamplerInfo("DDIM", ("ddim",), {}, "timesteps", "ddim", has_eta=True),
    SamplerInfo("DDIM CFG++", ("ddim_cfgpp",), {}, "timesteps", "ddim_cfgpp", has_eta=True),
    SamplerInfo("PLMS", ("plms",), {}, "timesteps", "plms"),
    SamplerInfo("UniPC", ("unipc",), {}, "timesteps", "unipc"),
    SamplerInfo("LCM", ("k_lcm",), {}, "lcm", "lcm"),
]

_SAMPLER_BY_KEY = {key.lower(): s for s in SAMPLERS for key in (s.name, *s.aliases)}


def _valid_samplers() -> str:
    return ", ".join(s.name for s in SAMPLERS)


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


def sampler_supports(sampler: str, scheduler: str | None) -> bool:
    """Whether the pair names a sampler and a schedule type (every pair of those runs, as in A1111)."""
    try:
        resolve_sampler_name(sampler)
        resolve_scheduler_name(scheduler)
    except UnsupportedSamplerError:
        return False
    return True
