"""Sigma schedules: A1111's twelve "Schedule type" choices as small pure functions.

Every function returns a descending float32 tensor of sigmas (noise levels in k-diffusion's "VE" units,
x = x0 + sigma * eps) that the sampler walks through; one step per adjacent pair. They follow k-diffusion's
`DiscreteSchedule` and A1111's `sd_schedulers.py`, including their quirks, because seed-for-seed images
depend on them:
  * KL Optimal ends at sigma_min, not 0 (A1111 appends no zero).
  * DDIM can yield more than n steps when 1000 is not a multiple of n (it walks range(1, 1000, 1000 // n)).
  * Align Your Steps interpolates the published 11-value list even when n == 10.

The model's training sigmas come from its scheduler config (betas -> alphas_cumprod), computed the way the
original LDM code does (float64 cumulative product, stored as float32), which is what A1111 samples with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ScheduleInfo:
    """One entry of /sdapi/v1/schedulers."""

    name: str
    label: str
    aliases: tuple[str, ...] | None = None
    default_rho: float = -1.0
    need_inner_model: bool = False

    def to_api(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "aliases": list(self.aliases) if self.aliases is not None else None,
            "default_rho": self.default_rho,
            "need_inner_model": self.need_inner_model,
        }


# Order and fields as A1111 v1.10.1 lists them.
SCHEDULERS: list[ScheduleInfo] = [
    ScheduleInfo("automatic", "Automatic"),
    ScheduleInfo("uniform", "Uniform", need_inner_model=True),
    ScheduleInfo("karras", "Karras", default_rho=7.0),
    ScheduleInfo("exponential", "Exponential"),
    ScheduleInfo("polyexponential", "Polyexponential", default_rho=1.0),
    ScheduleInfo("sgm_uniform", "SGM Uniform", aliases=("SGMUniform",), need_inner_model=True),
    ScheduleInfo("kl_optimal", "KL Optimal"),
    ScheduleInfo("align_your_steps", "Align Your Steps"),
    ScheduleInfo("simple", "Simple", need_inner_model=True),
    ScheduleInfo("normal", "Normal", need_inner_model=True),
    ScheduleInfo("ddim", "DDIM", need_inner_model=True),
    ScheduleInfo("beta", "Beta", need_inner_model=True),
]

_BY_KEY = {}
for _s in SCHEDULERS:
    for _key in (_s.name, _s.label, *(_s.aliases or ())):
        _BY_KEY[_key.lower()] = _s


def find_schedule(name_or_label: str | None) -> ScheduleInfo | None:
    """Name, label or alias, any case; None for unknown."""
    if not name_or_label:
        return None
    return _BY_KEY.get(str(name_or_label).strip().lower())


# --- the model's own noise levels -------------------------------------------------------------------------


def training_sigmas(scheduler_config: dict) -> torch.Tensor:
    """The model's 1000 (num_train_timesteps) training sigmas, ascending, float32."""
    n = int(scheduler_config.get("num_train_timesteps", 1000))
    start = float(scheduler_config.get("beta_start", 0.00085))
    end = float(scheduler_config.get("beta_end", 0.012))
    kind = scheduler_config.get("beta_schedule", "scaled_linear")
    plain = scheduler_config.get("trained_betas") is None and not scheduler_config.get("rescale_betas_zero_snr")
    if plain and kind == "scaled_linear":  # LDM calls this "linear"
        betas = torch.linspace(start**0.5, end**0.5, n, dtype=torch.float64) ** 2
    elif plain and kind == "linear":
        betas = torch.linspace(start, end, n, dtype=torch.float64)
    else:
        # anything unusual: take diffusers' own reading of the config
        from diffusers import DDPMScheduler

        acp = DDPMScheduler.from_config(scheduler_config).alphas_cumprod.to(torch.float32)
        return ((1 - acp) / acp) ** 0.5
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0).to(torch.float32)
    return ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5


def sigma_to_t(sigma, train_sigmas: torch.Tensor) -> torch.Tensor:
    """Continuous timestep of a sigma: linear interpolation in log-sigma between training steps (k-diffusion)."""
    log_sigmas = train_sigmas.log()
    log_sigma = torch.as_tensor(sigma, dtype=torch.float32).log()
    dists = log_sigma - log_sigmas.view(-1, *([1] * log_sigma.ndim))
    low_idx = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=log_sigmas.shape[0] - 2)
    high_idx = low_idx + 1
    low, high = log_sigmas[low_idx], log_sigmas[high_idx]
    w = ((low - log_sigma) / (low - high)).clamp(0, 1)
    return (1 - w) * low_idx + w * high_idx


def t_to_sigma(t, train_sigmas: torch.Tensor) -> torch.Tensor:
    """Sigma of a continuous timestep: log-sigma interpolated linearly between the two training steps."""
    log_sigmas = train_sigmas.log()
    t = torch.as_tensor(t, dtype=torch.float32).clamp(0, len(log_sigmas) - 1)  # float noise at the ends
    low_idx, high_idx, w = t.floor().long(), t.ceil().long(), t.frac()
    return ((1 - w) * log_sigmas[low_idx] + w * log_sigmas[high_idx]).exp()


def _append_zero(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x.new_zeros([1])])


# --- the schedules ----------------------------------------------------------------------------------------


def uniform(n: int, train_sigmas: torch.Tensor) -> torch.Tensor:
    """The model's own discretization (k-diffusion get_sigmas): n timesteps evenly from the last to 0."""
    t = torch.linspace(len(train_sigmas) - 1, 0, n)
    return _append_zero(t_to_sigma(t, train_sigmas))


def normal(n: int, train_sigmas: torch.Tensor) -> torch.Tensor:
    """Timesteps evenly between those of sigma_max and sigma_min (the same points as uniform for DDPM models)."""
    start = sigma_to_t(train_sigmas[-1], train_sigmas)
    end = sigma_to_t(train_sigmas[0], train_sigmas)
    return _append_zero(t_to_sigma(torch.linspace(float(start), float(end), n), train_sigmas))


def sgm_uniform(n: int, train_sigmas: torch.Tensor) -> torch.Tensor:
    """n + 1 timesteps evenly from sigma_max to sigma_min, the last dropped, then 0 (SGM's discretization)."""
    start = sigma_to_t(train_sigmas[-1], train_sigmas)
    end = sigma_to_t(train_sigmas[0], train_sigmas)
    return _append_zero(t_to_sigma(torch.linspace(float(start), float(end), n + 1)[:-1], train_sigmas))


def simple(n: int, train_sigmas: torch.Tensor) -> torch.Tensor:
    """Every (1000/n)-th training sigma counted from the top, then 0."""
    stride = len(train_sigmas) / n
    picked = [float(train_sigmas[-(1 + int(i * stride))]) for i in range(n)]
    return torch.tensor(picked + [0.0], dtype=torch.float32)


def ddim(n: int, train_sigmas: torch.Tensor) -> torch.Tensor:
    """Training sigmas at timesteps 1, 1 + 1000//n, ... (as DDIM picks them), descending, then 0."""
    stride = max(len(train_sigmas) // n, 1)
    picked = [float(train_sigmas[t]) for t in range(1, len(train_sigmas), stride)]
    return torch.tensor(picked[::-1] + [0.0], dtype=torch.float32)


def karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022): evenly spaced in sigma^(1/rho)."""
    ramp = torch.linspace(0, 1, n)
    min_inv_rho, max_inv_rho = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)


def exponential(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Evenly spaced in log sigma."""
    return _append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n).exp())


def polyexponential(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> torch.Tensor:
    """Log sigma follows a polynomial ramp of degree rho (rho 1 = exponential)."""
    ramp = torch.linspace(1, 0, n) ** rho
    return _append_zero((ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min)).exp())


def kl_optimal(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Evenly spaced in arctan(sigma); n + 1 values ending at sigma_min (no trailing zero, as in A1111)."""
    alpha_min = torch.arctan(torch.tensor(sigma_min))
    alpha_max = torch.arctan(torch.tensor(sigma_max))
    frac = torch.arange(n + 1) / n
    return torch.tan(frac * alpha_min + (1.0 - frac) * alpha_max)


# NVIDIA's published Align Your Steps sigmas for 10 steps (11 values).
AYS_SD1 = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)
AYS_SDXL = (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029)


def align_your_steps(n: int, is_sdxl: bool = False) -> torch.Tensor:
    """The published list, log-linearly resampled to n values, then 0."""
    published = torch.tensor(AYS_SDXL if is_sdxl else AYS_SD1, dtype=torch.float64)
    if n == len(published):
        return _append_zero(published.to(torch.float32))
    # interpolate log sigma over [0, 1], ascending sigma order like the reference recipe
    ys = published.flip(0).log()
    xs = torch.linspace(0, 1, len(published), dtype=torch.float64)
    new_xs = torch.linspace(0, 1, n, dtype=torch.float64)
    idx = torch.searchsorted(xs, new_xs, right=True).clamp(1, len(xs) - 1)
    x0, x1, y0, y1 = xs[idx - 1], xs[idx], ys[idx - 1], ys[idx]
    new_ys = y0 + (new_xs - x0) / (x1 - x0) * (y1 - y0)
    return _append_zero(new_ys.exp().flip(0).to(torch.float32))


def beta(n: int, sigma_min: float, sigma_max: float, alpha: float = 0.6, beta_: float = 0.6) -> torch.Tensor:
    """Sigmas at the quantiles of a Beta(alpha, beta) distribution ("Beta Sampling is All You Need")."""
    quantiles = [beta_ppf(1.0 - i / (n - 1) if n > 1 else 1.0, alpha, beta_) for i in range(n)]
    sigmas = [sigma_min + q * (sigma_max - sigma_min) for q in quantiles]
    return torch.tensor(sigmas + [0.0], dtype=torch.float32)


# --- Beta distribution quantile (no scipy) ----------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function, modified Lentz's method."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def beta_cdf(x: float, a: float, b: float) -> float:
    """Regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def beta_ppf(q: float, a: float, b: float) -> float:
    """Inverse of beta_cdf by bisection (the cdf is monotonic; 100 halvings reach float64 resolution)."""
    if q <= 0.0:
        return 0.0
    if q >= 1.0:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if beta_cdf(mid, a, b) < q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# --- one entry point --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleParams:
    """Settings A1111 keeps in options; defaults are A1111's."""

    rho: float | None = None  # None: the schedule's default_rho
    beta_alpha: float = 0.6
    beta_beta: float = 0.6
    is_sdxl: bool = False  # Align Your Steps has separate SD1 / SDXL lists
    sigma_min: float | None = None  # None: the model's (smallest training sigma)
    sigma_max: float | None = None  # None: the model's (largest)


def get_sigmas(
    schedule: str,
    n: int,
    train_sigmas: torch.Tensor,
    params: ScheduleParams | None = None,
    *,
    discard_penultimate: bool = False,
) -> torch.Tensor:
    """The sigma schedule for `n` steps. `schedule` is a name/label; "automatic" means the model's own
    discretization (uniform). discard_penultimate: compute n + 1 steps and drop the next-to-last sigma
    (A1111 does this for DPM2, DPM2 a and DPM++ 3M SDE)."""
    info = find_schedule(schedule)
    if info is None:
        raise ValueError(f"unknown schedule {schedule!r}")
    params = params or ScheduleParams()
    if n < 1:
        raise ValueError("steps must be at least 1")
    steps = n + 1 if discard_penultimate else n
    sigma_min = params.sigma_min if params.sigma_min is not None else float(train_sigmas[0])
    sigma_max = params.sigma_max if params.sigma_max is not None else float(train_sigmas[-1])
    rho = params.rho if params.rho else info.default_rho
    name = info.name
    if name in ("automatic", "uniform"):
        sigmas = uniform(steps, train_sigmas)
    elif name == "normal":
        sigmas = normal(steps, train_sigmas)
    elif name == "sgm_uniform":
        sigmas = sgm_uniform(steps, train_sigmas)
    elif name == "simple":
        sigmas = simple(steps, train_sigmas)
    elif name == "ddim":
        sigmas = ddim(steps, train_sigmas)
    elif name == "karras":
        sigmas = karras(steps, sigma_min, sigma_max, rho)
    elif name == "exponential":
        sigmas = exponential(steps, sigma_min, sigma_max)
    elif name == "polyexponential":
        sigmas = polyexponential(steps, sigma_min, sigma_max, rho)
    elif name == "kl_optimal":
        sigmas = kl_optimal(steps, sigma_min, sigma_max)
    elif name == "align_your_steps":
        sigmas = align_your_steps(steps, params.is_sdxl)
    elif name == "beta":
        sigmas = beta(steps, sigma_min, sigma_max, params.beta_alpha, params.beta_beta)
    else:  # pragma: no cover - table and dispatch are kept in step by tests
        raise ValueError(f"no sigma function for schedule {name!r}")
    if discard_penultimate:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    return sigmas.to(torch.float32)
