"""Our k-diffusion samplers against k-diffusion itself: same model, sigmas and noise, the same x at the end."""

from __future__ import annotations

import math

import pytest
import torch

from sdui.core import k_samplers as ks
from sdui.core.schedules import exponential, karras
from tests.fixtures.k_diffusion_reference import randn_like_from, sampling

SHAPE = (2, 4, 8, 8)


def toy_model(x, sigma):
    """A smooth, non-linear denoiser (Gaussian data around 0.3 with a wobble), per-sample sigma like A1111's."""
    sigma = torch.as_tensor(sigma).to(x.dtype)
    sigma = sigma.reshape(-1, 1, 1, 1) if sigma.ndim else sigma
    shrink = 0.5**2 / (0.5**2 + sigma**2)
    return 0.3 + shrink * (x - 0.3) + 0.05 * torch.sin(x) * sigma / (1 + sigma)


def noise_source(seed: int):
    generator = torch.Generator().manual_seed(seed)
    return lambda sigma, sigma_next: torch.randn(SHAPE, generator=generator, dtype=torch.float64)


def start(sigmas) -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * sigmas[0]


SIGMAS = {
    "karras": karras(10, 0.0292, 14.6146).double(),
    "exponential": exponential(7, 0.0292, 14.6146).double(),
}

# (ours, k-diffusion's, keyword arguments for both, needs noise)
CASES = [
    (ks.euler, "sample_euler", {}, False),
    (ks.euler, "sample_euler", {"s_churn": 1.0, "s_tmin": 0.5, "s_tmax": 10.0, "s_noise": 1.003}, "churn"),
    (ks.heun, "sample_heun", {}, False),
    (ks.heun, "sample_heun", {"s_churn": 0.5}, "churn"),
    (ks.dpm_2, "sample_dpm_2", {}, False),
    (ks.lms, "sample_lms", {}, False),
    (ks.euler_ancestral, "sample_euler_ancestral", {}, True),
    (ks.euler_ancestral, "sample_euler_ancestral", {"eta": 0.0}, True),
    (ks.euler_ancestral, "sample_euler_ancestral", {"eta": 0.5, "s_noise": 0.9}, True),
    (ks.dpm_2_ancestral, "sample_dpm_2_ancestral", {}, True),
    (ks.dpmpp_2s_ancestral, "sample_dpmpp_2s_ancestral", {}, True),
    (ks.dpmpp_2s_ancestral, "sample_dpmpp_2s_ancestral", {"eta": 0.0}, True),
    (ks.dpmpp_sde, "sample_dpmpp_sde", {}, True),
    (ks.dpmpp_sde, "sample_dpmpp_sde", {"eta": 0.7}, True),
    (ks.dpmpp_2m, "sample_dpmpp_2m", {}, False),
    (ks.dpmpp_2m_sde, "sample_dpmpp_2m_sde", {}, True),
    (ks.dpmpp_2m_sde, "sample_dpmpp_2m_sde", {"solver_type": "heun"}, True),
    (ks.dpmpp_2m_sde, "sample_dpmpp_2m_sde", {"eta": 0.0}, True),
    (ks.dpmpp_3m_sde, "sample_dpmpp_3m_sde", {}, True),
    (ks.dpmpp_3m_sde, "sample_dpmpp_3m_sde", {"eta": 0.5}, True),
]


@pytest.mark.parametrize("schedule", sorted(SIGMAS))
@pytest.mark.parametrize("ours, theirs, kwargs, noisy", CASES, ids=lambda c: getattr(c, "__name__", None))
def test_each_sampler_equals_k_diffusion(schedule, ours, theirs, kwargs, noisy):
    sigmas = SIGMAS[schedule]
    reference = getattr(sampling(), theirs)
    if noisy == "churn":  # k-diffusion draws churn noise with torch.randn_like
        with randn_like_from(noise_source(1)):
            expected = reference(toy_model, start(sigmas), sigmas, disable=True, **kwargs)
        got = ours(toy_model, start(sigmas), sigmas, noise=noise_source(1), **kwargs)
    elif noisy:
        expected = reference(toy_model, start(sigmas), sigmas, disable=True, noise_sampler=noise_source(1), **kwargs)
        got = ours(toy_model, start(sigmas), sigmas, noise=noise_source(1), **kwargs)
    else:
        expected = reference(toy_model, start(sigmas), sigmas, disable=True, **kwargs)
        got = ours(toy_model, start(sigmas), sigmas, **kwargs)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [5, 6, 10])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_dpm_fast_equals_k_diffusion(n, eta):
    sigmas = SIGMAS["karras"]
    x0 = start(sigmas)
    expected = sampling().sample_dpm_fast(
        toy_model, x0.clone(), 0.0292, 14.6146, n, disable=True, eta=eta, noise_sampler=noise_source(2)
    )
    got = ks.dpm_fast(toy_model, x0.clone(), 0.0292, 14.6146, n, eta=eta, noise=noise_source(2))
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("order, eta", [(3, 0.0), (2, 0.0), (3, 1.0)])
def test_dpm_adaptive_equals_k_diffusion(order, eta):
    x0 = start(SIGMAS["karras"])
    expected = sampling().sample_dpm_adaptive(
        toy_model, x0.clone(), 0.0292, 14.6146, disable=True, order=order, eta=eta, noise_sampler=noise_source(3)
    )
    got = ks.dpm_adaptive(toy_model, x0.clone(), 0.0292, 14.6146, order=order, eta=eta, noise=noise_source(3))
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_steps_are_reported_once_per_step_with_the_prediction():
    sigmas = SIGMAS["karras"]
    seen = []
    ks.heun(toy_model, start(sigmas), sigmas, step=lambda i, x, denoised: seen.append((i, denoised.shape)))
    assert [i for i, _ in seen] == list(range(len(sigmas) - 1)) and seen[0][1] == SHAPE


def test_lms_coefficients_integrate_the_lagrange_basis_exactly():
    t = [14.6, 7.0, 3.1, 1.2, 0.4]
    # over one interval the basis polynomials sum to 1, so the coefficients sum to its length
    coefficients = [ks.lms_coefficient(4, t, 3, j) for j in range(4)]
    assert math.isclose(sum(coefficients), t[4] - t[3], rel_tol=1e-12)
