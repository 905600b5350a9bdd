"""The processing core's own rules: validation messages, interrupt and skip, what gets saved."""
from __future__ import annotations

import pytest
import torch

from sdui.devices import DevicePolicy
from sdui.errors import InvalidRequestError, UnsupportedSamplerError
from sdui.models.loading import load_sd_model
from sdui.core.processing import process
from sdui.core.request import GenerationRequest
from tests.fixtures.checkpoints import build_tiny_checkpoint

CPU32 = DevicePolicy(device=torch.device("cpu"), dtype=torch.float32, vae_dtype=torch.float32)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_sd_model(build_tiny_checkpoint(tmp_path_factory.mktemp("proc") / "m.safetensors"), CPU32)


class StepJob:
    """A job that asks to skip or interrupt once a given number of steps has run."""

    def __init__(self, action: str, after_steps: int):
        self.action, self.after = action, after_steps
        self.interrupted = self.skipped = False
        self.steps_seen = []

    def on_sampling_start(self, total):
        self.total = total

    def on_step(self, done, total):
        self.steps_seen.append(done)
        if len(self.steps_seen) == self.after:
            setattr(self, self.action, True)


@pytest.mark.parametrize("changes, words", [
    ({"width": 100}, "width must be a positive multiple of 8 (got 100); try 96"),
    ({"height": 0}, "height must be a positive multiple of 8"),
    ({"steps": 0}, "steps must be at least 1 (got 0)"),
    ({"batch_size": 0}, "batch size and batch count must be at least 1"),
    ({"subseed_strength": 1.5}, "between 0 and 1"),
    ({"width": 8192, "height": 8192}, "larger than the configured limit"),
])
def test_bad_requests_say_what_to_change_and_write_nothing(model, tmp_path, changes, words):
    request = GenerationRequest(**{"prompt": "x", "seed": 1, "steps": 2, "width": 64, "height": 64, **changes})
    with pytest.raises(InvalidRequestError) as err:
        process(request, model, policy=CPU32, options={}, outputs_dir=tmp_path)
    assert words in err.value.message
    assert list(tmp_path.rglob("*")) == []


def test_refused_sampler_names_the_alternatives(model, tmp_path):
    request = GenerationRequest(prompt="x", steps=2, width=64, height=64, sampler_name="DPM adaptive")
    with pytest.raises(UnsupportedSamplerError) as err:
        process(request, model, policy=CPU32, options={}, outputs_dir=tmp_path)
    assert "DPM adaptive" in err.value.message
    assert list(tmp_path.rglob("*")) == []


def test_skip_ends_one_batch_and_the_job_goes_on(model, tmp_path):
    request = GenerationRequest(prompt="x", seed=1, steps=4, width=64, height=64, n_iter=2, sampler_name="Euler")
    job = StepJob("skipped", after_steps=2)
    result = process(request, model, policy=CPU32, options={"grid_save": False}, outputs_dir=tmp_path, job=job)
    assert job.steps_seen == [1, 2, 5, 6, 7, 8]          # batch 1 stopped after 2 of 4 steps, batch 2 ran fully
    assert len(result.images) == 3                        # grid + the two images
    saved = sorted(p.name for p in (tmp_path / "txt2img-images").rglob("*.png"))
    assert saved == ["00000-2.png"]                       # only the finished image of batch 2 was saved


def test_interrupt_ends_the_job_and_returns_what_it_has(model, tmp_path):
    request = GenerationRequest(prompt="x", seed=1, steps=4, width=64, height=64, n_iter=3, sampler_name="Euler")
    job = StepJob("interrupted", after_steps=6)
    result = process(request, model, policy=CPU32, options={"return_grid": False}, outputs_dir=tmp_path, job=job)
    assert job.steps_seen == [1, 2, 3, 4, 5, 6]
    assert len(result.images) == 2 and result.extra["interrupted"]
    assert [p.name for p in (tmp_path / "txt2img-images").rglob("*.png")] == ["00000-1.png"]


def test_tiling_makes_generation_shift_equivariant_and_is_undone_afterwards(model, monkeypatch):
    """With circular padding everywhere, rolling the starting noise by 8 latent cells (a multiple of the UNet's
    downsampling) rolls the result by exactly as much: the picture has no edges. Without tiling it does not."""
    from sdui.core import processing as core
    base = dict(prompt="x", seed=3, steps=3, width=128, height=64, sampler_name="Euler")

    def final_latents(tiling: bool, roll: int):
        real = core.rng.create_noise
        monkeypatch.setattr(core.rng, "create_noise", lambda *a, **k: torch.roll(real(*a, **k), roll, dims=-1))
        try:
            result = process(GenerationRequest(tiling=tiling, **base), model, policy=CPU32, options={})
        finally:
            monkeypatch.setattr(core.rng, "create_noise", real)
        return result.extra["latents"], result.infotexts[0]

    tiled_latents, tiled_text = final_latents(True, 0)
    tiled_rolled, _ = final_latents(True, 8)
    scale = tiled_latents.abs().max()
    assert (torch.roll(tiled_latents, 8, dims=-1) - tiled_rolled).abs().max() <= 1e-4 * scale
    plain, plain_text = final_latents(False, 0)
    plain_rolled, _ = final_latents(False, 8)
    assert (torch.roll(plain, 8, dims=-1) - plain_rolled).abs().max() > 1e-2 * scale
    assert "Tiling: True" in tiled_text and "Tiling" not in plain_text
    assert all(conv.padding_mode == "zeros" for conv in model.unet.modules() if isinstance(conv, torch.nn.Conv2d))


class PreviewJob:
    interrupted = skipped = False

    def __init__(self):
        self.previews = []

    def on_sampling_start(self, total):
        pass

    def on_step(self, done, total):
        pass

    @property
    def current_image(self):
        return self.previews[-1] if self.previews else None

    @current_image.setter
    def current_image(self, image):
        self.previews.append(image)


@pytest.mark.parametrize("every, count", [(2, 3), (-1, 1), (0, 0)])
def test_live_previews_follow_the_a1111_period(model, every, count):
    job = PreviewJob()
    request = GenerationRequest(prompt="x", seed=1, steps=6, width=64, height=64, sampler_name="Euler")
    result = process(request, model, policy=CPU32, options={"show_progress_every_n_steps": every}, job=job)
    assert len(job.previews) == count
    if count:
        assert job.previews[-1].size == (64, 64)
    if every == -1:      # after the batch, the preview is the finished image
        assert job.previews[0].tobytes() == result.images[0].tobytes()
    # a preview mid-way shows the denoised estimate, not the noisy latents: close to the final image already
    if every == 2:
        import numpy as np
        last = np.asarray(job.previews[-1], dtype=int)
        assert np.abs(last - np.asarray(result.images[0], dtype=int)).mean() < 3
    disabled = PreviewJob()
    process(request, model, policy=CPU32, options={"live_previews_enable": False}, job=disabled)
    assert disabled.previews == []


def test_half_precision_vae_that_overflows_is_moved_to_float32(tmp_path, caplog):
    """A1111's 'NaNs in VAE' case: an fp16 VAE whose activations overflow gives NaNs; the decode is redone in fp32
    (and the VAE stays fp32) instead of returning black images."""
    import logging

    import numpy as np
    from sdui.core.processing import decode_latents
    model = load_sd_model(build_tiny_checkpoint(tmp_path / "m.safetensors"), CPU32)
    # latents whose scaled values (x / 0.18215) pass fp16's 65504 inside the decoder; fine in fp32
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 3e4
    reference = np.asarray(decode_latents(model, latents, CPU32)[0], dtype=int)
    assert reference.std() > 20          # a picture, not a black frame
    model.vae.to(torch.float16)
    with caplog.at_level(logging.WARNING):
        image = decode_latents(model, latents, CPU32)[0]
    assert "switching it to float32" in caplog.text
    assert model.vae.dtype == torch.float32
    assert np.abs(np.asarray(image, dtype=int) - reference).max() <= 1
