"""A1111's sampler table and names, and the plan of a run (sampler_setup.sampler_for): schedules, img2img step
arithmetic, eta and churn with their infotext, timesteps of DDIM/PLMS/UniPC, LCM's table, the noise sources.

The sigma tables are checked against k-diffusion's own (the library A1111 wraps its model in)."""

from __future__ import annotations

import importlib
import math
from types import SimpleNamespace

import pytest
import torch

from sdui.core import rng
from sdui.core import samplers as SM
from sdui.core import schedules as S
from sdui.core.sampler_setup import sampler_for, timesteps_for
from sdui.errors import UnsupportedSamplerError
from sdui.request import GenerationRequest
from tests.fixtures.k_diffusion_reference import sampling
from tests.helpers import settings

SD1_CONFIG = {
    "_class_name": "PNDMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
}
MODEL = SimpleNamespace(scheduler_config=SD1_CONFIG, is_sdxl=False)
DEFAULTS = settings()


def kd_model():
    """k-diffusion's CompVisDenoiser over SD1's alphas_cumprod (float32, as the LDM model stores them)."""
    sampling()
    external = importlib.import_module("k_diffusion.external")
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    inner = SimpleNamespace(alphas_cumprod=torch.cumprod(1 - betas, 0).float())
    return external.CompVisDenoiser(inner)


def plan(sampler="Euler", scheduler="Automatic", steps=10, opts=DEFAULTS, **kwargs):
    denoising = kwargs.pop("denoising", None)
    fix_steps = kwargs.pop("fix_steps", False)
    request = GenerationRequest(sampler_name=sampler, scheduler=scheduler, steps=steps, **kwargs)
    return sampler_for(request, MODEL, opts, denoising=denoising, fix_steps=fix_steps)


# --- the table ---------------------------------------------------------------------------------------------

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


def test_samplers_table_matches_a1111_api():
    assert [s.to_api() for s in SM.SAMPLERS] == [
        {"name": n, "aliases": a, "options": o} for n, a, o in EXPECTED_SAMPLERS
    ]


def test_every_sampler_has_its_function():
    from sdui.core import k_samplers, timestep_samplers

    for info in SM.SAMPLERS:
        module = timestep_samplers if info.kind == "timesteps" else k_samplers
        name = "ddim" if info.function == "ddim_cfgpp" else info.function
        assert callable(getattr(module, name)), info.name


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
        ("DPM fast", ("DPM fast", None)),
        ("Euler a Karras", ("Euler a", "Karras")),
    ],
)
def test_resolve_sampler_name(given, expected):
    assert SM.resolve_sampler_name(given) == expected


@pytest.mark.parametrize("bad", ["Euler b", "", "Karras", "DPM++ 2M Turbo"])
def test_unknown_sampler_lists_valid_names(bad):
    with pytest.raises(UnsupportedSamplerError) as err:
        SM.resolve_sampler_name(bad)
    assert "Unknown sampler" in err.value.message and "Euler a" in err.value.message
    assert "DPM fast" in err.value.message and "Restart" in err.value.message


def test_resolve_scheduler_name():
    assert SM.resolve_scheduler_name("Karras") == "karras"
    assert SM.resolve_scheduler_name("sgm uniform") == "sgm_uniform"
    assert SM.resolve_scheduler_name("SGMUniform") == "sgm_uniform"
    assert SM.resolve_scheduler_name(None) == SM.resolve_scheduler_name("") == "automatic"
    with pytest.raises(UnsupportedSamplerError, match="Unknown schedule type 'Turbo'.*Align Your Steps"):
        SM.resolve_scheduler_name("Turbo")


def test_every_pair_of_known_names_is_supported():
    for info in SM.SAMPLERS:
        for schedule in S.SCHEDULERS:
            assert SM.sampler_supports(info.name, schedule.label)
    assert not SM.sampler_supports("Nope", "Karras") and not SM.sampler_supports("Euler", "Nope")


# --- schedules ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [4, 20, 37])
def test_automatic_is_the_models_discretization(n):
    setup = plan("Euler", "Automatic", n)
    torch.testing.assert_close(setup.walk, kd_model().get_sigmas(n), rtol=1e-6, atol=0)
    assert setup.schedule_label == "Automatic" and setup.steps == n and setup.model_calls == n


def test_automatic_means_the_samplers_default_as_a1111_writes_it():
    kd, ks = kd_model(), sampling()
    smin, smax = kd.sigmas[0].item(), kd.sigmas[-1].item()
    setup = plan("DPM++ 2M", "Automatic", 12)
    torch.testing.assert_close(setup.walk, ks.get_sigmas_karras(12, smin, smax), rtol=1e-6, atol=0)
    assert setup.schedule_label == "Karras"
    setup = plan("DPM++ 2M SDE", "", 12)
    torch.testing.assert_close(setup.walk, ks.get_sigmas_exponential(12, smin, smax), rtol=1e-6, atol=0)
    assert setup.schedule_label == "Exponential"
    assert plan("Euler a", None).schedule_label == "Automatic"
    assert plan("DPM++ 2M Karras", "Automatic").schedule_label == "Karras"  # an old-style name's suffix wins


def test_discard_next_to_last_sigma():
    kd, ks = kd_model(), sampling()
    full = ks.get_sigmas_karras(11, kd.sigmas[0].item(), kd.sigmas[-1].item())
    setup = plan("DPM2", "Automatic", 10)
    torch.testing.assert_close(setup.walk, torch.cat([full[:-2], full[-1:]]), rtol=1e-6, atol=0)
    assert setup.steps == 10 and setup.model_calls == 20 and "Discard penultimate sigma" not in setup.infotext
    # the setting applies it to every sampler, and is then written down
    setup = plan("Euler", "Karras", 10, settings(always_discard_next_to_last_sigma=True))
    torch.testing.assert_close(setup.walk, torch.cat([full[:-2], full[-1:]]), rtol=1e-6, atol=0)
    assert setup.infotext == {"Discard penultimate sigma": True}


def test_schedule_overrides_from_settings_are_written():
    ks = sampling()
    setup = plan("Euler", "Karras", 8, settings(sigma_min=0.5, sigma_max=9.0, rho=5.0))
    torch.testing.assert_close(setup.walk, ks.get_sigmas_karras(8, 0.5, 9.0, rho=5.0), rtol=1e-6, atol=0)
    assert setup.infotext == {"Schedule min sigma": 0.5, "Schedule max sigma": 9.0, "Schedule rho": 5.0}
    old = plan("Euler", "Karras", 8, settings(use_old_karras_scheduler_sigmas=True))
    torch.testing.assert_close(old.walk, ks.get_sigmas_karras(8, 0.1, 10.0), rtol=1e-6, atol=0)


@pytest.mark.parametrize("schedule", [s.label for s in S.SCHEDULERS])
def test_every_schedule_for_a_k_sampler(schedule):
    setup = plan("DPM++ 2M", schedule, 9)
    assert len(setup.walk) == 10 and (setup.walk[:-1] > 0).all()
    # A1111's KL Optimal ends at the model's sigma_min, not at 0 (its formula has n + 1 points)
    assert setup.walk[-1] == (0 if schedule != "KL Optimal" else pytest.approx(float(kd_model().sigmas[0])))
    assert (setup.walk[:-1] >= setup.walk[1:]).all()


# --- img2img and hires step arithmetic ---------------------------------------------------------------------


def test_img2img_runs_the_tail_of_the_schedule():
    whole = plan("Euler", "Automatic", 20)
    setup = plan("Euler", "Automatic", 20, denoising=0.5)  # A1111: t_enc = int(0.5 * 20) = 10
    assert torch.equal(setup.walk, whole.walk[20 - 10 - 1 :]) and setup.steps == 10 + 1
    setup = plan("Euler", "Automatic", 20, denoising=0.5, fix_steps=True)  # 40 steps, run the last 20
    assert torch.equal(setup.walk, plan("Euler", "Automatic", 40).walk[40 - 19 - 1 :]) and setup.steps == 20
    assert plan("Heun", "Automatic", 20, denoising=0.3).model_calls == (6 + 1) * 2


def test_dpm_fast_and_adaptive_take_the_models_range():
    kd = kd_model()
    setup = plan("DPM fast", "Automatic", 12)
    assert setup.sigma_range == pytest.approx((kd.sigmas[0].item(), kd.sigmas[-1].item()))
    assert setup.steps == 12
    img = plan("DPM fast", "Automatic", 12, denoising=0.5)
    assert img.sigma_range == pytest.approx((float(img.walk[-2]), float(img.walk[0])))


# --- timestep samplers and LCM --------------------------------------------------------------------------


def test_timestep_samplers_walk_a1111s_timesteps():
    assert timesteps_for(20).tolist() == list(range(1, 1000, 50))
    assert timesteps_for(7).tolist() == list(range(1, 1000, 142))  # 8 timesteps: 1000 is not a multiple of 7
    setup = plan("DDIM", "Karras", 20)  # the schedule type is accepted and not used (as A1111)
    assert setup.timesteps.tolist() == list(range(1, 1000, 50)) and setup.schedule_label == "Karras"
    img = plan("DDIM", "Automatic", 20, denoising=0.5)
    assert img.start_timestep == 501 and img.timesteps.tolist() == list(range(1, 500, 50))
    uni = plan("UniPC", "Automatic", 10)
    assert uni.kwargs == {"variant": "bh1", "skip_type": "time_uniform", "order": 3, "lower_order_final": True}


def test_lcm_walks_its_distilled_timesteps():
    setup = plan("LCM", "Automatic", 4)
    train = S.training_sigmas(SD1_CONFIG)
    assert torch.equal(setup.lcm_table, train[19::20])
    assert setup.walk[0] == pytest.approx(float(train[999])) and setup.walk[-1] == 0 and setup.steps == 4


# --- eta and churn ------------------------------------------------------------------------------------------


def test_eta_defaults_and_infotext():
    assert plan("Euler a").kwargs["eta"] == 1.0 and "Eta" not in plan("Euler a").infotext
    zero = plan("Euler a", eta=0)
    assert zero.kwargs["eta"] == 0.0 and zero.infotext == {"Eta": 0.0} and not zero.uses_ensd
    assert plan("Euler a", opts=settings(eta_ancestral=0.5)).infotext == {"Eta": 0.5}
    ddim = plan("DDIM")
    assert ddim.kwargs["eta"] == 0.0 and ddim.infotext == {}
    assert plan("DDIM", eta=0.3).infotext == {"Eta DDIM": 0.3}
    assert "eta" not in plan("Euler", eta=0.5).kwargs  # Euler takes no eta; A1111 ignores it
    assert plan("Euler a").uses_ensd and not plan("DPM++ SDE").uses_ensd


def test_churn_from_the_request_and_from_settings():
    setup = plan("Euler", s_churn=0.5, s_tmin=0.2)
    assert setup.kwargs == {"s_churn": 0.5, "s_tmin": 0.2, "s_tmax": math.inf, "s_noise": 1.0}
    assert setup.infotext == {}
    # a setting away from A1111's default overrides the request and is written down
    setup = plan("Heun", opts=settings(s_churn=0.3, s_noise=0.9), s_churn=0.5)
    assert setup.kwargs["s_churn"] == 0.3 and setup.kwargs["s_noise"] == 0.9
    assert setup.infotext == {"Sigma churn": 0.3, "Sigma noise": 0.9}
    # A1111's sampler_extra_params: DPM2 a takes s_noise, Euler a takes none
    assert plan("DPM2 a", opts=settings(s_noise=0.9)).kwargs == {"eta": 1.0, "s_noise": 0.9}
    assert plan("Euler a", opts=settings(s_noise=0.9)).kwargs == {"eta": 1.0}
    assert plan("DPM++ 2M SDE Heun").kwargs["solver_type"] == "heun"


# --- noise during sampling --------------------------------------------------------------------------------


def test_image_noise_continues_each_images_generator():
    shape = (4, 3, 3)
    source = rng.ImageNoise([10, 11], shape)
    draws = [source(), source()]
    for i, seed in enumerate((10, 11)):
        g = torch.Generator().manual_seed(seed)
        first = torch.randn(shape, generator=g)
        assert not torch.equal(first, draws[0][i])
        assert torch.equal(draws[0][i], torch.randn(shape, generator=g))
        assert torch.equal(draws[1][i], torch.randn(shape, generator=g))


def test_ensd_restarts_the_generators_at_seed_plus_delta():
    shape = (4, 3, 3)
    draws = rng.ImageNoise([10, 11], shape, ensd=31337)()
    for i, seed in enumerate((10, 11)):
        assert torch.equal(draws[i], torch.randn(shape, generator=torch.Generator().manual_seed(seed + 31337)))


@pytest.mark.filterwarnings("ignore:Should have")  # k-diffusion's tree warns on float32 rounding at its ends
def test_brownian_noise_equals_kdiffusions_per_image_trees():
    ks = sampling()
    x = torch.zeros(2, 4, 3, 3)
    ours = rng.BrownianNoise(x, 0.03, 14.6, [5, 6])
    theirs = ks.BrownianTreeNoiseSampler(x, 0.03, 14.6, seed=[5, 6])
    for a, b in [(14.6, 7.0), (7.0, 2.5), (2.5, 0.03)]:
        torch.testing.assert_close(ours(torch.tensor(a), torch.tensor(b)), theirs(torch.tensor(a), torch.tensor(b)))
    # one image's noise does not depend on the other images of its batch
    alone = rng.BrownianNoise(x[:1], 0.03, 14.6, [6])
    torch.testing.assert_close(
        alone(torch.tensor(7.0), torch.tensor(2.5))[0], ours(torch.tensor(7.0), torch.tensor(2.5))[1]
    )
