"""The Denoiser around the UNet: k-diffusion scalings, batched CFG, per-step conditioning, residual contributors."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import ControlNetModel

from sdui.core.denoiser import (
    Denoiser,
    Residuals,
    ScheduledConditioning,
    TextConditioning,
    UncondOptions,
    model_output_from_denoised,
    scalings,
)
from sdui.core.schedules import sigma_to_t, training_sigmas
from sdui.models.loading import load_sd_model
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.helpers import CPU32


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_sd_model(build_tiny_checkpoint(tmp_path_factory.mktemp("denoiser") / "m.safetensors"), CPU32)


def texts(model, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    width = model.unet.config.cross_attention_dim
    return torch.randn(1, 77, width, generator=g), torch.randn(1, 77, width, generator=g)


def make(model, cond, uncond, cfg=5.0, **kwargs) -> Denoiser:
    return Denoiser(
        model.unet,
        TextConditioning(cond, uncond),
        cfg_scale=cfg,
        prediction_type=model.prediction_type,
        train_sigmas=training_sigmas(model.scheduler_config),
        **kwargs,
    )


def noisy(seed: int = 1) -> torch.Tensor:
    return torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(seed)) * 3.0


def test_eps_scalings_and_cfg_equal_a_hand_written_a1111_step(model):
    cond, uncond = texts(model)
    x, sigma = noisy(), torch.tensor([2.5])
    train = training_sigmas(model.scheduler_config)
    t = sigma_to_t(sigma, train)
    x_in = x / (sigma**2 + 1) ** 0.5
    eps_c = model.unet(x_in, t, encoder_hidden_states=cond).sample
    eps_u = model.unet(x_in, t, encoder_hidden_states=uncond).sample
    expected = x - sigma * (eps_u + 5.0 * (eps_c - eps_u))  # CompVisDenoiser + A1111's CFG
    got = make(model, cond, uncond)(x, sigma, step=0, total=1)
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_model_output_from_denoised_inverts_the_scalings(prediction_type):
    x = torch.randn(2, 4, 8, 8)
    sigma = torch.tensor([0.05, 9.0])
    out = torch.randn(2, 4, 8, 8)
    c_skip, c_out, _ = (c.view(-1, 1, 1, 1) for c in scalings(sigma, prediction_type))
    denoised = c_skip * x + c_out * out
    assert torch.allclose(model_output_from_denoised(x, denoised, sigma, prediction_type), out, atol=1e-5)


def test_cfg_scale_one_runs_the_unet_once_on_the_prompt_alone(model):
    cond, uncond = texts(model)
    calls = []
    handle = model.unet.register_forward_hook(lambda m, args, kwargs_out: calls.append(args[0].shape[0]))
    try:
        guided = make(model, cond, uncond, cfg=1.0)(noisy(), torch.tensor([3.0]), step=0, total=1)
        alone = make(model, cond, cond, cfg=7.0)(noisy(), torch.tensor([3.0]), step=0, total=1)
    finally:
        handle.remove()
    assert calls == [1, 2]  # one image, no uncond half; then cond and uncond batched together
    assert (guided - alone).abs().max() <= 1e-4 * alone.abs().max()


def test_scheduled_conditioning_switches_at_its_step(model):
    a, b = texts(model)
    _, uncond = texts(model, seed=3)
    scheduled = ScheduledConditioning([[(4, a[0]), (9, b[0])]])  # [a:b:5] over 10 steps
    x, sigma = noisy(), torch.tensor([1.5])
    switching = make(model, scheduled, uncond)
    assert torch.equal(switching(x, sigma, step=4, total=10), make(model, a, uncond)(x, sigma, step=4, total=10))
    assert torch.equal(switching(x, sigma, step=5, total=10), make(model, b, uncond)(x, sigma, step=5, total=10))
    assert not torch.equal(switching(x, sigma, step=4, total=10), switching(x, sigma, step=5, total=10))


def test_residual_contributors_add_into_the_unet(model):
    """A ControlNet made from the UNet is the real kind of contributor: its residuals (zero until trained) reach
    the UNet exactly as diffusers passes them."""
    cond, uncond = texts(model)
    x, sigma = noisy(), torch.tensor([2.0])
    baseline = make(model, cond, uncond)(x, sigma, step=0, total=1)
    controlnet = ControlNetModel.from_unet(model.unet, conditioning_embedding_out_channels=(16, 32, 96, 256))
    hint = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))

    def contributor(call):
        n = call.sample.shape[0]
        down, mid = controlnet(
            call.sample,
            call.timestep,
            encoder_hidden_states=call.encoder_hidden_states,
            controlnet_cond=hint.repeat(n, 1, 1, 1),
            return_dict=False,
        )
        return Residuals(tuple(down), mid)

    untrained = make(model, cond, uncond, contributors=[contributor])(x, sigma, step=0, total=1)
    assert torch.equal(untrained, baseline)  # zero convolutions: nothing added
    with torch.no_grad():
        for zero_conv in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            zero_conv.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(5))
    steered = make(model, cond, uncond, contributors=[contributor])(x, sigma, step=0, total=1)

    train = training_sigmas(model.scheduler_config)
    t = sigma_to_t(sigma, train)
    x_in = (x / (sigma**2 + 1) ** 0.5).repeat(2, 1, 1, 1)
    both = torch.cat([uncond, cond])
    down, mid = controlnet(
        x_in, t, encoder_hidden_states=both, controlnet_cond=hint.repeat(2, 1, 1, 1), return_dict=False
    )
    eps_u, eps_c = model.unet(
        x_in, t, encoder_hidden_states=both, down_block_additional_residuals=down, mid_block_additional_residual=mid
    ).sample.chunk(2)
    expected = x - sigma * (eps_u + 5.0 * (eps_c - eps_u))
    assert (steered - baseline).abs().max() > 1e-3
    assert (steered - expected).abs().max() <= 1e-4 * expected.abs().max()
    two = make(model, cond, uncond, contributors=[contributor, lambda call: None])(x, sigma, step=0, total=1)
    assert torch.equal(two, steered)  # a contributor may add nothing


def test_the_unet_is_left_as_it_was(model):
    before = copy.deepcopy(model.unet.state_dict())
    cond, uncond = texts(model)
    make(model, cond, uncond)(noisy(), torch.tensor([2.0]), step=0, total=1)
    assert all(torch.equal(before[k], v) for k, v in model.unet.state_dict().items())


# --- the negative prompt's options: NGMS, skipping it early, padding ------------------------------------------


def batch_sizes(model, run):
    calls = []
    handle = model.unet.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    try:
        result = run()
    finally:
        handle.remove()
    return calls, result


@pytest.mark.parametrize("every_step", [False, True])
def test_ngms_skips_the_uncond_on_odd_steps_below_its_sigma(model, every_step):
    cond, uncond = texts(model)
    options = UncondOptions(s_min_uncond=5.0, s_min_uncond_all=every_step)
    denoiser = make(model, cond, uncond, uncond_options=options)
    x = noisy()
    alone = make(model, cond, cond, cfg=1.0)(x, torch.tensor([3.0]), step=1, total=10)
    calls, odd = batch_sizes(model, lambda: denoiser(x, torch.tensor([3.0]), step=1, total=10))
    assert calls == [1] and torch.equal(odd, alone)  # the prompt's prediction alone, as A1111's fake uncond gives
    calls, _ = batch_sizes(model, lambda: denoiser(x, torch.tensor([3.0]), step=2, total=10))
    assert calls == ([1] if every_step else [2])
    calls, _ = batch_sizes(model, lambda: denoiser(x, torch.tensor([6.0]), step=3, total=10))
    assert calls == [2]  # above the minimum sigma: guided as usual
    assert options.notes == ({"NGMS": 5.0, "NGMS all steps": True} if every_step else {"NGMS": 5.0})


def test_skip_early_cond_runs_the_first_part_without_the_negative_prompt(model):
    cond, uncond = texts(model)
    options = UncondOptions(skip_early_cond=0.3)
    denoiser = make(model, cond, uncond, uncond_options=options)
    sizes = [
        batch_sizes(model, lambda s=s: denoiser(noisy(), torch.tensor([2.0]), step=s, total=10))[0] for s in range(5)
    ]
    assert sizes == [[1], [1], [1], [1], [2]]  # steps 0-3: 3 / 10 <= 0.3
    assert options.notes == {"Skip Early CFG": 0.3}


@pytest.mark.parametrize("pad", ["empty", "v0"])
def test_padding_puts_a_long_prompt_and_a_short_negative_in_one_batch(model, pad):
    cond, uncond = texts(model)
    long_cond = torch.cat([cond, uncond], dim=1)  # two chunks against one
    empty = torch.randn(1, 77, cond.shape[2], generator=torch.Generator().manual_seed(9))
    options = UncondOptions(pad=pad, empty=empty)
    x, sigma = noisy(), torch.tensor([2.0])
    calls, padded = batch_sizes(
        model, lambda: make(model, long_cond, uncond, uncond_options=options)(x, sigma, step=0, total=1)
    )
    assert calls == [2]
    filler = empty if pad == "empty" else uncond[:, -1:].repeat(1, 77, 1)
    by_hand = make(model, long_cond, torch.cat([uncond, filler], dim=1))(x, sigma, step=0, total=1)
    assert torch.allclose(padded, by_hand, atol=1e-5)
    unpadded_calls, _ = batch_sizes(model, lambda: make(model, long_cond, uncond)(x, sigma, step=0, total=1))
    assert unpadded_calls == [1, 1]  # without padding: two UNet calls
    assert options.notes == {"Pad conds" if pad == "empty" else "Pad conds v0": True}
