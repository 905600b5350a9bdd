"""ControlNet in whole generations, on a tiny checkpoint and tiny ControlNets written in lllyasviel's layout and
loaded through the real catalog and loader; the units reach the job as the app's hook puts them there (a
ProcessingHooks whose process(run) fills run.residual_contributors).

1. diffusers' StableDiffusionControlNetPipeline (one unit) and its multi-ControlNet form (two units) on the same
   components, noise and sigmas: equal within 1/255, latents within 1e-4 of their scale.
2. What the unit settings do, against runs of our own: weight 0 is no ControlNet, bit for bit, and so is the job
   after a ControlNet job; start/end act on exactly the steps the extension's rule picks; "ControlNet is more
   important" leaves the negative prompt's prediction untouched; hires fix applies the unit in both passes, the map
   at each pass's size.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionControlNetPipeline, StableDiffusionXLControlNetPipeline
from PIL import Image

from sdui.controlnet.model_files import ControlNetCache, ControlNetCatalog
from sdui.controlnet.residuals import ControlNetResiduals, in_guidance
from sdui.core import rng
from sdui.core.hooks import ProcessingHooks
from sdui.models.loading import load_sd_model
from sdui.request import GenerationRequest
from sdui.settings.snapshot import Settings
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.fixtures.controlnet import write_controlnet
from tests.fixtures.diffusers_reference import a1111_sigmas, euler_scheduler, keep_latents
from tests.helpers import CPU32, process_with_latents

pytestmark = pytest.mark.slow

OPTIONS = Settings.defaults(samples_save=False)
SIZE = 64


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("controlnet")
    model = load_sd_model(build_tiny_checkpoint(root / "sd1.safetensors"), CPU32)
    write_controlnet(root / "ControlNet" / "control_canny.safetensors")
    write_controlnet(root / "ControlNet" / "control_depth.pth", seed=1, prefix=False)
    catalog = ControlNetCatalog([root / "ControlNet"])
    cache = ControlNetCache(size=2)
    return model, cache.get(catalog.find("control_canny"), CPU32), cache.get(catalog.find("control_depth"), CPU32)


def edge_map(size: int = SIZE) -> Image.Image:
    """A canny-like map: white lines on black."""
    array = np.zeros((size, size, 3), np.uint8)
    array[size // 4, :] = 255
    array[:, size // 2] = 255
    array[size // 8 : size // 2, size // 8] = 255
    return Image.fromarray(array)


def depth_map(size: int = SIZE) -> Image.Image:
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    return Image.fromarray(np.repeat(np.add.outer(ramp, ramp)[:, :, None] / 2, 3, axis=2).astype(np.uint8))


class Units(ProcessingHooks):
    """What the app's ControlNet hook does: the job's units become the run's residual contributors."""

    def __init__(self, *units):
        self.units = units

    def process(self, run):
        run.residual_contributors.extend(self.units)


class OnlyWhen:
    """A contributor that asks `unit` only at the calls `when(call)` picks."""

    def __init__(self, unit, when):
        self.unit, self.when = unit, when

    def __call__(self, call):
        return self.unit(call) if self.when(call) else None


class StepRecorder:
    """Records the step of every call `unit` added residuals to."""

    def __init__(self, unit):
        self.unit, self.steps = unit, []

    def __call__(self, call):
        found = self.unit(call)
        if found is not None:
            self.steps.append(call.step)
        return found


class FirstDenoised(ProcessingHooks):
    """Keeps the first call's denoised predictions, the negative prompt's rows first."""

    def __init__(self):
        self.x = None

    def on_denoised(self, params):
        if self.x is None:
            self.x = params.x.clone()


def request(**fields) -> GenerationRequest:
    base = dict(
        prompt="a house by a lake",
        negative_prompt="blurry",
        seed=4321,
        sampler_name="Euler",
        steps=6,
        cfg_scale=7.0,
        width=SIZE,
        height=SIZE,
    )
    return GenerationRequest(**{**base, **fields})


def run(model, req, *units, hooks=()):
    result, latents = process_with_latents(req, model, policy=CPU32, settings=OPTIONS, hooks=[Units(*units), *hooks])
    return np.asarray(result.images[0].convert("RGB"), dtype=np.int16), latents


def run_diffusers(model, req, controlnet, image, scale):
    pipe = StableDiffusionControlNetPipeline(
        vae=model.vae,
        text_encoder=model.text_encoders[0],
        tokenizer=model.tokenizers[0],
        unet=model.unet,
        controlnet=controlnet,
        scheduler=euler_scheduler(model),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return run_pipeline(pipe, model, req, image, scale)


def run_pipeline(pipe, model, req, image, scale):
    pipe.set_progress_bar_config(disable=True)
    noise = rng.create_noise((4, SIZE // 8, SIZE // 8), [req.seed], [req.seed], 0.0, -1, -1, device=torch.device("cpu"))
    captured = {}
    result = pipe(
        prompt=req.prompt,
        negative_prompt=req.negative_prompt,
        image=image,
        height=req.height,
        width=req.width,
        guidance_scale=req.cfg_scale,
        latents=noise,
        sigmas=a1111_sigmas(model, req.steps),
        controlnet_conditioning_scale=scale,
        output_type="pil",
        callback_on_step_end=keep_latents(captured),
    )
    return np.asarray(result.images[0].convert("RGB"), dtype=np.int16), captured["latents"]


def assert_close(ours, theirs, what):
    (pixels, latents), (their_pixels, their_latents) = ours, theirs
    scale = their_latents.abs().max().item()
    assert (latents - their_latents).abs().max().item() <= 1e-4 * scale, f"{what}: latents differ"
    assert np.abs(pixels - their_pixels).max() <= 1, f"{what}: pixels differ"


def assert_moved(a, b, what, levels=8):
    assert np.abs(a[0] - b[0]).max() >= levels, f"{what}: the image did not change"


# --- 1. diffusers' pipelines -----------------------------------------------------------------------------------------


def test_one_unit_equals_diffusers_controlnet_pipeline(parts):
    model, canny, _ = parts
    req = request()
    ours = run(model, req, ControlNetResiduals(canny, edge_map(), weight=0.8))
    assert_close(ours, run_diffusers(model, req, canny, edge_map(), 0.8), "one unit")
    assert_moved(ours, run(model, req), "one unit")  # the comparison is not between two ControlNet-free runs
    assert ours[0].std() > 1.0


def test_two_units_add_as_diffusers_multi_controlnet(parts):
    model, canny, depth = parts
    req = request(seed=77)
    units = ControlNetResiduals(canny, edge_map(), weight=0.6), ControlNetResiduals(depth, depth_map(), weight=0.9)
    ours = run(model, req, *units)
    theirs = run_diffusers(model, req, [canny, depth], [edge_map(), depth_map()], [0.6, 0.9])
    assert_close(ours, theirs, "two units")
    assert_moved(ours, run(model, req, units[0]), "the second unit")


# --- 2. the unit's settings, against our own runs ----------------------------------------------------------------


def test_weight_zero_and_the_next_job_equal_no_controlnet_exactly(parts):
    model, canny, _ = parts
    req = request()
    baseline = run(model, req)
    zero = run(model, req, ControlNetResiduals(canny, edge_map(), weight=0.0))
    assert torch.equal(zero[1], baseline[1]) and (zero[0] == baseline[0]).all()
    controlled = run(model, req, ControlNetResiduals(canny, edge_map(), weight=1.0))
    assert_moved(controlled, baseline, "weight 1")
    after = run(model, req)
    assert torch.equal(after[1], baseline[1]) and (after[0] == baseline[0]).all()


def test_start_and_end_act_on_exactly_the_steps_inside(parts):
    model, canny, _ = parts
    req = request(steps=6)
    limited = StepRecorder(ControlNetResiduals(canny, edge_map(), guidance_start=0.3, guidance_end=0.7))
    ours = run(model, req, limited)
    assert limited.steps == [2, 3, 4]  # 2/6, 3/6, 4/6 lie in [0.3, 0.7]
    full = ControlNetResiduals(canny, edge_map())
    expected = run(model, req, OnlyWhen(full, lambda call: in_guidance(call.step, call.total, 0.3, 0.7)))
    assert torch.equal(ours[1], expected[1])
    assert_moved(ours, run(model, req, ControlNetResiduals(canny, edge_map())), "start/end against the full range")
    assert_moved(ours, run(model, req), "start/end against no ControlNet")


def test_controlnet_more_important_only_changes_the_prompts_side(parts):
    model, canny, _ = parts
    req = request()
    seen = {}
    for name, units in (
        ("none", ()),
        ("balanced", (ControlNetResiduals(canny, edge_map()),)),
        ("control", (ControlNetResiduals(canny, edge_map(), control_mode="ControlNet is more important"),)),
    ):
        first = FirstDenoised()
        seen[name] = run(model, req, *units, hooks=[first]), first.x
    (_, none_first), (balanced, balanced_first), (control, control_first) = (
        seen["none"],
        seen["balanced"],
        seen["control"],
    )
    # step 0: every run starts from the same noise, so the negative prompt's prediction (row 0) shows who touched it
    assert torch.equal(control_first[0], none_first[0])
    assert not torch.equal(control_first[1], none_first[1])
    assert not torch.equal(balanced_first[0], none_first[0])
    assert_moved(control, balanced, "ControlNet is more important against Balanced")


def test_hires_fix_applies_the_unit_in_both_passes(parts):
    model, canny, _ = parts
    req = request(
        steps=4, enable_hr=True, hr_scale=2.0, hr_upscaler="Latent", denoising_strength=0.6, hr_second_pass_steps=3
    )
    unit = StepRecorder(ControlNetResiduals(canny, edge_map(), resize_mode="Just Resize"))
    both = run(model, req, unit)
    assert sorted(unit.unit._maps) == [(SIZE, SIZE), (2 * SIZE, 2 * SIZE)]  # the map at each pass's size
    assert both[0].shape == (2 * SIZE, 2 * SIZE, 3)
    first_only = ControlNetResiduals(canny, edge_map(), resize_mode="Just Resize")
    only_first = run(model, req, OnlyWhen(first_only, lambda call: call.sample.shape[-1] == SIZE // 8))
    assert_moved(both, only_first, "the second pass's residuals")


def test_sdxl_unit_equals_diffusers_sdxl_controlnet_pipeline(tmp_path):
    model = load_sd_model(build_tiny_checkpoint(tmp_path / "sdxl.safetensors", arch="sdxl"), CPU32)
    write_controlnet(tmp_path / "ControlNet" / "xl_canny.safetensors", arch="sdxl")
    controlnet = ControlNetCache().get(ControlNetCatalog([tmp_path / "ControlNet"]).find("xl_canny"), CPU32)
    req = request(cfg_scale=5.0)
    ours = run(model, req, ControlNetResiduals(controlnet, edge_map(), weight=0.7))
    pipe = StableDiffusionXLControlNetPipeline(
        vae=model.vae,
        text_encoder=model.text_encoders[0],
        text_encoder_2=model.text_encoders[1],
        tokenizer=model.tokenizers[0],
        tokenizer_2=model.tokenizers[1],
        unet=model.unet,
        controlnet=controlnet,
        scheduler=euler_scheduler(model),
    )
    theirs = run_pipeline(pipe, model, req, edge_map(), 0.7)
    assert_close(ours, theirs, "SDXL unit")
    assert_moved(ours, run(model, req), "SDXL unit")
