"""A1111 sampler names -> configured diffusers schedulers: tables, names, schedules, loops, refusals."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch

from sdui.core import samplers as SM
from sdui.core import schedules as S
from sdui.errors import UnsupportedSamplerError

# diffusers' k-DPM2 schedulers feed torch tensors to numpy thousands of times per set_timesteps (NumPy 2 warns)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# SD1's scheduler config as shipped with the model (PNDM, "leading" spacing): build_scheduler must override it
SD1_CONFIG = {
    "_class_name": "PNDMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "clip_sample": False,
    "trained_betas": None,
}
SDXL_CONFIG = {
    "_class_name": "EulerDiscreteScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "interpolation_type": "linear",
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "use_karras_sigmas": False,
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
}


def kdiffusion_training_sigmas(config=SD1_CONFIG) -> torch.Tensor:
    betas = torch.linspace(config["beta_start"] ** 0.5, config["beta_end"] ** 0.5, 1000, dtype=torch.float64) ** 2
    acp = torch.cumprod(1 - betas, 0).float()
    return ((1 - acp) / acp) ** 0.5


def kdiffusion_discretization(n: int, train: torch.Tensor) -> torch.Tensor:
    """k-diffusion DiscreteSchedule.get_sigmas: t = linspace(999, 0, n), log-sigma interpolation, trailing 0."""
    log_sigmas = train.double().log().numpy()
    t = np.linspace(len(train) - 1, 0, n)
    return torch.tensor(np.append(np.exp(np.interp(t, np.arange(len(train)), log_sigmas)), 0.0), dtype=torch.float32)


def reference_euler(eps_fn, noise: torch.Tensor, sigmas: torch.Tensor, sigma_to_t) -> torch.Tensor:
    """A1111's Euler: k-diffusion sample_euler over a CompVisDenoiser (x is in sigma units)."""
    x = noise * sigmas[0]
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i]
        denoised = x - sigma * eps_fn(x / (sigma**2 + 1) ** 0.5, sigma_to_t(sigma))
        d = (x - denoised) / sigma
        x = x + d * (sigmas[i + 1] - sigma)
    return x


def eps_fn(x, t):
    """An analytic 'UNet': depends on its input and timestep, mildly non-linear."""
    t = torch.as_tensor(t, dtype=torch.float32)
    return 0.3 * x + 0.1 * torch.tanh(3 * x) * (1 + t / 1000)


def run_diffusers_loop(scheduler, noise, pred_fn, generators=None):
    """The diffusers pipeline loop, as our processing core runs it."""
    latents = noise * scheduler.init_noise_sigma
    accepts_generator = "generator" in inspect.signature(scheduler.step).parameters
    for t in scheduler.timesteps:
        x = scheduler.scale_model_input(latents, t)
        kwargs = {"generator": generators} if accepts_generator and generators is not None else {}
        latents = scheduler.step(pred_fn(x, t), t, latents, **kwargs).prev_sample
    return latents


def noise_of(seed, shape=(1, 4, 8, 8)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# --- tables -----------------------------------------------------------------------------------------------

EXPECTED_SAMPLERS = [
    ("DPM++ 2M", ["k_dpmpp_2m"], {"scheduler": "karras"}),
    ("DPM++ SDE", ["k_dpmpp_sde"], {"scheduler": "karras", "second_order": "True", "brownian_noise": "True"}),
    ("DPM++ 2M SDE", ["k_dpmpp_2m_sde"], {"scheduler": "exponential", "brownian_noise": "True"}),
    (
        "DPM++ 2M SDE Heun",
        ["k_dpmpp_2m_sde_heun"],
        {"scheduler": "exponential", "brownian_noise": "True", "solver_type": "heun"},
    ),
    ("DPM++ 2S a", ["k_dpmpp_2s_a"], {"scheduler": "karras", "uses_ensd": "True", "second_order": "True"}),
    (
        "DPM++ 3M SDE",
        ["k_dpmpp_3m_sde"],
        {"scheduler": "exponential", "discard_next_to_last_sigma": "True", "brownian_noise": "True"},
    ),
    ("Euler a", ["k_euler_a", "k_euler_ancestral"], {"uses_ensd": "True"}),
    ("Euler", ["k_euler"], {}),
    ("LMS", ["k_lms"], {}),
    ("Heun", ["k_heun"], {"second_order": "True"}),
    ("DPM2", ["k_dpm_2"], {"scheduler": "karras", "discard_next_to_last_sigma": "True", "second_order": "True"}),
    (
        "DPM2 a",
        ["k_dpm_2_a"],
        {"scheduler": "karras", "discard_next_to_last_sigma": "True", "uses_ensd": "True", "second_order": "True"},
    ),
    ("DPM fast", ["k_dpm_fast"], {"uses_ensd": "True"}),
    ("DPM adaptive", ["k_dpm_ad"], {"uses_ensd": "True"}),
    ("Restart", ["restart"], {"scheduler": "karras", "second_order": "True"}),
    ("DDIM", ["ddim"], {}),
    ("DDIM CFG++", ["ddim_cfgpp"], {}),
    ("PLMS", ["plms"], {}),
    ("UniPC", ["unipc"], {}),
    ("LCM", ["k_lcm"], {}),
]
REFUSED = {"DPM++ 2S a", "DPM++ 3M SDE", "DPM fast", "DPM adaptive", "Restart", "DDIM CFG++"}


def test_samplers_table_matches_a1111_api():
    assert [s.to_api() for s in SM.SAMPLERS] == [
        {"name": n, "aliases": a, "options": o} for n, a, o in EXPECTED_SAMPLERS
    ]
    assert {s.name for s in SM.SAMPLERS if not s.supported} == REFUSED
    assert all(s.refusal for s in SM.SAMPLERS if not s.supported)


def test_uses_ensd_flag():
    assert [s.name for s in SM.SAMPLERS if s.uses_ensd] == [
        "DPM++ 2S a",
        "Euler a",
        "DPM2 a",
        "DPM fast",
        "DPM adaptive",
    ]


# --- names ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given,expected",
    [
        ("Euler a", ("Euler a", None)),
        ("euler A", ("Euler a", None)),
        ("k_euler_ancestral", ("Euler a", None)),
        (" DPM++ 2M ", ("DPM++ 2M", None)),
        ("DPM++ 2M Karras", ("DPM++ 2M", "Karras")),
        ("dpm++ 2m sde exponential", ("DPM++ 2M SDE", "Exponential")),
        ("DPM++ 2M SDE Heun", ("DPM++ 2M SDE Heun", None)),
        ("DPM++ 2M SDE Heun Karras", ("DPM++ 2M SDE Heun", "Karras")),
        ("DDIM", ("DDIM", None)),
        ("Euler SGMUniform", ("Euler", "SGM Uniform")),
        ("Euler Align Your Steps", ("Euler", "Align Your Steps")),
        ("k_lms Karras", ("LMS", "Karras")),
        ("Euler sgm_uniform", ("Euler", "SGM Uniform")),
    ],
)
def test_resolve_sampler_name(given, expected):
    assert SM.resolve_sampler_name(given) == expected


@pytest.mark.parametrize("bad", ["Euler b", "", "Karras", "DPM++ 2M Turbo"])
def test_unknown_sampler_lists_valid_names(bad):
    with pytest.raises(UnsupportedSamplerError) as err:
        SM.resolve_sampler_name(bad)
    assert "Unknown sampler" in err.value.message and "Euler a" in err.value.message
    assert "DPM fast" not in err.value.message  # refused ones are not offered


def test_resolve_scheduler_name():
    assert SM.resolve_scheduler_name("Karras") == "karras"
    assert SM.resolve_scheduler_name("sgm uniform") == "sgm_uniform"
    assert SM.resolve_scheduler_name("SGMUniform") == "sgm_uniform"
    assert SM.resolve_scheduler_name(None) == SM.resolve_scheduler_name("") == "automatic"
    with pytest.raises(UnsupportedSamplerError, match="Unknown schedule type 'Turbo'.*Align Your Steps"):
        SM.resolve_scheduler_name("Turbo")


# --- Euler: any schedule, exactly ---------------------------------------------------------------------


@pytest.mark.parametrize("config", [SD1_CONFIG, SDXL_CONFIG])
@pytest.mark.parametrize("n", [4, 20, 37])
def test_euler_automatic_is_kdiffusion_discretization(config, n):
    setup = SM.build_scheduler("Euler", "Automatic", n, config)
    want = kdiffusion_discretization(n, kdiffusion_training_sigmas(config))
    torch.testing.assert_close(setup.scheduler.sigmas, want, rtol=2e-6, atol=0)
    # timesteps: continuous, evenly from 999 to 0 (diffusers recomputes them from its float32 alphas)
    torch.testing.assert_close(setup.scheduler.timesteps, torch.linspace(999, 0, n), rtol=0, atol=2e-3)
    assert float(setup.scheduler.init_noise_sigma) == pytest.approx(float(want[0]))  # x = noise * sigma_max
    assert setup.schedule_label == "Automatic" and setup.schedule_name == "uniform"
    assert setup.pipeline_kwargs == {"sigmas": setup.sigmas.tolist()}


def test_euler_karras_equals_formula():
    n, rho = 15, 7.0
    train = kdiffusion_training_sigmas()
    smin, smax = float(train[0]), float(train[-1])
    want = [(smax ** (1 / rho) + i / (n - 1) * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho for i in range(n)] + [
        0.0
    ]
    setup = SM.build_scheduler("Euler", "karras", n, SD1_CONFIG)
    torch.testing.assert_close(setup.scheduler.sigmas, torch.tensor(want), rtol=2e-6, atol=0)
    assert setup.schedule_label == "Karras"
    # "Euler Karras" (old style name) is the same thing
    old = SM.build_scheduler("Euler Karras", None, n, SD1_CONFIG)
    assert torch.equal(old.scheduler.sigmas, setup.scheduler.sigmas) and old.sampler_name == "Euler"


@pytest.mark.parametrize("schedule", ["Automatic", "Karras", "KL Optimal", "Align Your Steps", "Beta", "DDIM"])
def test_diffusers_euler_equals_a1111_euler_loop(schedule):
    setup = SM.build_scheduler("Euler", schedule, 9, SD1_CONFIG)
    train = S.training_sigmas(SD1_CONFIG)
    noise = noise_of(3)
    ours = run_diffusers_loop(setup.scheduler, noise, eps_fn)
    theirs = reference_euler(eps_fn, noise, setup.sigmas, lambda s: S.sigma_to_t(s, train))
    assert (ours - theirs).abs().max().item() < 1e-5
    assert (ours - noise * setup.sigmas[0]).abs().max().item() > 1.0  # the loop did move the sample


@pytest.mark.parametrize("schedule", [s.label for s in S.SCHEDULERS])
def test_euler_walks_every_schedule_exactly(schedule):
    setup = SM.build_scheduler("Euler", schedule, 12, SD1_CONFIG)
    info = S.find_schedule(schedule)
    want = S.get_sigmas("uniform" if info.name == "automatic" else info.name, 12, S.training_sigmas(SD1_CONFIG))
    assert torch.equal(setup.scheduler.sigmas, want)


# --- the other samplers -------------------------------------------------------------------------------


def supported_pairs():
    return [(s.name, sched) for s in SM.SAMPLERS if s.supported for sched in SM.supported_schedules(s.name)]


@pytest.mark.slow
@pytest.mark.parametrize("sampler,schedule", supported_pairs())
def test_every_supported_pair_runs_three_steps(sampler, schedule):
    setup = SM.build_scheduler(sampler, schedule, 3, SD1_CONFIG, seeds=[11, 12])
    assert type(setup.scheduler).__name__ == SM.find_sampler(sampler).scheduler_class
    noise = noise_of(5, (2, 4, 8, 8))
    generators = [torch.Generator().manual_seed(s) for s in (11, 12)]
    out = run_diffusers_loop(setup.scheduler, noise, lambda x, t: 0.1 * x, generators)
    assert out.shape == noise.shape and torch.isfinite(out).all()
    assert not torch.allclose(out, noise * setup.scheduler.init_noise_sigma)
    # the config and set_timesteps arguments reproduce the same steps (what a diffusers pipeline would do)
    again = type(setup.scheduler).from_config(setup.scheduler.config)
    again.set_timesteps(**setup.pipeline_kwargs)
    assert torch.equal(again.timesteps, setup.scheduler.timesteps)


@pytest.mark.parametrize(
    "sampler,schedule", [p for p in supported_pairs() if p[0] not in ("Euler", "DDIM", "PLMS", "UniPC", "LCM")]
)
@pytest.mark.parametrize("n", [5, 23])
def test_k_samplers_walk_the_a1111_schedule(sampler, schedule, n):
    setup = SM.build_scheduler(sampler, schedule, n, SD1_CONFIG)
    info = SM.find_sampler(sampler)
    effective = info.default_schedule if schedule == "automatic" else schedule
    assert setup.schedule_name == effective
    want = S.get_sigmas(effective, n, S.training_sigmas(SD1_CONFIG))
    got = SM.walked_sigmas(setup.scheduler)
    assert len(got) == len(want)
    exact = effective in ("karras", "exponential", "simple", "ddim")
    # exact schedules to float32 rounding; evenly spaced timesteps differ by diffusers' linear interpolation
    torch.testing.assert_close(got, want, rtol=1e-5 if exact else 1e-3, atol=0)
    assert float(setup.scheduler.init_noise_sigma) in (pytest.approx(float(want[0]), rel=1e-5), 1.0)


def test_automatic_means_the_samplers_default():
    assert SM.build_scheduler("DPM++ 2M", "Automatic", 10, SD1_CONFIG).schedule_name == "karras"
    assert SM.build_scheduler("DPM++ 2M SDE", "", 10, SD1_CONFIG).schedule_name == "exponential"
    assert SM.build_scheduler("Euler a", None, 10, SD1_CONFIG).schedule_name == "uniform"
    assert SM.build_scheduler("DDIM", "Automatic", 10, SD1_CONFIG).schedule_name is None
    # A1111 (sd_samplers_kdiffusion.get_sigmas) records the default scheduler it resolved "Automatic" to
    assert SM.build_scheduler("DPM++ 2M", "Automatic", 10, SD1_CONFIG).schedule_label == "Karras"
    assert SM.build_scheduler("DPM2 a", "Automatic", 10, SD1_CONFIG).schedule_label == "Karras"
    assert SM.build_scheduler("Euler a", "Automatic", 10, SD1_CONFIG).schedule_label == "Automatic"


def test_dpmpp_2m_karras_config_and_pipeline_arguments():
    setup = SM.build_scheduler("DPM++ 2M Karras", "Automatic", 10, SD1_CONFIG)
    cfg = setup.scheduler.config
    assert (cfg.algorithm_type, cfg.solver_order, cfg.use_karras_sigmas) == ("dpmsolver++", 2, True)
    assert setup.schedule_label == "Karras" and setup.pipeline_kwargs == {"num_inference_steps": 10}


def test_whole_timestep_schedules_use_custom_timesteps():
    setup = SM.build_scheduler("DPM++ 2M", "Simple", 10, SD1_CONFIG)
    assert setup.pipeline_kwargs == {"timesteps": [999 - math.floor(i * 100) for i in range(10)]}
    setup = SM.build_scheduler("Heun", "DDIM", 20, SD1_CONFIG)
    assert setup.pipeline_kwargs == {"timesteps": list(range(951, 0, -50))}


def kdiffusion_dpmpp_2m_sde(x, sigmas, solver_type):
    """k-diffusion sample_dpmpp_2m_sde with eta 1 and zero noise (solver_type midpoint / heun)."""
    old = h_last = None
    for i in range(len(sigmas) - 1):
        s, sn = sigmas[i], sigmas[i + 1]
        den = x - s * eps_fn(x / (s * s + 1) ** 0.5, 0.0)
        if sn == 0:
            x = den
        else:
            h = -sn.log() + s.log()
            x = sn / s * (-h).exp() * x + (-2 * h).expm1().neg() * den
            if old is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + ((-2 * h).expm1().neg() / (-2 * h) + 1) * (1 / r) * (den - old)
                else:
                    x = x + 0.5 * (-2 * h).expm1().neg() * (1 / r) * (den - old)
            h_last = h
        old = den
    return x


def kdiffusion_dpmpp_2m(x, sigmas):
    old = h_last = None
    for i in range(len(sigmas) - 1):
        s, sn = sigmas[i], sigmas[i + 1]
        den = x - s * eps_fn(x / (s * s + 1) ** 0.5, 0.0)
        if sn == 0:
            x = den
        else:
            h = -sn.log() + s.log()
            if old is None:
                x = (sn / s) * x - (-h).expm1() * den
            else:
                r = h_last / h
                x = (sn / s) * x - (-h).expm1() * ((1 + 1 / (2 * r)) * den - (1 / (2 * r)) * old)
            h_last = h
        old = den
    return x


def kdiffusion_dpmpp_3m_sde(x, sigmas):
    """k-diffusion sample_dpmpp_3m_sde with eta 1 and zero noise."""
    d1 = d2 = h1 = h2 = None
    for i in range(len(sigmas) - 1):
        s, sn = sigmas[i], sigmas[i + 1]
        den = x - s * eps_fn(x / (s * s + 1) ** 0.5, 0.0)
        h = None
        if sn == 0:
            x = den
        else:
            h = -sn.log() + s.log()
            he = 2 * h
            x = torch.exp(-he) * x + (-he).expm1().neg() * den
            phi_2 = he.neg().expm1() / he + 1
            if h2 is not None:
                r0, r1 = h1 / h, h2 / h
                a, b = (den - d1) / r0, (d1 - d2) / r1
                x = x + phi_2 * (a + (a - b) * r0 / (r0 + r1)) - (phi_2 / he - 0.5) * (a - b) / (r0 + r1)
            elif h1 is not None:
                x = x + phi_2 * (den - d1) / (h1 / h)
        d1, d2, h1, h2 = den, d1, h, h1
    return x


def diffusers_without_noise(scheduler, start):
    latents = start
    for t in scheduler.timesteps:
        x = scheduler.scale_model_input(latents, t)
        kwargs = (
            {"variance_noise": torch.zeros_like(latents)} if scheduler.config.algorithm_type.startswith("sde") else {}
        )
        latents = scheduler.step(eps_fn(x, 0.0), t, latents, **kwargs).prev_sample
    return latents


@pytest.mark.parametrize("sampler", ["DPM++ 2M", "DPM++ 2M SDE", "DPM++ 2M SDE Heun"])
def test_dpmpp_multistep_is_kdiffusions_algorithm(sampler):
    """Same sigmas, same start (diffusers works in variance-preserving units: x / sqrt(1 + sigma^2))."""
    setup = SM.build_scheduler(sampler, "Automatic", 12, SD1_CONFIG)
    sigmas = setup.sigmas
    noise = noise_of(9)
    ours = diffusers_without_noise(setup.scheduler, noise * sigmas[0] / (1 + sigmas[0] ** 2) ** 0.5)
    if sampler == "DPM++ 2M":
        theirs = kdiffusion_dpmpp_2m(noise * sigmas[0], sigmas)
    else:
        theirs = kdiffusion_dpmpp_2m_sde(noise * sigmas[0], sigmas, "heun" if "Heun" in sampler else "midpoint")
    assert (ours - theirs).abs().max().item() < 1e-4


def test_dpmpp_3m_sde_refused_because_diffusers_differs_from_kdiffusion():
    """Why DPM++ 3M SDE is refused; if diffusers ever matches k-diffusion here, enable the sampler."""
    from diffusers import DPMSolverMultistepScheduler

    base = SM.build_scheduler("DPM++ 2M SDE Heun", "Exponential", 12, SD1_CONFIG).scheduler.config
    scheduler = DPMSolverMultistepScheduler.from_config(base, solver_order=3)
    scheduler.set_timesteps(12)
    sigmas = scheduler.sigmas
    noise = noise_of(9)
    ours = diffusers_without_noise(scheduler, noise * sigmas[0] / (1 + sigmas[0] ** 2) ** 0.5)
    theirs = kdiffusion_dpmpp_3m_sde(noise * sigmas[0], sigmas)
    assert (ours - theirs).abs().max().item() > 0.1
    with pytest.raises(UnsupportedSamplerError, match="DPM\\+\\+ 3M SDE.*not available"):
        SM.build_scheduler("DPM++ 3M SDE", "Automatic", 12, SD1_CONFIG)


def test_timestep_samplers_pick_a1111s_timesteps():
    assert SM.build_scheduler("DDIM", "Automatic", 20, SD1_CONFIG).scheduler.timesteps.tolist() == list(
        range(951, 0, -50)
    )  # A1111: range(0, 1000, 1000 // 20) + 1
    # LCM: 4 points evenly over the 50 distilled timesteps (indices 49, 32.7, 16.3, 0 -> nearest)
    assert SM.build_scheduler("LCM", "Automatic", 4, SD1_CONFIG).scheduler.timesteps.tolist() == [999, 679, 339, 19]
    unipc = SM.build_scheduler("UniPC", "Automatic", 10, SD1_CONFIG).scheduler
    assert (unipc.config.solver_order, unipc.config.solver_type) == (3, "bh1")
    assert unipc.timesteps.tolist() == [round(999 - 99.9 * i) for i in range(10)]


def test_dpmpp_sde_brownian_noise_follows_the_seeds():
    def run(seeds):
        setup = SM.build_scheduler("DPM++ SDE", "Karras", 4, SD1_CONFIG, seeds=seeds)
        return run_diffusers_loop(setup.scheduler, noise_of(1, (2, 4, 8, 8)), lambda x, t: 0.1 * x)

    assert torch.equal(run([1, 2]), run([1, 2]))
    assert not torch.allclose(run([1, 2]), run([1, 3]))


def test_v_prediction_config_is_kept():
    setup = SM.build_scheduler("Euler a", "Automatic", 5, {**SD1_CONFIG, "prediction_type": "v_prediction"})
    assert setup.scheduler.config.prediction_type == "v_prediction"


# --- refusals ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler", sorted(REFUSED))
def test_refused_samplers_say_why_and_what_works(sampler):
    with pytest.raises(UnsupportedSamplerError) as err:
        SM.build_scheduler(sampler, "Automatic", 10, SD1_CONFIG)
    assert f"Sampler {sampler!r} is not available" in err.value.message
    assert "Choose one of:" in err.value.message and "Euler a" in err.value.message
    assert not SM.sampler_supports(sampler, "Automatic")


@pytest.mark.parametrize(
    "sampler,schedule,works",
    [
        ("Euler a", "Karras", "Automatic, Uniform, Normal"),
        ("DDIM", "Karras", "Automatic"),
        ("DPM++ 2M", "Align Your Steps", "Automatic, Karras, Exponential, Simple, DDIM"),
        ("LMS", "Beta", "Automatic, Uniform, Karras, Exponential, Normal"),
    ],
)
def test_unsupported_pair_names_sampler_schedule_and_alternatives(sampler, schedule, works):
    with pytest.raises(UnsupportedSamplerError) as err:
        SM.build_scheduler(sampler, schedule, 10, SD1_CONFIG)
    msg = err.value.message
    assert f"Sampler {sampler!r} cannot run with schedule type {schedule!r}" in msg
    assert msg.endswith(f"Schedule types that work with {sampler}: {works}.")
    assert not SM.sampler_supports(sampler, schedule)


def test_eta_other_than_one_is_refused_for_fixed_noise_samplers():
    with pytest.raises(UnsupportedSamplerError, match="only eta 1"):
        SM.build_scheduler("Euler a", "Automatic", 10, SD1_CONFIG, eta=0.5)
    SM.build_scheduler("Euler a", "Automatic", 10, SD1_CONFIG, eta=1.0)
    SM.build_scheduler("DDIM", "Automatic", 10, SD1_CONFIG, eta=0.5)  # DDIM reads eta in step()


def test_lcm_step_limit():
    with pytest.raises(UnsupportedSamplerError, match="at most 50 steps"):
        SM.build_scheduler("LCM", "Automatic", 60, SD1_CONFIG)


def test_sampler_supports_and_listing():
    assert SM.sampler_supports("Euler", "Beta") and SM.sampler_supports("DPM++ 2M Karras", None)
    assert SM.sampler_supports("k_dpm_2", "exponential") and not SM.sampler_supports("DPM2", "sgm_uniform")
    assert not SM.sampler_supports("Nope", "Karras") and not SM.sampler_supports("Euler", "Nope")
    assert SM.supported_schedules("Euler") == [s.name for s in S.SCHEDULERS]
    assert SM.supported_schedules("Restart") == []
