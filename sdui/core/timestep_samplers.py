"""A1111's "timesteps" samplers: DDIM, DDIM CFG++, PLMS and UniPC, on the variance-preserving latent.

    x = ddim(model, x, timesteps, alphas_cumprod, noise=..., step=...)

Here x is x_t = sqrt(a) x0 + sqrt(1 - a) eps (a = alphas_cumprod[t]), and `model(x, t)` returns the guided noise
prediction eps at training timestep t (fractional for UniPC). `timesteps` ascending, as A1111 builds them
(1, 1 + 1000//n, ...); the loops walk them downwards and stop at the first one, as A1111's do: the result keeps
the (tiny) noise level of timestep 1, it is not taken to 0. `step(i, x, pred_x0)` follows each step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Model = Callable[[torch.Tensor, float | torch.Tensor], torch.Tensor]


def _nothing(i, x, pred_x0) -> None:
    pass


def _alphas(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor):
    """a_t and a_prev (the timestep below; alphas_cumprod[0] for the first) per index, in float64."""
    acp = alphas_cumprod.double().cpu()
    t = timesteps.long().cpu()
    prev = torch.cat([t[:1] * 0, t[:-1]])
    return acp[t], acp[prev]


def _ddim_step(x, e_t, direction, a_t, a_prev, sigma_t, noise):
    pred_x0 = (x - math.sqrt(1 - a_t) * e_t) / math.sqrt(a_t)
    x_prev = math.sqrt(a_prev) * pred_x0 + math.sqrt(1 - a_prev - sigma_t**2) * direction + sigma_t * noise
    return x_prev, pred_x0


def ddim(model, x, timesteps, alphas_cumprod, *, noise, step=_nothing, eta=0.0, uncond_eps=None):
    """DDIM (Song et al. 2020); eta > 0 adds fresh noise each step (drawn every step, as A1111 does).
    uncond_eps: DDIM CFG++ points the direction along the unguided noise prediction instead."""
    a, a_prev = _alphas(alphas_cumprod, timesteps)
    sigmas = eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).sqrt()
    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        e_t = model(x, float(timesteps[index]))
        direction = uncond_eps() if uncond_eps is not None else e_t
        fresh = noise(None, None)
        x, pred_x0 = _ddim_step(x, e_t, direction, float(a[index]), float(a_prev[index]), float(sigmas[index]), fresh)
        step(i, x, pred_x0)
    return x


def plms(model, x, timesteps, alphas_cumprod, *, noise=None, step=_nothing):
    """PLMS (Liu et al. 2022): Adams-Bashforth on the noise predictions; the first step is a pseudo improved
    Euler step (two model calls), the next two use lower orders."""
    a, a_prev = _alphas(alphas_cumprod, timesteps)
    old_eps: list[torch.Tensor] = []
    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        a_t, a_p = float(a[index]), float(a_prev[index])
        e_t = model(x, float(timesteps[index]))
        if not old_eps:
            x_prev, _ = _ddim_step(x, e_t, e_t, a_t, a_p, 0.0, 0.0)
            e_next = model(x_prev, float(timesteps[max(index - 1, 0)]))
            e_prime = (e_t + e_next) / 2
        elif len(old_eps) == 1:
            e_prime = (3 * e_t - old_eps[-1]) / 2
        elif len(old_eps) == 2:
            e_prime = (23 * e_t - 16 * old_eps[-1] + 5 * old_eps[-2]) / 12
        else:
            e_prime = (55 * e_t - 59 * old_eps[-1] + 37 * old_eps[-2] - 9 * old_eps[-3]) / 24
        x, pred_x0 = _ddim_step(x, e_prime, e_prime, a_t, a_p, 0.0, 0.0)
        old_eps = [*old_eps, e_t][-3:]
        step(i, x, pred_x0)
    return x


# ------------------------------------------------------------------------------------------------------ UniPC


def _interpolate(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear f(x) through (xp, fp) (xp ascending), continued linearly beyond both ends."""
    idx = torch.searchsorted(xp, x.clamp(xp[0], xp[-1])).clamp(1, len(xp) - 1)
    x0, x1, y0, y1 = xp[idx - 1], xp[idx], fp[idx - 1], fp[idx]
    return y0 + (x - x0) * (y1 - y0) / (x1 - x0)


class _NoiseScheduleVP:
    """The discrete-time VP noise schedule in continuous time t in (0, 1]: t_i = (i + 1) / N."""

    def __init__(self, alphas_cumprod: torch.Tensor):
        self.n = len(alphas_cumprod)
        self.t_array = torch.linspace(0.0, 1.0, self.n + 1)[1:]
        self.log_alpha_array = 0.5 * torch.log(alphas_cumprod.float().cpu())

    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return _interpolate(t, self.t_array, self.log_alpha_array)

    def alpha(self, t):
        return self.log_alpha(t).exp()

    def std(self, t):
        return (1.0 - (2.0 * self.log_alpha(t)).exp()).sqrt()

    def lamb(self, t):
        log_alpha = self.log_alpha(t)
        return log_alpha - 0.5 * torch.log(1.0 - (2.0 * log_alpha).exp())

    def inverse_lambda(self, lamb: torch.Tensor) -> torch.Tensor:
        log_alpha = -0.5 * torch.logaddexp(torch.zeros_like(lamb), -2.0 * lamb)
        return _interpolate(log_alpha, self.log_alpha_array.flip(0), self.t_array.flip(0))


def unipc_times(schedule: _NoiseScheduleVP, steps: int, skip_type: str, t_start: float | None = None) -> torch.Tensor:
    t_end, t_0 = (1.0 if t_start is None else t_start), 1.0 / schedule.n
    if skip_type == "time_uniform":
        return torch.linspace(t_end, t_0, steps + 1)
    if skip_type == "time_quadratic":
        return torch.linspace(t_end**0.5, t_0**0.5, steps + 1) ** 2
    if skip_type == "logSNR":
        lambdas = torch.linspace(
            float(schedule.lamb(torch.tensor([t_end]))), float(schedule.lamb(torch.tensor([t_0]))), steps + 1
        )
        return schedule.inverse_lambda(lambdas)
    raise ValueError(f"unknown UniPC skip type {skip_type!r}; use time_uniform, time_quadratic or logSNR")


def unipc(
    model,
    x,
    timesteps,
    alphas_cumprod,
    *,
    noise=None,
    step=_nothing,
    variant="bh1",
    skip_type="time_uniform",
    order=3,
    lower_order_final=True,
    t_start: float | None = None,
):
    """UniPC (Zhao et al. 2023) as A1111 runs it: multistep, data prediction, `len(timesteps)` steps over
    continuous time; the model is asked at timestep 1000 t - 1 (fractional). t_start: img2img starts below 1."""
    if variant not in ("bh1", "bh2"):
        raise ValueError(f"UniPC variant {variant!r} is not available; use bh1 or bh2")
    schedule = _NoiseScheduleVP(alphas_cumprod)
    steps = len(timesteps)
    order = max(1, min(int(order), steps))
    times = unipc_times(schedule, steps, skip_type, t_start).to(x.device)

    def data(x_t, t):  # the model's x0 prediction at continuous time t
        eps = model(x_t, (float(t) - 1.0 / schedule.n) * schedule.n)
        return (x_t - schedule.std(t.cpu()).to(x_t) * eps) / schedule.alpha(t.cpu()).to(x_t)

    history = [data(x, times[0])]
    t_history = [times[0]]
    for i in range(1, steps + 1):
        t = times[i]
        if i < order:  # warm-up: lower orders until enough history
            step_order, corrector = i, True
        else:
            step_order = min(order, steps + 1 - i) if lower_order_final else order
            corrector = i != steps
        x, model_t = _unipc_update(x, history, t_history, t, step_order, corrector, variant, schedule, data)
        step(i - 1, x, model_t if model_t is not None else history[-1])
        if i < order:
            history.append(model_t if model_t is not None else data(x, t))
            t_history.append(t)
        else:
            history = [*history[1:], history[-1]]
            t_history = [*t_history[1:], t]
            if i < steps:
                history[-1] = model_t if model_t is not None else data(x, t)
    return x


def _unipc_update(x, history, t_history, t, order, corrector, variant, schedule, data):
    """One UniPC-bh step from the last `order` data predictions: the predictor, then (optionally) the corrector
    with the model's prediction at the new point. Returns (x_t, that prediction or None)."""
    cpu = t.cpu().reshape(1)
    t_prev = t_history[-1].cpu().reshape(1)
    lambda_prev, lambda_t = schedule.lamb(t_prev), schedule.lamb(cpu)
    m_prev = history[-1]
    sigma_prev, sigma_t = schedule.std(t_prev), schedule.std(cpu)
    alpha_t = schedule.alpha(cpu)
    h = lambda_t - lambda_prev

    rks, d1s = [], []
    for i in range(1, order):
        lambda_i = schedule.lamb(t_history[-(i + 1)].cpu().reshape(1))
        rk = float(((lambda_i - lambda_prev) / h)[0])
        rks.append(rk)
        d1s.append((history[-(i + 1)] - m_prev) / rk)
    rks.append(1.0)
    rks_t = torch.tensor(rks)

    hh = -h[0]
    h_phi_1 = torch.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1
    b_h = hh if variant == "bh1" else torch.expm1(hh)
    rows, b, factorial = [], [], 1
    for i in range(1, order + 1):
        rows.append(rks_t ** (i - 1))
        b.append(h_phi_k * factorial / b_h)
        factorial *= i + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    r_matrix, b = torch.stack(rows), torch.stack(b)

    to_x = lambda v: v.to(x.device, x.dtype)  # noqa: E731
    x_t_ = to_x(sigma_t / sigma_prev) * x - to_x(alpha_t * h_phi_1) * m_prev
    scale = to_x(alpha_t * b_h)
    if d1s:
        rhos_p = torch.tensor([0.5]) if order == 2 else torch.linalg.solve(r_matrix[:-1, :-1], b[:-1])
        predicted = sum(to_x(rho) * d for rho, d in zip(rhos_p, d1s, strict=True))
    else:
        predicted = 0
    x_t = x_t_ - scale * predicted
    model_t = None
    if corrector:
        rhos_c = torch.tensor([0.5]) if order == 1 else torch.linalg.solve(r_matrix, b)
        model_t = data(x_t, t)
        corrected = sum((to_x(rho) * d for rho, d in zip(rhos_c[:-1], d1s, strict=True)), start=0)
        x_t = x_t_ - scale * (corrected + to_x(rhos_c[-1]) * (model_t - m_prev))
    return x_t, model_t
