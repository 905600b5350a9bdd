"""The processing core's own rules: validation messages, interrupt and skip, what gets saved."""

from __future__ import annotations

import pytest
import torch

from sdui.core.processing import process
from sdui.errors import InvalidRequestError, UnsupportedSamplerError
from sdui.models.loading import load_sd_model
from sdui.request import GenerationRequest
from sdui.settings.snapshot import Settings
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.helpers import CPU32, Events, process_with_latents


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_sd_model(build_tiny_checkpoint(tmp_path_factory.mktemp("proc") / "m.safetensors"), CPU32)


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"width": 100}, "width must be a positive multiple of 8 (got 100); try 96"),
        ({"height": 0}, "height must be a positive multiple of 8"),
        ({"steps": 0}, "steps must be between 1 and 1000 (got 0"),
        ({"batch_size": 0}, "batch_size must be between 1 and 64 (got 0"),
        ({"subseed_strength": 1.5}, "between 0 and 1"),
        ({"width": 8192, "height": 8192}, "larger than the configured limit"),
    ],
)
def test_bad_requests_say_what_to_change_and_write_nothing(model, tmp_path, changes, words):
    request = GenerationRequest(**{"prompt": "x", "seed": 1, "steps": 2, "width": 64, "height": 64, **changes})
    with pytest.raises(InvalidRequestError) as err:
        process(request, model, policy=CPU32, data_dir=tmp_path)
    assert words in err.value.message
    assert list(tmp_path.rglob("*")) == []


def test_unknown_sampler_names_the_alternatives(model, tmp_path):
    request = GenerationRequest(prompt="x", steps=2, width=64, height=64, sampler_name="DPM turbo")
    with pytest.raises(UnsupportedSamplerError) as err:
        process(request, model, policy=CPU32, data_dir=tmp_path)
    assert "Unknown sampler 'DPM turbo'" in err.value.message and "DPM adaptive" in err.value.message
    assert list(tmp_path.rglob("*")) == []


def test_progress_inside_a_step_is_reported_block_by_block(model):
    events = Events()
    request = GenerationRequest(prompt="x", seed=1, steps=2, width=64, height=64, sampler_name="Euler", cfg_scale=5)
    process(request, model, policy=CPU32, events=events)
    blocks = len(model.unet.down_blocks) + 1 + len(model.unet.up_blocks)
    assert events.parts[:blocks] == pytest.approx([min(0.99, (i + 1) / blocks) for i in range(blocks)])
    assert len(events.parts) % blocks == 0 and all(0 < part < 1 for part in events.parts)
    assert not any(h for b in model.unet.down_blocks for h in b._forward_hooks.values())  # the hooks are gone


def test_skip_ends_one_batch_and_the_job_goes_on(model, tmp_path):
    request = GenerationRequest(prompt="x", seed=1, steps=4, width=64, height=64, n_iter=2, sampler_name="Euler")
    events = Events(stop="skip", stop_after=2)
    result = process(
        request, model, policy=CPU32, settings=Settings.defaults(grid_save=False), data_dir=tmp_path, events=events
    )
    assert events.batches_announced == [(2, 4)]
    assert events.steps == [(1, 4), (2, 4), (1, 4), (2, 4), (3, 4), (4, 4)]  # batch 1 stopped after 2 of 4 steps
    assert events.batches_done == 2 and not result.interrupted
    assert len(result.images) == 3  # grid + the two images
    saved = sorted(p.name for p in (tmp_path / "outputs" / "txt2img-images").rglob("*.png"))
    assert saved == ["00000-2.png"]  # only the finished image of batch 2 was saved


def test_interrupt_ends_the_job_and_returns_what_it_has(model, tmp_path):
    request = GenerationRequest(prompt="x", seed=1, steps=4, width=64, height=64, n_iter=3, sampler_name="Euler")
    events = Events(stop="interrupt", stop_after=6)
    result = process(
        request, model, policy=CPU32, settings=Settings.defaults(return_grid=False), data_dir=tmp_path, events=events
    )
    assert [step for step, _ in events.steps] == [1, 2, 3, 4, 1, 2]
    assert len(result.images) == 2 and result.interrupted
    assert [p.name for p in (tmp_path / "outputs" / "txt2img-images").rglob("*.png")] == ["00000-1.png"]


def test_tiling_makes_generation_shift_equivariant_and_is_undone_afterwards(model, monkeypatch):
    """With circular padding everywhere, rolling the starting noise by 8 latent cells (a multiple of the UNet's
    downsampling) rolls the result by exactly as much: the picture has no edges. Without tiling it does not."""
    from sdui.core import processing as core

    base = dict(prompt="x", seed=3, steps=3, width=128, height=64, sampler_name="Euler")

    def final_latents(tiling: bool, roll: int):
        real = core.rng.create_noise
        monkeypatch.setattr(core.rng, "create_noise", lambda *a, **k: torch.roll(real(*a, **k), roll, dims=-1))
        try:
            result, latents = process_with_latents(GenerationRequest(tiling=tiling, **base), model)
        finally:
            monkeypatch.setattr(core.rng, "create_noise", real)
        return latents, result.infotexts[0]

    tiled_latents, tiled_text = final_latents(True, 0)
    tiled_rolled, _ = final_latents(True, 8)
    scale = tiled_latents.abs().max()
    assert (torch.roll(tiled_latents, 8, dims=-1) - tiled_rolled).abs().max() <= 1e-4 * scale
    plain, plain_text = final_latents(False, 0)
    plain_rolled, _ = final_latents(False, 8)
    assert (torch.roll(plain, 8, dims=-1) - plain_rolled).abs().max() > 1e-2 * scale
    assert "Tiling: True" in tiled_text and "Tiling" not in plain_text
    assert all(conv.padding_mode == "zeros" for conv in model.unet.modules() if isinstance(conv, torch.nn.Conv2d))


@pytest.mark.parametrize("every, count", [(2, 3), (-1, 1), (0, 0)])
def test_live_previews_follow_the_a1111_period(model, every, count):
    job = Events()
    request = GenerationRequest(prompt="x", seed=1, steps=6, width=64, height=64, sampler_name="Euler")
    full = Settings.defaults(show_progress_every_n_steps=every, show_progress_type="Full")
    result = process(request, model, policy=CPU32, settings=full, events=job)
    assert len(job.previews) == count
    if count:
        assert job.previews[-1].size == (64, 64)
    if every == -1:  # after the batch, the preview is the finished image
        assert job.previews[0].tobytes() == result.images[0].tobytes()
    # a preview mid-way shows the denoised estimate, not the noisy latents: close to the final image already
    if every == 2:
        import numpy as np

        last = np.asarray(job.previews[-1], dtype=int)
        assert np.abs(last - np.asarray(result.images[0], dtype=int)).mean() < 3
    disabled = Events()
    process(request, model, policy=CPU32, settings=Settings.defaults(live_previews_enable=False), events=disabled)
    assert disabled.previews == []


def test_half_precision_vae_that_overflows_is_decoded_in_float32_for_the_job(tmp_path, caplog):
    """A1111's 'NaNs in VAE' case: an fp16 VAE whose activations overflow gives NaNs; the decode is redone in fp32
    instead of returning black images. The upcast lasts for the job: the model gets its fp16 VAE back, with the
    note that it overflows, so the next job decodes in fp32 straight away."""
    import logging

    import numpy as np

    from sdui.imaging.vae import JobVae, decode, to_pil

    model = load_sd_model(build_tiny_checkpoint(tmp_path / "m.safetensors"), CPU32)
    # latents whose scaled values (x / 0.18215) pass fp16's 65504 inside the decoder; fine in fp32
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 3e4
    reference = np.asarray(to_pil(decode(model.vae, latents))[0], dtype=int)
    assert reference.std() > 20  # a picture, not a black frame
    model.vae.to(torch.float16)
    assert not torch.isfinite(decode(model.vae, latents)).all()
    with caplog.at_level(logging.WARNING), JobVae(model) as vae:
        image = vae.decode_to_pil(latents)[0]
        assert model.vae.dtype == torch.float32
    assert "decoding in float32 instead" in caplog.text
    assert model.vae.dtype == torch.float16 and model.vae_overflows
    assert np.abs(np.asarray(image, dtype=int) - reference).max() <= 1
    with JobVae(model) as vae:  # the next job: float32 from the start
        assert model.vae.dtype == torch.float32
        assert np.abs(np.asarray(vae.decode_to_pil(latents)[0], dtype=int) - reference).max() <= 1
    assert model.vae.dtype == torch.float16
    with JobVae(model, auto_upcast=False) as vae:  # auto_vae_precision off: A1111's black image
        assert not torch.isfinite(vae.decode(latents)).all()


def test_a_failing_job_leaves_the_cached_model_as_it_was_loaded(model):
    """Per-job patches (tiling's circular padding, the VAE's precision) are undone even when the job fails."""
    from sdui.core.hooks import ProcessingHooks

    class Boom(ProcessingHooks):
        def post_sample(self, run, batch, args):
            assert {c.padding_mode for c in model.unet.modules() if isinstance(c, torch.nn.Conv2d)} >= {"circular"}
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        process(
            GenerationRequest(prompt="x", seed=1, steps=1, width=64, height=64, sampler_name="Euler", tiling=True),
            model,
            policy=CPU32,
            hooks=[Boom()],
        )
    convs = [c for m in (model.unet, model.vae) for c in m.modules() if isinstance(c, torch.nn.Conv2d)]
    assert {c.padding_mode for c in convs} == {"zeros"}
    assert model.vae.dtype == torch.float32


def test_eta_ddim_setting_is_used_written_and_pasted_back(model):
    from sdui.core.infotext_fields import request_fields
    from sdui.infotext import parse_infotext
    from sdui.request import request_from_fields
    from sdui.settings.snapshot import Settings

    request = GenerationRequest(prompt="x", seed=4, steps=4, width=64, height=64, sampler_name="DDIM")
    plain = process(request, model, policy=CPU32)
    noisy = process(request, model, policy=CPU32, settings=Settings.defaults(eta_ddim=0.5))
    assert "Eta DDIM" not in plain.infotexts[0] and "Eta DDIM: 0.5" in noisy.infotexts[0]
    assert noisy.images[0].tobytes() != plain.images[0].tobytes()
    fields = request_fields(parse_infotext(noisy.infotexts[0]))
    assert fields["override_settings"]["eta_ddim"] == 0.5
    again = process(
        request_from_fields(GenerationRequest, fields),
        model,
        policy=CPU32,
        settings=Settings.defaults(**fields["override_settings"]),
    )
    assert again.images[0].tobytes() == noisy.images[0].tobytes()


def test_negative_prompt_options_change_the_image_and_are_written(model):
    base = dict(prompt="x", negative_prompt="y", seed=3, steps=4, width=64, height=64, sampler_name="Euler")
    plain, plain_latents = process_with_latents(GenerationRequest(**base), model, policy=CPU32)
    ngms, ngms_latents = process_with_latents(GenerationRequest(**base, s_min_uncond=50.0), model, policy=CPU32)
    assert "NGMS: 50.0" in ngms.infotexts[0] and "NGMS" not in plain.infotexts[0]
    assert not torch.allclose(plain_latents, ngms_latents)
    early = process(GenerationRequest(**base), model, policy=CPU32, settings=Settings.defaults(skip_early_cond=0.5))
    assert "Skip Early CFG: 0.5" in early.infotexts[0]
    old = process(
        GenerationRequest(**{**base, "prompt": "[a:b:0.5]", "steps": 4}),
        model,
        policy=CPU32,
        settings=Settings.defaults(use_old_scheduling=True),
    )
    assert "Old prompt editing timelines: True" not in old.infotexts[0]  # 0.5 reads the same both ways
    old = process(
        GenerationRequest(**{**base, "prompt": "[a:b:2.0]", "steps": 4}),
        model,
        policy=CPU32,
        settings=Settings.defaults(use_old_scheduling=True),
    )
    assert "Old prompt editing timelines: True" in old.infotexts[0]
