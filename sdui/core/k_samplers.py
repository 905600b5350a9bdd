"""The samplers A1111 runs from k-diffusion, written as small pure functions of the model, x and the sigmas.

    x = euler(model, x, sigmas, step=report)

`x` starts as the noisy latent at sigmas[0] (k-diffusion scaling: x = x0 + sigma * noise); each function walks the
descending `sigmas` (normally ending in 0) and returns the result. `model(x, sigma)` gives the denoised prediction
(the Denoiser, with its step state bound by the caller); `noise(sigma, sigma_next)` gives fresh unit noise shaped
like x: each image's own generator, or a Brownian tree for the SDE samplers. `step(i, x, denoised)` is told after
the model call of step i (progress, previews). The maths follows Karras et al. 2022 (Euler, Heun, DPM2, ancestral
steps, churn), Lu et al. 2022 (DPM-Solver, DPM-Solver++ and their SDE forms) and Zhang & Chen (LMS), in the
formulation k-diffusion gives them, which A1111's images depend on; tests compare each with k-diffusion itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Noise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Step = Callable[[int, torch.Tensor, torch.Tensor], None]


def _nothing(i: int, x: torch.Tensor, denoised: torch.Tensor) -> None:
    pass


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """The ODE's derivative dx/dsigma at (x, sigma)."""
    return (x - denoised) / sigma


def ancestral_step(sigma: torch.Tensor, sigma_next: torch.Tensor, eta: float = 1.0):
    """(sigma_down, sigma_up): step deterministically down to sigma_down, then add noise of sigma_up, landing at
    sigma_next in distribution; eta 0 is the plain ODE step."""
    if not eta:
        return sigma_next, torch.zeros_like(sigma_next)
    sigma_up = torch.minimum(sigma_next, eta * (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2) ** 0.5)
    return (sigma_next**2 - sigma_up**2) ** 0.5, sigma_up


def _t(sigma: torch.Tensor) -> torch.Tensor:  # DPM-Solver's time: minus log sigma
    return sigma.log().neg()


def _sigma(t: torch.Tensor) -> torch.Tensor:
    return t.neg().exp()


def _churn(x, sigma, n, s_churn, s_tmin, s_tmax, s_noise, noise):
    """Karras' stochastic churn: raise the noise level to sigma_hat by adding fresh noise (gamma 0: no change).
    With churn on, every step draws its noise, used or not (outside [s_tmin, s_tmax]), as k-diffusion does: the
    images' noise streams stay where A1111's are."""
    gamma = min(s_churn / (n - 1), 2**0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
    eps = noise(sigma, sigma) * s_noise if s_churn > 0 else None
    sigma_hat = sigma * (gamma + 1)
    if gamma > 0:
        x = x + eps * (sigma_hat**2 - sigma**2) ** 0.5
    return x, sigma_hat


# ---------------------------------------------------------------------------------------------------- Karras ODE


def euler(model, x, sigmas, *, noise=None, step=_nothing, s_churn=0.0, s_tmin=0.0, s_tmax=math.inf, s_noise=1.0):
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(x, sigmas[i], len(sigmas), s_churn, s_tmin, s_tmax, s_noise, noise)
        denoised = model(x, sigma_hat)
        step(i, x, denoised)
        x = x + to_d(x, sigma_hat, denoised) * (sigmas[i + 1] - sigma_hat)
    return x


def heun(model, x, sigmas, *, noise=None, step=_nothing, s_churn=0.0, s_tmin=0.0, s_tmax=math.inf, s_noise=1.0):
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(x, sigmas[i], len(sigmas), s_churn, s_tmin, s_tmax, s_noise, noise)
        denoised = model(x, sigma_hat)
        step(i, x, denoised)
        d = to_d(x, sigma_hat, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:  # the last step is plain Euler
            x = x + d * dt
        else:  # trapezoid: average the slopes at both ends
            x_2 = x + d * dt
            d_2 = to_d(x_2, sigmas[i + 1], model(x_2, sigmas[i + 1]))
            x = x + (d + d_2) / 2 * dt
    return x


def dpm_2(model, x, sigmas, *, noise=None, step=_nothing, s_churn=0.0, s_tmin=0.0, s_tmax=math.inf, s_noise=1.0):
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(x, sigmas[i], len(sigmas), s_churn, s_tmin, s_tmax, s_noise, noise)
        denoised = model(x, sigma_hat)
        step(i, x, denoised)
        d = to_d(x, sigma_hat, denoised)
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigma_hat)
        else:  # midpoint in log sigma
            sigma_mid = sigma_hat.log().lerp(sigmas[i + 1].log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigma_hat)
            d_2 = to_d(x_2, sigma_mid, model(x_2, sigma_mid))
            x = x + d_2 * (sigmas[i + 1] - sigma_hat)
    return x


def euler_ancestral(model, x, sigmas, *, noise, step=_nothing, eta=1.0, s_noise=1.0):
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        step(i, x, denoised)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def dpm_2_ancestral(model, x, sigmas, *, noise, step=_nothing, eta=1.0, s_noise=1.0):
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        step(i, x, denoised)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        d = to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + d * (sigma_down - sigmas[i])
        else:
            sigma_mid = sigmas[i].log().lerp(sigma_down.log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigmas[i])
            d_2 = to_d(x_2, sigma_mid, model(x_2, sigma_mid))
            x = x + d_2 * (sigma_down - sigmas[i])
            x = x + noise(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def lms_coefficient(order: int, t: np.ndarray, i: int, j: int) -> float:
    """The integral over [t[i], t[i+1]] of the Lagrange basis polynomial of the point t[i-j] among t[i-order+1..i]
    (exact: the polynomial is integrated, not sampled)."""
    roots = [t[i - k] for k in range(order) if k != j]
    scale = np.prod([t[i - j] - r for r in roots])
    antiderivative = np.polynomial.Polynomial.fromroots(roots).integ() if roots else np.polynomial.Polynomial([0, 1])
    return float((antiderivative(t[i + 1]) - antiderivative(t[i])) / scale)


def lms(model, x, sigmas, *, noise=None, step=_nothing, order=4):
    t = sigmas.detach().cpu().numpy().astype(np.float64)
    ds: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        step(i, x, denoised)
        ds = [*ds, to_d(x, sigmas[i], denoised)][-order:]
        current = min(i + 1, order)
        coefficients = [lms_coefficient(current, t, i, j) for j in range(current)]
        x = x + sum(c * d for c, d in zip(coefficients, reversed(ds), strict=True))
    return x


# ----------------------------------------------------------------------------------------------- DPM-Solver++


def dpmpp_2m(model, x, sigmas, *, noise=None, step=_nothing):
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        step(i, x, denoised)
        t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * denoised
        else:  # second order from the previous prediction
            r = (t - _t(sigmas[i - 1])) / h
            corrected = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * corrected
        old_denoised = denoised
    return x


def dpmpp_2s_ancestral(model, x, sigmas, *, noise, step=_nothing, eta=1.0, s_noise=1.0):
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        step(i, x, denoised)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        if sigma_down == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:  # single-step DPM-Solver++(2S), midpoint r = 1/2
            t, t_next = _t(sigmas[i]), _t(sigma_down)
            h = t_next - t
            s = t + h / 2
            x_2 = (_sigma(s) / _sigma(t)) * x - (-h / 2).expm1() * denoised
            denoised_2 = model(x_2, _sigma(s))
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def dpmpp_sde(model, x, sigmas, *, noise, step=_nothing, eta=1.0, s_noise=1.0, r=0.5):
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        step(i, x, denoised)
        if sigmas[i + 1] == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
            continue
        t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
        h = t_next - t
        s = t + h * r
        # 1. an SDE step to the intermediate time s
        sigma_down, sigma_up = ancestral_step(_sigma(t), _sigma(s), eta)
        s_down = _t(sigma_down)
        x_2 = (_sigma(s_down) / _sigma(t)) * x - (t - s_down).expm1() * denoised
        x_2 = x_2 + noise(_sigma(t), _sigma(s)) * s_noise * sigma_up
        denoised_2 = model(x_2, _sigma(s))
        # 2. the full step with the blended prediction
        sigma_down, sigma_up = ancestral_step(_sigma(t), _sigma(t_next), eta)
        t_next_down = _t(sigma_down)
        blend = 1 / (2 * r)
        denoised_d = (1 - blend) * denoised + blend * denoised_2
        x = (_sigma(t_next_down) / _sigma(t)) * x - (t - t_next_down).expm1() * denoised_d
        x = x + noise(_sigma(t), _sigma(t_next)) * s_noise * sigma_up
    return x


def dpmpp_2m_sde(model, x, sigmas, *, noise, step=_nothing, eta=1.0, s_noise=1.0, solver_type="midpoint"):
    if solver_type not in ("midpoint", "heun"):
        raise ValueError("solver_type must be 'midpoint' or 'heun'")
    old_denoised, h_last = None, None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        step(i, x, denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            h = _t(sigmas[i + 1]) - _t(sigmas[i])
            eta_h = eta * h
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised
            if old_denoised is not None:
                r = h_last / h
                change = denoised - old_denoised
                if solver_type == "heun":
                    x = x + ((-h - eta_h).expm1().neg() / (-h - eta_h) + 1) * (1 / r) * change
                else:
                    x = x + 0.5 * (-h - eta_h).expm1().neg() * (1 / r) * change
            if eta:
                x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt() * s_noise
            h_last = h
        old_denoised = denoised
    return x


def dpmpp_3m_sde(model, x, sigmas, *, noise, step=_nothing, eta=1.0, s_noise=1.0):
    denoised_1 = denoised_2 = h_1 = h_2 = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        step(i, x, denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            h = _t(sigmas[i + 1]) - _t(sigmas[i])
            h_eta = h * (eta + 1)
            x = (-h_eta).exp() * x + (-h_eta).expm1().neg() * denoised
            phi_2 = h_eta.neg().expm1() / h_eta + 1
            if h_2 is not None:  # third order from the two previous predictions
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None:
                x = x + phi_2 * ((denoised - denoised_1) / (h_1 / h))
            if eta:
                x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = (h, h_1) if sigmas[i + 1] != 0 else (h_1, h_2)
    return x


# ------------------------------------------------------------------------------------ DPM-Solver (fast, adaptive)


class _DPMSolver:
    """DPM-Solver on noise predictions in t = -log sigma, with the evaluations of one step cached by name."""

    def __init__(self, model: Model, on_eval: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]):
        self.model = model
        self.on_eval = on_eval

    def eps(self, cache: dict, key: str, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if key not in cache:
            denoised = self.model(x, _sigma(t))
            if key == "eps":
                self.on_eval(x, t, denoised)
            cache[key] = (x - denoised) / _sigma(t)
        return cache[key]

    def step_1(self, x, t, t_next, cache):
        h = t_next - t
        return x - _sigma(t_next) * h.expm1() * self.eps(cache, "eps", x, t)

    def step_2(self, x, t, t_next, cache, r1=0.5):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1 = t + r1 * h
        u1 = x - _sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        return x - _sigma(t_next) * h.expm1() * eps - _sigma(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)

    def step_3(self, x, t, t_next, cache, r1=1 / 3, r2=2 / 3):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1, s2 = t + r1 * h, t + r2 * h
        u1 = x - _sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        u2 = (
            x
            - _sigma(s2) * (r2 * h).expm1() * eps
            - _sigma(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps)
        )
        eps_r2 = self.eps(cache, "eps_r2", u2, s2)
        return x - _sigma(t_next) * h.expm1() * eps - _sigma(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)

    def noisy_target(self, t, t_next, t_end, eta):
        """Where the deterministic part of a step ends, and the noise added after it (eta > 0)."""
        if not eta:
            return t_next, 0.0
        sigma_down, _ = ancestral_step(_sigma(t), _sigma(t_next), eta)
        t_down = torch.minimum(t_end, _t(sigma_down))
        return t_down, (_sigma(t_next) ** 2 - _sigma(t_down) ** 2) ** 0.5


def dpm_fast(model, x, sigma_min, sigma_max, n, *, noise=None, step=_nothing, eta=0.0, s_noise=1.0):
    """DPM-Solver with n model evaluations spread over third-order steps, from sigma_max to sigma_min (not 0)."""
    if sigma_min <= 0 or sigma_max <= 0:
        raise ValueError("sigma_min and sigma_max must be above 0")
    t_start, t_end = _t(torch.tensor(sigma_max)), _t(torch.tensor(sigma_min))
    m = n // 3 + 1
    ts = torch.linspace(float(t_start), float(t_end), m + 1, device=x.device)
    orders = [3] * (m - 2) + [2, 1] if n % 3 == 0 else [3] * (m - 1) + [n % 3]
    counter = {"i": 0}
    solver = _DPMSolver(model, lambda x_, t_, denoised: step(counter["i"], x_, denoised))
    for i, order in enumerate(orders):
        counter["i"] = i
        cache: dict = {}
        t, t_next = ts[i], ts[i + 1]
        t_down, noise_level = solver.noisy_target(t, t_next, t_end.to(x.device), eta)
        x = [solver.step_1, solver.step_2, solver.step_3][order - 1](x, t, t_down, cache)
        if eta:
            x = x + noise_level * s_noise * noise(_sigma(t), _sigma(t_next))
    return x


class _PIDStepSize:
    """Step size control from the error of each step (a PID controller on the inverse error)."""

    def __init__(self, h, pcoeff, icoeff, dcoeff, order, accept_safety, eps=1e-8):
        self.h = h
        self.b1 = (pcoeff + icoeff + dcoeff) / order
        self.b2 = -(pcoeff + 2 * dcoeff) / order
        self.b3 = dcoeff / order
        self.accept_safety = accept_safety
        self.eps = eps
        self.errors: list[float] = []

    def propose(self, error) -> bool:
        inverse = 1 / (float(error) + self.eps)
        if not self.errors:
            self.errors = [inverse, inverse, inverse]
        self.errors[0] = inverse
        factor = self.errors[0] ** self.b1 * self.errors[1] ** self.b2 * self.errors[2] ** self.b3
        factor = 1 + math.atan(factor - 1)
        accept = factor >= self.accept_safety
        if accept:
            self.errors[2], self.errors[1] = self.errors[1], self.errors[0]
        self.h *= factor
        return accept


def dpm_adaptive(
    model,
    x,
    sigma_min,
    sigma_max,
    *,
    noise=None,
    step=_nothing,
    order=3,
    rtol=0.05,
    atol=0.0078,
    h_init=0.05,
    pcoeff=0.0,
    icoeff=1.0,
    dcoeff=0.0,
    accept_safety=0.81,
    eta=0.0,
    s_noise=1.0,
    max_evaluations: int | None = None,
):
    """DPM-Solver with step sizes chosen by its own error estimate, from sigma_max to sigma_min (not 0).
    max_evaluations bounds the work (None: until sigma_min is reached, as in k-diffusion)."""
    if sigma_min <= 0 or sigma_max <= 0:
        raise ValueError("sigma_min and sigma_max must be above 0")
    t_start, t_end = _t(torch.tensor(sigma_max, device=x.device)), _t(torch.tensor(sigma_min, device=x.device))
    forward = t_end > t_start
    atol_t, rtol_t = torch.tensor(atol), torch.tensor(rtol)
    steps = {"n": 0}
    solver = _DPMSolver(model, lambda x_, t_, denoised: step(steps["n"], x_, denoised))
    h = abs(h_init) * (1 if forward else -1)
    pid = _PIDStepSize(h, pcoeff, icoeff, dcoeff, 1.5 if eta else order, accept_safety)
    s, x_prev, evaluations = t_start, x, 0
    while (s < t_end - 1e-5) if forward else (s > t_end + 1e-5):
        if max_evaluations is not None and evaluations >= max_evaluations:
            break
        cache: dict = {}
        t = torch.minimum(t_end, s + pid.h) if forward else torch.maximum(t_end, s + pid.h)
        t_down, noise_level = solver.noisy_target(s, t, t_end, eta)
        if order == 2:
            x_low = solver.step_1(x, s, t_down, cache)
            x_high = solver.step_2(x, s, t_down, cache)
        else:
            x_low = solver.step_2(x, s, t_down, cache, r1=1 / 3)
            x_high = solver.step_3(x, s, t_down, cache)
        evaluations += order
        delta = torch.maximum(atol_t.to(x.device), rtol_t.to(x.device) * torch.maximum(x_low.abs(), x_prev.abs()))
        error = torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5
        if pid.propose(error):
            x_prev = x_low
            x = x_high
            if eta:
                x = x + noise_level * s_noise * noise(_sigma(s), _sigma(t))
            s = t
        steps["n"] += 1
    return x


# ---------------------------------------------------------------------------------------------- A1111's own samplers


def restart(model, x, sigmas, *, noise, step=_nothing, s_noise=1.0):
    """A1111's Restart sampler (Xu et al. 2023): Heun steps; from 20 steps on, part of the steps go to
    restarts, where the walk jumps back up to sigma 2 (fresh noise) and descends again through the region near
    sigma 0.1. With restarts the schedule is rebuilt as Karras between the given ends, as in A1111."""
    from sdui.core.schedules import karras

    steps = len(sigmas) - 1
    restarts: dict[float, tuple[int, int, float]] = {}
    if steps >= 20:
        restart_steps, restart_times = (steps // 4, 2) if steps >= 36 else (9, 1)
        sigmas = karras(steps - restart_steps * restart_times, float(sigmas[-2]), float(sigmas[0])).to(sigmas)
        restarts = {0.1: (restart_steps + 1, restart_times, 2.0)}
    at_index = {int(torch.argmin((sigmas - key).abs())): value for key, value in restarts.items()}

    walk = []
    for i in range(len(sigmas) - 1):
        walk.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in at_index:
            restart_steps, restart_times, restart_max = at_index[i + 1]
            low, high = i + 1, int(torch.argmin((sigmas - restart_max).abs()))
            if high < low:
                segment = karras(restart_steps, float(sigmas[low]), float(sigmas[high])).to(sigmas)[:-1]
                walk += list(zip(segment[:-1], segment[1:], strict=True)) * restart_times

    last = None
    for i, (sigma, sigma_next) in enumerate(walk):
        if last is not None and last < sigma:  # a restart: noise back up to sigma
            x = x + noise(last, sigma) * s_noise * (sigma**2 - last**2) ** 0.5
        denoised = model(x, sigma)
        step(i, x, denoised)
        d = to_d(x, sigma, denoised)
        if sigma_next == 0:
            x = x + d * (sigma_next - sigma)
        else:
            x_2 = x + d * (sigma_next - sigma)
            d_2 = to_d(x_2, sigma_next, model(x_2, sigma_next))
            x = x + (d + d_2) / 2 * (sigma_next - sigma)
        last = sigma_next
    return x


def lcm(model, x, sigmas, *, noise, step=_nothing):
    """Latent Consistency Model sampling: jump to the prediction, then re-noise to the next level."""
    for i in range(len(sigmas) - 1):
        x = model(x, sigmas[i])
        step(i, x, x)
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise(sigmas[i], sigmas[i + 1])
    return x
