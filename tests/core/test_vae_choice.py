"""The sd_vae setting: a VAE file's image equals decoding the job's latents with that VAE by hand; Automatic finds
the checkpoint's namesake; None goes back to the checkpoint's own VAE without a reload; the infotext names it."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sdui.core.vae_choice import VaeChoice
from sdui.devices import DevicePolicy
from sdui.errors import InvalidRequestError
from sdui.models.loading import load_sd_model
from sdui.models.unet_vae_loading import load_vae
from sdui.request import GenerationRequest
from tests.fixtures.checkpoints import build_tiny_checkpoint, tiny_state_dict
from tests.helpers import process_with_latents, settings

CPU32 = DevicePolicy(torch.device("cpu"), torch.float32, torch.float32)
PREFIX = "first_stage_model."


@pytest.fixture
def setup(tmp_path):
    ckpt_dir, vae_dir = tmp_path / "Stable-diffusion", tmp_path / "VAE"
    ckpt_dir.mkdir()
    vae_dir.mkdir()
    checkpoint = build_tiny_checkpoint(ckpt_dir / "tiny.safetensors")
    from sdui.models.discovery import CheckpointInfo

    model = load_sd_model(checkpoint, CPU32)
    model.checkpoint = CheckpointInfo.from_file(checkpoint, ckpt_dir)
    other = {k: v for k, v in tiny_state_dict("sd1", "base", "epsilon", 5).items() if k.startswith(PREFIX)}
    return model, ckpt_dir, vae_dir, other


def run(model, vae_choice, **overrides):
    request = GenerationRequest(prompt="a cat", seed=2, steps=2, width=64, height=64, sampler_name="Euler")
    return process_with_latents(request, model, settings=settings(**overrides), hooks=[vae_choice])


def by_hand(vae_weights: dict, latents: torch.Tensor) -> np.ndarray:
    vae = load_vae(vae_weights, "sd1")
    with torch.no_grad():
        decoded = vae.decode(latents / vae.config.scaling_factor).sample
    return ((decoded / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()


def test_a_vae_file_decodes_the_job_and_none_goes_back(setup):
    model, ckpt_dir, vae_dir, other = setup
    path = vae_dir / "other.safetensors"
    save_file({k[len(PREFIX) :]: v.contiguous() for k, v in other.items()}, str(path))  # the usual file: no prefix
    choice = VaeChoice(vae_dir, [ckpt_dir])
    own = model.vae

    plain, _ = run(model, choice, sd_vae="None")
    processed, latents = run(model, choice, sd_vae="other.safetensors")
    got = np.asarray(processed.images[0]).astype(int)
    assert np.abs(got - by_hand(other, latents).astype(int)).max() <= 1
    assert not np.array_equal(np.asarray(plain.images[0]), np.asarray(processed.images[0]))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    assert f"VAE hash: {digest}, VAE: other.safetensors" in processed.infotexts[0]
    # pasted back, the infotext chooses the same VAE (A1111's "VAE" key sets sd_vae)
    from sdui.core.infotext_fields import request_fields
    from sdui.infotext import parse_infotext

    fields = request_fields(parse_infotext(processed.infotexts[0]), mode="txt2img")
    assert fields["override_settings"]["sd_vae"] == "other.safetensors"
    assert model.vae is not own and model.unet is not None

    again, _ = run(model, choice, sd_vae="None")
    assert model.vae is own and np.array_equal(np.asarray(again.images[0]), np.asarray(plain.images[0]))
    assert "VAE hash" not in again.infotexts[0]


def test_automatic_takes_the_checkpoints_namesake(setup):
    model, ckpt_dir, vae_dir, other = setup
    choice = VaeChoice(vae_dir, [ckpt_dir])
    own, _ = run(model, choice, sd_vae="Automatic")
    assert model.vae is model.applied["vae"]["own"] and "VAE:" not in own.infotexts[0]
    save_file({k: v.contiguous() for k, v in other.items()}, str(ckpt_dir / "tiny.vae.safetensors"))  # with prefix
    processed, latents = run(model, choice, sd_vae="Automatic")
    assert "VAE: tiny.vae.safetensors" in processed.infotexts[0]
    assert np.abs(np.asarray(processed.images[0]).astype(int) - by_hand(other, latents).astype(int)).max() <= 1


def test_an_unknown_vae_is_refused_with_the_known_ones(setup):
    model, ckpt_dir, vae_dir, _ = setup
    (vae_dir / "kl-f8.safetensors").write_bytes(b"")
    with pytest.raises(InvalidRequestError, match="'nope' not found.*kl-f8.safetensors"):
        run(model, VaeChoice(vae_dir, [ckpt_dir]), sd_vae="nope")
