"""Hook points of the core: called in A1111's order with A1111's arguments, and what hooks change is what the core
uses (prompts, seeds, images, saved metadata, the denoiser's inputs and outputs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sdui.core.hooks import ProcessingHooks
from sdui.core.processing import process
from sdui.imaging.pnginfo import read_info_from_image
from sdui.models.loading import load_sd_model
from sdui.request import GenerationRequest
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.helpers import CPU32, process_with_latents


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_sd_model(build_tiny_checkpoint(tmp_path_factory.mktemp("hooks") / "m.safetensors"), CPU32)


def request(**fields) -> GenerationRequest:
    base = dict(
        prompt="a cat",
        negative_prompt="blurry",
        seed=5,
        steps=2,
        width=64,
        height=64,
        sampler_name="Euler",
        cfg_scale=6.0,
    )
    return GenerationRequest(**{**base, **fields})


class Recorder(ProcessingHooks):
    """Records every call with what it was given."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []

    def before_process(self, run):
        self.calls.append(("before_process", {"seeds": list(run.all_seeds), "prompt": run.request.prompt}))

    def process(self, run):
        self.calls.append(("process", {"seeds": list(run.all_seeds), "prompts": list(run.all_prompts)}))

    def before_process_batch(self, run, batch):
        self.calls.append(("before_process_batch", {"index": batch.index, "seeds": list(batch.seeds)}))

    def process_batch(self, run, batch):
        self.calls.append(("process_batch", {"index": batch.index, "prompts": list(batch.prompts)}))

    def on_denoiser(self, p):
        self.calls.append(
            (
                "on_denoiser",
                {
                    "x": tuple(p.x.shape),
                    "sigma": tuple(p.sigma.shape),
                    "step": p.sampling_step,
                    "total": p.total_sampling_steps,
                    "cond": tuple(p.text_cond.shape),
                    "uncond": tuple(p.text_uncond.shape),
                    "image_cond": p.image_cond,
                    "sigma_value": float(p.sigma[0]),
                },
            )
        )

    def on_denoised(self, p):
        self.calls.append(("on_denoised", {"x": tuple(p.x.shape), "step": p.sampling_step}))

    def after_cfg(self, p):
        self.calls.append(("after_cfg", {"x": tuple(p.x.shape), "step": p.sampling_step}))

    def post_sample(self, run, batch, args):
        self.calls.append(("post_sample", {"samples": tuple(args.samples.shape)}))

    def postprocess_batch(self, run, batch, images):
        self.calls.append(
            (
                "postprocess_batch",
                {"images": tuple(images.shape), "min": float(images.min()), "max": float(images.max())},
            )
        )

    def postprocess_image(self, run, args):
        self.calls.append(("postprocess_image", {"size": args.image.size, "index": args.index}))

    def before_image_saved(self, params):
        self.calls.append(
            ("before_image_saved", {"name": params.filename.name, "parameters": params.pnginfo.get("parameters")})
        )

    def image_saved(self, params):
        self.calls.append(("image_saved", {"path": params.filename, "exists": params.filename.is_file()}))

    def postprocess(self, run, processed):
        self.calls.append(("postprocess", {"images": len(processed.images)}))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def test_every_hook_point_is_called_in_a1111_order_with_its_arguments(model, tmp_path):
    hook = Recorder()
    result = process(request(n_iter=2), model, policy=CPU32, hooks=[hook], data_dir=tmp_path)
    per_step = ["on_denoiser", "on_denoised", "after_cfg"]
    per_batch = [
        "before_process_batch",
        "process_batch",
        *per_step * 2,
        "post_sample",
        "postprocess_batch",
        "postprocess_image",
        "before_image_saved",
        "image_saved",
    ]
    assert hook.names() == [
        "before_process",
        "process",
        *per_batch * 2,
        "before_image_saved",
        "image_saved",
        "postprocess",
    ]  # the grid is saved last

    calls = hook.calls
    assert calls[0][1] == {"seeds": [], "prompt": "a cat"}  # nothing decided yet
    assert calls[1][1] == {"seeds": [5, 6], "prompts": ["a cat", "a cat"]}
    denoiser = [args for name, args in calls if name == "on_denoiser"]
    assert [(a["step"], a["total"]) for a in denoiser] == [(0, 2), (1, 2)] * 2
    first = denoiser[0]
    assert first["x"] == (1, 4, 8, 8) and first["sigma"] == (1,) and first["image_cond"] is None
    assert first["cond"][:2] == (1, 77) and first["uncond"][:2] == (1, 77)
    assert 10 < first["sigma_value"] < 20 and denoiser[1]["sigma_value"] < first["sigma_value"]  # noise levels
    assert [a["x"] for n, a in calls if n == "on_denoised"][0] == (2, 4, 8, 8)  # uncond and cond, before CFG
    assert [a["x"] for n, a in calls if n == "after_cfg"][0] == (1, 4, 8, 8)
    batch_images = [a for n, a in calls if n == "postprocess_batch"][0]
    assert batch_images["images"] == (1, 3, 64, 64) and 0 <= batch_images["min"] <= batch_images["max"] <= 1
    before = [a for n, a in calls if n == "before_image_saved"]
    saved = [a for n, a in calls if n == "image_saved"]
    assert [b["name"] for b in before] == [s["path"].name for s in saved]  # the name it was going to get
    assert all(s["exists"] for s in saved) and saved[-1]["path"].name.startswith("grid-")
    assert before[0]["parameters"] == result.infotexts[1]
    assert calls[-1] == ("postprocess", {"images": 3})


def test_hooks_rewrite_the_per_image_prompts_and_seeds(model):
    class Rewrite(ProcessingHooks):
        def process(self, run):
            run.all_prompts = ["a dog", "a house"]
            run.all_seeds = [42, 77]
            run.extra_generation_params["Rewritten by"] = "test"

    result = process(request(n_iter=2), model, policy=CPU32, hooks=[Rewrite()])
    assert result.all_seeds == [42, 77] and result.all_prompts == ["a dog", "a house"]
    assert result.infotexts[1].startswith("a dog\n") and "Seed: 42," in result.infotexts[1]
    assert result.infotexts[2].startswith("a house\n") and "Seed: 77," in result.infotexts[2]
    assert "Rewritten by: test" in result.infotexts[1]
    alone = process(request(prompt="a house", seed=77), model, policy=CPU32)
    assert np.array_equal(np.asarray(result.images[2]), np.asarray(alone.images[0]))


def test_before_process_may_change_the_request(model):
    class Steps(ProcessingHooks):
        def before_process(self, run):
            run.request.steps = 3

    result = process(request(), model, policy=CPU32, hooks=[Steps()])
    assert "Steps: 3," in result.infotexts[0]


def test_postprocess_image_replaces_the_image_that_is_saved_and_returned(model, tmp_path):
    class Red(ProcessingHooks):
        def postprocess_image(self, run, args):
            args.image = Image.new("RGB", args.image.size, (255, 0, 0))

    result = process(request(), model, policy=CPU32, hooks=[Red()], data_dir=tmp_path)
    assert result.images[0].getpixel((10, 10)) == (255, 0, 0)
    with Image.open(result.saved_paths[0]) as saved:
        assert saved.getpixel((10, 10)) == (255, 0, 0)
        assert read_info_from_image(saved)[0] == result.infotexts[0]


def test_before_image_saved_edits_the_metadata_written(model, tmp_path):
    class Tag(ProcessingHooks):
        def before_image_saved(self, params):
            params.pnginfo["parameters"] += ", Tagged: yes"

    result = process(request(), model, policy=CPU32, hooks=[Tag()], data_dir=tmp_path)
    with Image.open(result.saved_paths[0]) as saved:
        assert read_info_from_image(saved)[0] == result.infotexts[0] + ", Tagged: yes"


def test_denoiser_hooks_change_what_the_sampler_gets(model):
    _, baseline = process_with_latents(request(), model)

    class NoGuidance(ProcessingHooks):  # on_denoiser: the negative prompt replaced by the prompt
        def on_denoiser(self, params):
            params.text_uncond = params.text_cond

    _, unguided = process_with_latents(request(), model, hooks=[NoGuidance()])
    _, cfg_one = process_with_latents(request(cfg_scale=1.0), model)
    assert (unguided - cfg_one).abs().max() <= 1e-4 * cfg_one.abs().max()  # CFG of equal halves = cond alone
    assert (unguided - baseline).abs().max() > 1e-2

    class Halve(ProcessingHooks):  # after_cfg: the guided prediction replaced
        def after_cfg(self, params):
            params.x = params.x * 0.5

    _, halved = process_with_latents(request(), model, hooks=[Halve()])
    assert (halved - baseline).abs().max() > 1e-2
    assert torch.isfinite(halved).all()
