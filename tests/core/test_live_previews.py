"""Live previews by the show_progress_type setting, in real generations: the default (Approx cheap) never runs the
VAE's decoder for a preview, TAESD is found in the data folder's models/VAE-approx through the job machinery, and
the preview follows live_preview_content, batches of several images and both passes of hires fix.

VAE decoder calls are counted with a forward hook on the loaded model's decoder (observation, nothing replaced)."""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from diffusers import AutoencoderTiny

from sdui.app.context import generate
from sdui.core.hooks import ProcessingHooks
from sdui.core.processing import process
from sdui.core.progress import preview_decoder
from sdui.imaging.preview_decoders import cheap_preview
from sdui.imaging.vae import JobVae, to_pil
from sdui.models.loading import load_sd_model
from sdui.request import GenerationRequest
from sdui.settings.snapshot import Settings
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.helpers import CPU32, Events, LatentRecorder, install_checkpoint


@contextmanager
def decoder_calls(vae):
    """Counts forward calls of `vae`'s decoder while inside."""
    calls = []
    handle = vae.decoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        yield calls
    finally:
        handle.remove()


def request(**fields) -> GenerationRequest:
    base = dict(prompt="a cat", negative_prompt="a dog", seed=5, steps=4, width=64, height=64, sampler_name="Euler")
    return GenerationRequest(**{**base, **fields})


def max_diff(a, b) -> int:
    return int(np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max())


# ---- through the job machinery (generate() in a job of the app's queue) -----------------------------------------
@pytest.fixture
def app(ctx, tiny_sd1_checkpoint):
    install_checkpoint(tiny_sd1_checkpoint, ctx.paths.data_dir, "tiny.safetensors")
    recorder = LatentRecorder()
    ctx.hooks.append(recorder)
    return ctx, recorder


def run_job(ctx, req):
    """generate() as a queued job: (the job's last live preview, the result)."""
    job = ctx.jobs.submit(generate, ctx, req)
    deadline = time.monotonic() + 120
    while not job.done and time.monotonic() < deadline:
        time.sleep(0.02)
    preview = job.current_image  # handed over (and cleared) by wait()
    return preview, job.wait(1)


# Euler's last step lands on the guided prediction, so with "Combined" the last preview pictures the final latents
LAST_STEP_IS_FINAL = {"show_progress_every_n_steps": 1, "live_preview_content": "Combined"}


def test_the_default_preview_is_the_cheap_picture_and_never_calls_the_vae_decoder(app):
    ctx, recorder = app
    assert ctx.options.show_progress_type == "Approx cheap"
    model = ctx.store.get(None)
    req = request(override_settings=LAST_STEP_IS_FINAL, do_not_save_samples=True, do_not_save_grid=True)
    with decoder_calls(model.vae) as calls:
        preview, result = run_job(ctx, req)
    assert len(calls) == 1  # the finished image only; the four previews cost no VAE decode
    assert preview is not None and preview.size == (64, 64) and len(result.images) == 1
    assert max_diff(preview, cheap_preview(recorder.latents, "sd", 8)) <= 1


def test_taesd_in_the_data_folder_pictures_the_previews(app):
    ctx, recorder = app
    torch.manual_seed(0)
    taesd = AutoencoderTiny().eval()  # TAESD's real architecture, random weights
    folder = ctx.paths.vae_approx_dir
    folder.mkdir(parents=True, exist_ok=True)
    original = {f"{int(k.split('.')[1]) + 1}.{k.split('.', 2)[2]}": v for k, v in taesd.decoder.state_dict().items()}
    torch.save(original, folder / "taesd_decoder.pth")  # madebyollin's layout: Sequential index 0 is the clamp
    model = ctx.store.get(None)
    settings = {**LAST_STEP_IS_FINAL, "show_progress_type": "TAESD"}
    with decoder_calls(model.vae) as calls:
        preview, _ = run_job(ctx, request(override_settings=settings, do_not_save_samples=True, do_not_save_grid=True))
    assert len(calls) == 1
    with torch.no_grad():
        expected = to_pil(taesd.decode(recorder.latents).sample)[0]
    assert max_diff(preview, expected) <= 1


# ---- process() with a recording receiver: every preview is kept ------------------------------------------------
@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_sd_model(build_tiny_checkpoint(tmp_path_factory.mktemp("previews") / "m.safetensors"), CPU32)


class Predictions(ProcessingHooks):
    """Sets the Denoiser's uncond and cond predictions to small random pictures of their own at every model call
    (as an extension's on_denoised may; the tiny model's own predictions are too alike, and too large for the
    cheap map's range, to tell apart) and records them with the guided mix."""

    def __init__(self):
        self.seen = {"Negative prompt": [], "Prompt": [], "Combined": []}
        self.generator = torch.Generator().manual_seed(0)

    def on_denoised(self, params):
        uncond, cond = (0.5 * torch.randn(params.x[:1].shape, generator=self.generator) for _ in range(2))
        params.x = torch.cat([uncond, cond])
        self.seen["Negative prompt"].append(uncond)
        self.seen["Prompt"].append(cond)

    def after_cfg(self, params):
        self.seen["Combined"].append(params.x[:1].clone())


def previews(model, req, hooks=(), **settings):
    events = Events()
    with decoder_calls(model.vae) as calls:
        result = process(req, model, policy=CPU32, settings=Settings.defaults(**settings), events=events, hooks=hooks)
    return events.previews, len(calls), result


def test_batches_and_both_hires_passes_get_cheap_previews_of_their_first_image(model):
    req = request(batch_size=2, enable_hr=True, hr_scale=2.0, denoising_strength=0.5, hr_upscaler="Latent")
    shown, calls, result = previews(model, req, show_progress_every_n_steps=1)
    first_pass, second_pass = shown[:4], shown[4:]
    assert [p.size for p in first_pass] == [(64, 64)] * 4
    assert len(second_pass) >= 2 and {p.size for p in second_pass} == {(128, 128)}
    assert calls == 1  # one decode of the batch's two finished images
    full, full_calls, _ = previews(model, req, show_progress_every_n_steps=1, show_progress_type="Full")
    assert full_calls == 1 + len(full) and len(full) == len(shown)


@pytest.mark.parametrize("content", ["Prompt", "Negative prompt", "Combined"])
def test_the_preview_pictures_the_prediction_live_preview_content_names(model, content):
    seen = Predictions()
    shown, _, _ = previews(model, request(), [seen], show_progress_every_n_steps=2, live_preview_content=content)
    predictions = seen.seen[content]
    assert len(shown) == 2 and len(predictions) == 4  # Euler: one model call per step; previews after 2 and 4
    for picture, prediction in zip(shown, predictions[1::2], strict=True):
        assert picture.tobytes() == cheap_preview(prediction, "sd", 8).tobytes()
    others = [p for name, p in seen.seen.items() if name != content]
    assert all(cheap_preview(p[1], "sd", 8).tobytes() != shown[0].tobytes() for p in others)  # told apart


@pytest.mark.parametrize("arch, family", [("sd1", "sd"), ("sd2", "sd"), ("sdxl", "sdxl"), ("sdxl-refiner", "sdxl")])
def test_each_architecture_gets_the_map_of_its_vae(model, arch, family):
    """SD1 and SD2 share one VAE's latent space, SDXL and its refiner another's."""
    as_arch = dataclasses.replace(model, arch=arch)
    with JobVae(as_arch) as vae:
        decoder = preview_decoder(Settings.defaults(), as_arch, vae)
    assert decoder.family == family and decoder.scale == 8 and decoder.method == "Approx cheap"
