"""bfloat16 on the CPU, through the real loader and process(), against float32 on the same tiny checkpoint.

What bf16 changes is the model calls only: the sampler's latents, sigmas and noise stay float32 (the Denoiser casts
at the UNet's door), so a bf16 image is a float32 image with rounding in the networks, and the same seed gives the
same image every time. Tolerances below were measured on this tiny checkpoint (random weights, 64x64, 8 steps) and
are about twice the measured values: DPM++ 2M mean 0.65 / 99th percentile 3 levels of 255 / latents 1.4 % apart;
inpainting mean 0.19 / 3 / 1.4 %, with the kept area identical to the init image.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from sdui.core.lora import merged_weight
from sdui.devices import DevicePolicy
from sdui.imaging import vae as vae_io
from sdui.imaging.vae import JobVae
from sdui.models.loading import load_sd_model
from sdui.request import GenerationRequest, Img2ImgRequest
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.helpers import CPU32, process_with_latents

CPU_BF16 = DevicePolicy(torch.device("cpu"), torch.bfloat16, torch.bfloat16, reason="test")
MEAN_LEVELS, P99_LEVELS, LATENT_REL = 1.5, 6, 0.04


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_tiny_checkpoint(tmp_path_factory.mktemp("precision") / "m.safetensors")


@pytest.fixture(scope="module")
def models(checkpoint):
    return {policy: load_sd_model(checkpoint, policy) for policy in (CPU32, CPU_BF16)}


def pixels(processed) -> np.ndarray:
    return np.asarray(processed.images[0], dtype=int)


def assert_close_to_float32(models, request):
    """Runs `request` in float32 and twice in bfloat16; returns the images (float32, bf16)."""
    full, full_latents = process_with_latents(request, models[CPU32], policy=CPU32)
    half, half_latents = process_with_latents(request, models[CPU_BF16], policy=CPU_BF16)
    again, again_latents = process_with_latents(request, models[CPU_BF16], policy=CPU_BF16)
    # the sampler worked in float32 throughout, and the result is finite
    assert half_latents.dtype == torch.float32 and torch.isfinite(half_latents).all()
    # close to float32
    diff = np.abs(pixels(full) - pixels(half))
    assert diff.mean() <= MEAN_LEVELS and np.percentile(diff, 99) <= P99_LEVELS, (diff.mean(), diff.max())
    assert ((full_latents - half_latents).norm() / full_latents.norm()).item() <= LATENT_REL
    assert pixels(full).std() > 20  # a picture, not a flat frame
    # same seed, same image
    assert torch.equal(again_latents, half_latents) and np.array_equal(pixels(again), pixels(half))
    return pixels(full), pixels(half)


def test_the_loader_builds_every_network_in_bfloat16(checkpoint, models):
    model = models[CPU_BF16]
    assert model.unet.dtype == model.vae.dtype == torch.bfloat16
    assert all(encoder.dtype == torch.bfloat16 for encoder in model.text_encoders)
    kept_vae = load_sd_model(checkpoint, DevicePolicy(torch.device("cpu"), torch.bfloat16, torch.float32))
    assert (kept_vae.unet.dtype, kept_vae.vae.dtype) == (torch.bfloat16, torch.float32)  # --no-half-vae


def test_a_bf16_vae_on_the_cpu_runs_channels_last_with_the_same_result(models):
    bf16, fp32 = models[CPU_BF16].vae, models[CPU32].vae
    conv = bf16.decoder.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert fp32.decoder.conv_in.weight.is_contiguous()  # float32 is slower channels-last on the CPU: kept as is
    latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    plain = copy.deepcopy(bf16).to(memory_format=torch.contiguous_format)
    fast = vae_io.decode(bf16, latents)
    reference = vae_io.decode(plain, latents)
    exact = vae_io.decode(fp32, latents)
    assert fast.dtype == torch.bfloat16
    # the same bf16 arithmetic summed in another order: as close to float32 as the default layout, and under one
    # pixel level from it on average
    fast_error, plain_error = ((x.float() - exact).abs().mean().item() for x in (fast, reference))
    assert fast_error <= 1.25 * plain_error + 1e-4, (fast_error, plain_error)
    assert (fast.float() - reference.float()).abs().mean() * 127.5 <= 1.0
    pixels_in = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    encoded = (vae_io.encode(v, pixels_in).float() for v in (bf16, plain, fp32))
    fast_latents, plain_latents, exact_latents = encoded
    assert (fast_latents - exact_latents).abs().mean() <= 1.25 * (plain_latents - exact_latents).abs().mean() + 1e-4


def test_a_bf16_unet_on_the_cpu_runs_channels_last_with_the_same_result(models):
    bf16, fp32 = models[CPU_BF16].unet, models[CPU32].unet
    conv = bf16.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert fp32.conv_in.weight.is_contiguous()
    plain = copy.deepcopy(bf16).to(memory_format=torch.contiguous_format)
    g = torch.Generator().manual_seed(2)
    latents = torch.randn(2, 4, 8, 8, generator=g)
    context = torch.randn(2, 77, fp32.config.cross_attention_dim, generator=g)
    timesteps = torch.tensor([500, 500])

    def predict(unet):
        dtype = unet.dtype
        with torch.no_grad():
            return unet(latents.to(dtype), timesteps, encoder_hidden_states=context.to(dtype)).sample.float()

    fast, reference, exact = predict(bf16), predict(plain), predict(fp32)
    assert torch.isfinite(fast).all()
    # the same bf16 arithmetic summed in another order: as close to float32 as the default layout
    fast_error, plain_error = ((x - exact).abs().mean().item() for x in (fast, reference))
    assert fast_error <= 1.25 * plain_error + 1e-4, (fast_error, plain_error)


@pytest.mark.slow
def test_bf16_txt2img_is_close_to_float32_and_repeatable(models):
    request = GenerationRequest(
        prompt="a cat", negative_prompt="dog", seed=7, steps=8, width=64, height=64, sampler_name="DPM++ 2M"
    )
    assert_close_to_float32(models, request)


@pytest.mark.slow
def test_bf16_inpainting_keeps_the_unmasked_area_exactly(models):
    y, x = np.mgrid[0:64, 0:64]
    init = np.stack([x * 4, y * 4, 255 - (x + y) * 2], -1).astype(np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:40, 16:48] = 255
    request = Img2ImgRequest(
        prompt="a red door",
        seed=11,
        steps=8,
        width=64,
        height=64,
        sampler_name="Euler",
        init_images=[Image.fromarray(init)],
        mask=Image.fromarray(mask),
        denoising_strength=0.75,
        mask_blur_x=0,
        mask_blur_y=0,
        inpainting_fill=1,
    )
    _, half = assert_close_to_float32(models, request)
    assert np.array_equal(half[mask == 0], init[mask == 0].astype(int))


def test_a_bf16_vae_that_gives_nans_is_decoded_in_float32_for_the_job(checkpoint, caplog):
    """JobVae's fallback holds for bf16 as for fp16. bf16 has float32's range, so a real overflow is rare: a hook
    that spoils the bf16 decoder's output stands in for whatever produced the NaNs."""
    model = load_sd_model(checkpoint, CPU_BF16)
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    model.vae.to(torch.float32)
    reference = JobVae(model, auto_upcast=False).decode(latents)
    model.vae.to(torch.bfloat16)

    def spoil(module, inputs, output):
        return output * float("nan") if output.dtype == torch.bfloat16 else output

    handle = model.vae.decoder.register_forward_hook(spoil)
    try:
        with caplog.at_level(logging.WARNING), JobVae(model) as vae:
            decoded = vae.decode(latents)
            assert model.vae.dtype == torch.float32
    finally:
        handle.remove()
    assert "The VAE produced NaNs in bfloat16; decoding in float32 instead" in caplog.text
    assert torch.equal(decoded, reference)
    assert model.vae.dtype == torch.bfloat16 and model.vae_overflows  # handed back as loaded, with the note


def test_a_lora_merges_into_bf16_weights_with_one_rounding():
    """The merged weight is the float32 sum rounded once to bf16, never further from it than rounding the change
    first and the sum again (what adding in the weight's dtype did)."""
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(64, 32, generator=g).to(torch.bfloat16)
    up, down = torch.randn(64, 4, generator=g), torch.randn(4, 32, generator=g)
    diff = torch.randn(64, 32, generator=g)
    cases = [  # a plain LoRA (the fused multiply-add), and a full-weight change (the general path)
        ({"lora_up.weight": up, "lora_down.weight": down}, 0.01, torch.addmm(weight.float(), up, down, alpha=0.01)),
        ({"diff": diff}, 0.01, weight.float() + diff * 1.0 * 0.01),
    ]
    for parts, multiplier, exact in cases:
        merged = merged_weight(parts, weight, multiplier)
        assert merged.dtype == torch.bfloat16 and torch.equal(merged, exact.to(torch.bfloat16))
        twice = weight + (exact - weight.float()).to(torch.bfloat16)
        assert ((merged.float() - exact).abs() <= (twice.float() - exact).abs()).all()
        assert not torch.equal(merged, twice)  # the double rounding differs somewhere: the test can tell
