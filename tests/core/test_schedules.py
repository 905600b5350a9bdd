"""Sigma schedules against formulas written out independently here (k-diffusion's / A1111's published ones)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sdui.core import schedules as S

SD_CONFIG = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}


def reference_training_sigmas() -> np.ndarray:
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    acp = np.cumprod(1.0 - betas)
    return np.sqrt((1 - acp) / acp)


def log_interp(t, sigmas: np.ndarray) -> np.ndarray:
    return np.exp(np.interp(t, np.arange(len(sigmas)), np.log(sigmas)))


@pytest.fixture(scope="module")
def ts():
    return S.training_sigmas(SD_CONFIG)


def close(a, b, rtol=2e-5):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-7)


def test_training_sigmas_from_scaled_linear_betas(ts):
    assert ts.dtype == torch.float32 and ts.shape == (1000,)
    close(ts, reference_training_sigmas(), rtol=1e-4)  # alphas_cumprod is stored as float32, as in LDM
    assert float(ts[0]) == pytest.approx(0.02916, abs=1e-4) and float(ts[-1]) == pytest.approx(14.6146, abs=1e-3)


def test_training_sigmas_linear_schedule_and_fallback():
    linear = S.training_sigmas({**SD_CONFIG, "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02})
    betas = np.linspace(0.0001, 0.02, 1000)
    acp = np.cumprod(1 - betas)
    close(linear, np.sqrt((1 - acp) / acp), rtol=1e-4)
    cosine = S.training_sigmas({**SD_CONFIG, "beta_schedule": "squaredcos_cap_v2"})  # via diffusers
    assert cosine.shape == (1000,) and bool((cosine[1:] > cosine[:-1]).all())


def test_sigma_t_round_trip(ts):
    train = reference_training_sigmas()
    for k in (0, 1, 17, 500, 998, 999):
        assert float(S.sigma_to_t(ts[k], ts)) == pytest.approx(k, abs=1e-3)
    t = torch.tensor([0.0, 0.25, 10.5, 640.3, 998.9])
    close(S.t_to_sigma(t, ts), log_interp(t.numpy(), train), rtol=1e-5)
    close(S.sigma_to_t(S.t_to_sigma(t, ts), ts), t, rtol=1e-4)


@pytest.mark.parametrize("n", [1, 2, 7, 20, 33])
def test_uniform_normal_automatic_are_kdiffusion_discretization(ts, n):
    want = np.append(log_interp(np.linspace(999, 0, n), reference_training_sigmas()), 0.0)
    for name in ("uniform", "Normal", "automatic"):
        close(S.get_sigmas(name, n, ts), want)


@pytest.mark.parametrize("n", [2, 10, 25])
def test_karras(ts, n):
    smin, smax, rho = float(ts[0]), float(ts[-1]), 7.0
    want = [(smax ** (1 / rho) + i / (n - 1) * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho for i in range(n)]
    close(S.get_sigmas("karras", n, ts), want + [0.0])
    # A1111's rho option
    want3 = [(smax ** (1 / 3) + i / (n - 1) * (smin ** (1 / 3) - smax ** (1 / 3))) ** 3 for i in range(n)]
    close(S.get_sigmas("Karras", n, ts, S.ScheduleParams(rho=3.0)), want3 + [0.0])


@pytest.mark.parametrize("n", [2, 10, 25])
def test_exponential_and_polyexponential(ts, n):
    smin, smax = float(ts[0]), float(ts[-1])
    want = np.append(np.exp(np.linspace(math.log(smax), math.log(smin), n)), 0.0)
    close(S.get_sigmas("exponential", n, ts), want)
    close(S.get_sigmas("polyexponential", n, ts), want)  # default rho 1 is exponential
    ramp = (1 - np.arange(n) / (n - 1)) ** 2
    want2 = np.append(np.exp(math.log(smin) + ramp * (math.log(smax) - math.log(smin))), 0.0)
    close(S.get_sigmas("polyexponential", n, ts, S.ScheduleParams(rho=2.0)), want2)


@pytest.mark.parametrize("n", [3, 10, 30])
def test_sgm_uniform(ts, n):
    t = np.linspace(999, 0, n + 1)[:-1]
    close(S.get_sigmas("sgm_uniform", n, ts), np.append(log_interp(t, reference_training_sigmas()), 0.0))
    close(S.get_sigmas("SGMUniform", n, ts), S.get_sigmas("SGM Uniform", n, ts), rtol=0)


@pytest.mark.parametrize("n", [3, 10, 30])
def test_simple_takes_every_kth_training_sigma_from_the_top(ts, n):
    train = reference_training_sigmas()
    idx = [999 - math.floor(i * 1000 / n) for i in range(n)]
    close(S.get_sigmas("simple", n, ts), np.append(train[idx], 0.0))


@pytest.mark.parametrize("n,steps_walked", [(10, 10), (20, 20), (30, 31)])
def test_ddim_schedule_uses_ddims_timesteps(ts, n, steps_walked):
    train = reference_training_sigmas()
    timesteps = list(range(1, 1000, 1000 // n))[::-1]
    got = S.get_sigmas("ddim", n, ts)
    close(got, np.append(train[timesteps], 0.0))
    assert len(got) - 1 == steps_walked  # A1111 walks 31 steps when asked for 30


@pytest.mark.parametrize("n", [4, 12])
def test_kl_optimal_ends_at_sigma_min(ts, n):
    smin, smax = float(ts[0]), float(ts[-1])
    want = [math.tan(math.atan(smax) + i / n * (math.atan(smin) - math.atan(smax))) for i in range(n + 1)]
    got = S.get_sigmas("kl_optimal", n, ts)
    close(got, want)
    assert float(got[-1]) == pytest.approx(smin, rel=1e-5)  # A1111 appends no zero here


def test_align_your_steps(ts):
    sd1 = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029]
    sdxl = [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029]
    close(S.get_sigmas("align_your_steps", 11, ts), sd1 + [0.0])
    close(S.get_sigmas("Align Your Steps", 11, ts, S.ScheduleParams(is_sdxl=True)), sdxl + [0.0])
    for n in (5, 10, 24):
        xs = np.linspace(0, 1, n)
        want = np.exp(np.interp(xs, np.linspace(0, 1, 11), np.log(sd1[::-1])))[::-1]
        got = S.get_sigmas("align_your_steps", n, ts)
        close(got, np.append(want, 0.0))
        assert float(got[0]) == pytest.approx(14.615) and float(got[-2]) == pytest.approx(0.029)


@pytest.mark.parametrize("q", [0.0, 0.05, 0.3, 0.5, 0.77, 0.999, 1.0])
def test_beta_ppf_matches_closed_forms(q):
    assert S.beta_ppf(q, 1.0, 1.0) == pytest.approx(q, abs=1e-12)
    assert S.beta_ppf(q, 2.0, 1.0) == pytest.approx(math.sqrt(q), abs=1e-12)  # cdf x^2
    assert S.beta_ppf(q, 1.0, 2.0) == pytest.approx(1 - math.sqrt(1 - q), abs=1e-12)  # cdf 1-(1-x)^2
    assert S.beta_ppf(q, 0.5, 0.5) == pytest.approx(math.sin(math.pi * q / 2) ** 2, abs=1e-12)  # arcsine
    assert S.beta_ppf(q, 0.6, 0.6) + S.beta_ppf(1 - q, 0.6, 0.6) == pytest.approx(1.0, abs=1e-12)  # symmetric


def test_beta_schedule(ts):
    n = 12
    got = S.get_sigmas("beta", n, ts)
    smin, smax = float(ts[0]), float(ts[-1])
    assert float(got[0]) == pytest.approx(smax) and float(got[-2]) == pytest.approx(smin) and float(got[-1]) == 0
    # the middle step sits at the distribution's median: halfway between sigma_min and sigma_max
    odd = S.get_sigmas("beta", 11, ts)
    assert float(odd[5]) == pytest.approx((smin + smax) / 2, rel=1e-5)
    # Beta(0.6, 0.6) puts more steps near both ends than a uniform spread
    assert float(got[0] - got[1]) < (smax - smin) / (n - 1)


@pytest.mark.parametrize("name", [s.name for s in S.SCHEDULERS])
@pytest.mark.parametrize("n", [1, 2, 8, 20])
def test_every_schedule_descends_to_zero_in_n_steps(ts, name, n):
    sig = S.get_sigmas(name, n, ts)
    assert sig.dtype == torch.float32 and torch.isfinite(sig).all()
    assert bool((sig[1:] < sig[:-1]).all()), sig
    if name == "kl_optimal":
        assert len(sig) == n + 1 and float(sig[-1]) > 0
    elif name == "ddim":
        assert len(sig) >= n + 1 and float(sig[-1]) == 0
    else:
        assert len(sig) == n + 1 and float(sig[-1]) == 0


def test_discard_penultimate_sigma(ts):
    full = S.get_sigmas("karras", 11, ts)
    got = S.get_sigmas("karras", 10, ts, discard_penultimate=True)
    assert len(got) == 11
    close(got, torch.cat([full[:-2], full[-1:]]), rtol=0)


def test_unknown_schedule_and_bad_steps(ts):
    with pytest.raises(ValueError, match="unknown schedule"):
        S.get_sigmas("linear-ish", 10, ts)
    with pytest.raises(ValueError, match="at least 1"):
        S.get_sigmas("karras", 0, ts)


def test_schedulers_table_matches_a1111_api():
    expected = [
        ("automatic", "Automatic", None, -1.0, False),
        ("uniform", "Uniform", None, -1.0, True),
        ("karras", "Karras", None, 7.0, False),
        ("exponential", "Exponential", None, -1.0, False),
        ("polyexponential", "Polyexponential", None, 1.0, False),
        ("sgm_uniform", "SGM Uniform", ["SGMUniform"], -1.0, True),
        ("kl_optimal", "KL Optimal", None, -1.0, False),
        ("align_your_steps", "Align Your Steps", None, -1.0, False),
        ("simple", "Simple", None, -1.0, True),
        ("normal", "Normal", None, -1.0, True),
        ("ddim", "DDIM", None, -1.0, True),
        ("beta", "Beta", None, -1.0, True),
    ]
    got = [s.to_api() for s in S.SCHEDULERS]
    assert got == [
        {"name": n, "label": lab, "aliases": a, "default_rho": rho, "need_inner_model": inner}
        for n, lab, a, rho, inner in expected
    ]


def test_find_schedule_by_name_label_alias_any_case():
    assert S.find_schedule("karras").label == "Karras"
    assert S.find_schedule("KL Optimal").name == "kl_optimal"
    assert S.find_schedule("sgmuniform").name == "sgm_uniform"
    assert S.find_schedule("align your steps").name == "align_your_steps"
    assert S.find_schedule("Turbo") is None and S.find_schedule("") is None
