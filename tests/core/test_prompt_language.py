"""The prompt language inside a generation: per-step conditioning of edited and alternating prompts, AND's
weighted predictions in the Denoiser, and each distinct prompt encoded once per job."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sdui.core.conditioning import encode_text, prompt_encoder
from sdui.core.denoiser import Denoiser, ScheduledConditioning, TextConditioning, stack_rows
from sdui.core.hooks import ProcessingHooks
from sdui.core.processing import process
from sdui.core.schedules import training_sigmas
from sdui.models.loading import load_sd_model
from sdui.request import GenerationRequest
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.helpers import CPU32, process_with_latents, settings

OPTIONS = settings(samples_save=False)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_sd_model(build_tiny_checkpoint(tmp_path_factory.mktemp("prompts") / "m.safetensors"), CPU32)


def request(**fields) -> GenerationRequest:
    return GenerationRequest(
        **{"prompt": "a cat", "seed": 4, "steps": 6, "width": 64, "height": 64, "sampler_name": "Euler", **fields}
    )


def embeds(model, *texts: str) -> torch.Tensor:
    return prompt_encoder(model, OPTIONS).encode(list(texts)).embeds


def conditioning(model, prompt: str, steps: int, hires_steps: int | None = None) -> TextConditioning:
    encoder = prompt_encoder(model, OPTIONS)
    return encode_text(model, encoder, [prompt], [""], request(), OPTIONS, CPU32, steps=steps, hires_steps=hires_steps)


# --- per-step conditioning ------------------------------------------------------------------------------------


def test_edited_prompt_follows_a_hand_built_schedule(model):
    text = conditioning(model, "a [cat:dog:3]", 6)
    assert isinstance(text.cond, ScheduledConditioning)
    cat, dog = embeds(model, "a cat", "a dog")
    for step in range(6):  # model calls from 0; A1111 uses "cat" while step <= 3
        torch.testing.assert_close(text.cond.at(step)[0], cat if step <= 3 else dog, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(text.cond.at(99)[0], cat, rtol=1e-5, atol=1e-5)  # past the end: the first again


def test_alternation_changes_every_step(model):
    text = conditioning(model, "a [cat|dog|bird]", 5)
    rows = embeds(model, "a cat", "a dog", "a bird")
    # the schedule counts steps from 1 and the model calls from 0, so the first text serves calls 0 and 1 (A1111)
    for step, want in enumerate([0, 0, 1, 2, 0]):
        torch.testing.assert_close(text.cond.at(step)[0], rows[want], rtol=1e-5, atol=1e-5)


def test_a_plain_prompt_is_one_tensor(model):
    text = conditioning(model, "a (cat:1.2) on a [mat]", 6)
    assert isinstance(text.cond, torch.Tensor) and text.weights is None
    torch.testing.assert_close(text.cond, embeds(model, "a (cat:1.2) on a [mat]"))


def test_the_hires_pass_counts_steps_on_from_the_first(model):
    text = conditioning(model, "a [cat:dog:1.5]", 10, hires_steps=4)  # switch half-way through the hires pass
    cat, dog = embeds(model, "a cat", "a dog")
    torch.testing.assert_close(text.cond.at(2)[0], cat, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(text.cond.at(3)[0], dog, rtol=1e-5, atol=1e-5)


class Guided(ProcessingHooks):
    """Every guided prediction of a run, in model-call order."""

    def __init__(self):
        self.steps: list[torch.Tensor] = []

    def after_cfg(self, params):
        self.steps.append(params.x.clone())


@pytest.mark.parametrize("sampler,calls_before_switch", [("Euler", 4), ("Heun", 7)])
def test_an_edited_prompt_changes_the_image_only_after_the_switch(model, sampler, calls_before_switch):
    """[cat:dog:0.5] over 6 steps: Euler switches after model call 3 (calls 0-3 see "cat"); Heun makes two
    calls per step and A1111 counts them, so 12 calls and the switch after call 6."""
    edited, plain = Guided(), Guided()
    process(
        request(prompt="a [cat:dog:0.5]", sampler_name=sampler), model, policy=CPU32, settings=OPTIONS, hooks=[edited]
    )
    process(request(sampler_name=sampler), model, policy=CPU32, settings=OPTIONS, hooks=[plain])
    assert len(edited.steps) == len(plain.steps)
    for i in range(calls_before_switch):
        torch.testing.assert_close(edited.steps[i], plain.steps[i], rtol=1e-5, atol=1e-5)
    assert (edited.steps[calls_before_switch] - plain.steps[calls_before_switch]).abs().max() > 1e-3


def test_the_infotext_keeps_the_prompt_as_written(model):
    result = process(request(prompt="a [cat:dog:0.5] AND a [red|blue] hat :0.7"), model, policy=CPU32, settings=OPTIONS)
    assert result.infotexts[0].startswith("a [cat:dog:0.5] AND a [red|blue] hat :0.7\n")


# --- AND -----------------------------------------------------------------------------------------------------


def test_and_adds_each_parts_guidance_with_its_weight(model):
    """A1111's combine_denoised: uncond + sum over parts of weight * scale * (part - uncond)."""
    text = conditioning(model, "a cat AND a dog :0.5", 4)
    assert text.weights == [[(0, 1.0), (1, 0.5)]] and text.cond.shape[0] == 2
    cat, dog = embeds(model, "a cat", "a dog")
    torch.testing.assert_close(text.cond, torch.stack([cat, dog]), rtol=1e-5, atol=1e-5)

    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2)) * 4
    sigma = torch.tensor([3.0])
    train = training_sigmas(model.scheduler_config)

    def alone(cond):  # the denoised prediction of one conditioning, unguided
        d = Denoiser(
            model.unet, TextConditioning(cond, cond), cfg_scale=1.0, prediction_type="epsilon", train_sigmas=train
        )
        return d(x, sigma, step=0, total=4)

    d_cat, d_dog, d_unc = alone(text.cond[:1]), alone(text.cond[1:]), alone(text.uncond)
    expected = d_unc + (d_cat - d_unc) * 7.0 + (d_dog - d_unc) * (0.5 * 7.0)
    guided = Denoiser(model.unet, text, cfg_scale=7.0, prediction_type="epsilon", train_sigmas=train)
    got = guided(x, sigma, step=0, total=4)
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()


def test_and_in_a_batch_of_prompts_with_different_part_counts(model):
    result, latents = process_with_latents(
        request(prompt="a cat AND a hat", batch_size=2, cfg_scale=1.0), model, policy=CPU32, settings=OPTIONS
    )
    assert latents.shape[0] == 2 and torch.isfinite(latents).all()
    # cfg 1 still needs the uncond with AND: uncond + (cat - uncond) + (hat - uncond)
    _, single = process_with_latents(
        request(prompt="a cat", batch_size=2, cfg_scale=1.0), model, policy=CPU32, settings=OPTIONS
    )
    assert (latents - single).abs().max() > 1e-2


def test_rows_of_different_lengths_are_padded_with_their_last_vector():
    short, long = torch.randn(77, 8), torch.randn(154, 8)
    stacked = stack_rows([short, long])
    assert stacked.shape == (2, 154, 8)
    assert torch.equal(stacked[0, :77], short) and torch.equal(stacked[0, 77:], short[-1:].expand(77, 8))


# --- caching -------------------------------------------------------------------------------------------------


def test_a_batch_count_encodes_each_prompt_once(model):
    calls = []
    handle = model.text_encoders[0].register_forward_hook(lambda *_: calls.append(1))
    try:
        result = process(
            request(prompt="a cat", negative_prompt="blur", n_iter=4), model, policy=CPU32, settings=OPTIONS
        )
    finally:
        handle.remove()
    assert len(result.images) == 5  # 4 images and their grid
    assert len(calls) == 2  # "a cat" once, "blur" once, for all four batches
    pixels = [np.asarray(im) for im in result.images[1:]]
    assert not np.array_equal(pixels[0], pixels[1])  # the seeds still move on
