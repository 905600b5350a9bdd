"""Prompt encodings kept from job to job (the persistent_cond_cache setting): the text encoder runs (counted by a
global forward hook, which observes without sitting on the encoder) only for what changed since the last job, the
kept encodings give the very image a fresh encoding gives, and anything the encoding depends on makes it encode
again: a LoRA merged into the text encoder, an embedding added under a word of the prompt, an in-place change of a
weight, clip skip; a hook on the encoder bypasses the store, and moving the model drops it."""

from __future__ import annotations

import contextlib

import pytest
import torch
from safetensors.torch import save_file

from sdui.core.conditioning import ConditioningCache, encode_text, prompt_encoder
from sdui.core.extra_networks import ExtraNetworks
from sdui.core.kept_encodings import KeptEncodings, kept_encodings
from sdui.models.loading import load_sd_model
from sdui.request import GenerationRequest
from tests.fixtures.checkpoints import build_tiny_checkpoint
from tests.helpers import CPU32, process_with_latents, settings


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_sd_model(build_tiny_checkpoint(tmp_path_factory.mktemp("kept") / "m.safetensors"), CPU32)


@pytest.fixture
def fresh(model):
    """The model with nothing kept from an earlier test (LoRA, hypernetworks, kept encodings undone)."""
    model.undo_applied()
    yield model
    model.undo_applied()


@contextlib.contextmanager
def counted(model):
    """A list that grows by one at every forward call of one of the model's text encoders."""
    calls = []
    encoders = [id(e) for e in model.text_encoders]

    def hook(module, args, output):
        if id(module) in encoders:
            calls.append(1)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        yield calls
    finally:
        handle.remove()


def job(model, prompt="a cat", negative="", hooks=(), **options):
    """One txt2img job; (text encoder calls, final latents, infotext)."""
    request = GenerationRequest(
        prompt=prompt, negative_prompt=negative, seed=5, steps=1, width=64, height=64, sampler_name="Euler"
    )
    with counted(model) as calls:
        processed, latents = process_with_latents(request, model, settings=settings(**options), hooks=list(hooks))
    return len(calls), latents, processed.infotexts[0]


def test_the_negative_prompt_is_encoded_once_across_jobs(fresh):
    model = fresh
    calls, cat, _ = job(model, "a cat")
    assert calls == 2  # the prompt and the empty negative prompt
    calls, _, _ = job(model, "a dog")
    assert calls == 1  # the empty negative prompt was kept
    calls, again, _ = job(model, "a cat")
    assert calls == 0 and torch.equal(again, cat)  # kept encodings: the same image
    calls, _, _ = job(model, "a cat", CLIP_stop_at_last_layers=2)
    assert calls == 2  # another clip skip is another encoding
    calls, _, _ = job(model, "a cat", persistent_cond_cache=False)
    assert calls == 2  # the setting turns it off


def write_te_lora(model, path):
    """A LoRA that changes the first self-attention query projection of the text encoder only."""
    encoder = model.text_encoders[0]
    body = getattr(encoder, "text_model", encoder)
    weight = body.encoder.layers[0].self_attn.q_proj.weight
    g = torch.Generator().manual_seed(2)
    name = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    save_file(
        {
            f"{name}.lora_down.weight": torch.randn(2, weight.shape[1], generator=g),
            f"{name}.lora_up.weight": torch.randn(weight.shape[0], 2, generator=g),
            f"{name}.alpha": torch.tensor(2.0),
        },
        str(path),
    )


def test_a_lora_on_the_text_encoder_makes_it_encode_again(fresh, tmp_path):
    model = fresh
    folder = tmp_path / "Lora"
    folder.mkdir()
    write_te_lora(model, folder / "te.safetensors")
    networks = [ExtraNetworks(folder)]
    empty_before = prompt_encoder(model, settings()).encode([""]).embeds

    calls, plain, _ = job(model, hooks=networks)
    assert calls == 2
    calls, with_lora, _ = job(model, "<lora:te:1> a cat", hooks=networks)
    assert calls == 2  # the prompt, and the empty negative prompt again: the text encoder's weights changed
    empty_with_lora = prompt_encoder(model, settings()).encode([""]).embeds
    assert not torch.equal(empty_with_lora, empty_before)  # a kept one would have been wrong
    _, fresh_encoding, _ = job(model, "<lora:te:1> a cat", hooks=networks, persistent_cond_cache=False)
    assert torch.equal(with_lora, fresh_encoding)

    calls, back, _ = job(model, hooks=networks)  # without it: the weights as loaded, encoded again
    assert calls == 2 and torch.equal(back, plain)


def test_an_embedding_added_under_a_word_of_the_negative_prompt(fresh, tmp_path):
    model = fresh
    folder = tmp_path / "embeddings"
    folder.mkdir()
    networks = [ExtraNetworks(tmp_path / "Lora", embeddings_dir=folder)]
    calls, plain, text = job(model, negative="fluffy", hooks=networks)
    assert calls == 2 and "TI hashes" not in text

    width = model.text_encoders[0].config.hidden_size
    torch.save(
        {"string_to_param": {"*": torch.randn(2, width, generator=torch.Generator().manual_seed(1))}},
        folder / "fluffy.pt",
    )
    calls, styled, text = job(model, negative="fluffy", hooks=networks)
    assert calls == 1 and "TI hashes" in text  # the prompt was kept, the negative prompt is new
    assert not torch.equal(styled, plain)
    _, fresh_encoding, _ = job(model, negative="fluffy", hooks=networks, persistent_cond_cache=False)
    assert torch.equal(styled, fresh_encoding)

    calls, again, text = job(model, negative="fluffy", hooks=networks)
    assert calls == 0 and torch.equal(again, styled) and "TI hashes" in text  # kept, still named

    torch.save(
        {"string_to_param": {"*": torch.randn(2, width, generator=torch.Generator().manual_seed(2))}},
        folder / "fluffy.pt",
    )  # replaced under the same name
    calls, replaced, _ = job(model, negative="fluffy", hooks=networks)
    assert calls == 1 and not torch.equal(replaced, styled)


# ------------------------------------------------------------------------------ the store, without whole jobs
def encode(model, cache, negative=""):
    request = GenerationRequest(prompt="a cat", negative_prompt=negative)
    encoder = prompt_encoder(model, settings())
    return encode_text(model, encoder, ["a cat"], [negative], request, settings(), CPU32, steps=2, cache=cache)


def test_an_in_place_change_of_a_weight_makes_it_encode_again(fresh):
    model = fresh
    norm = getattr(model.text_encoders[0], "text_model", model.text_encoders[0]).final_layer_norm
    first = encode(model, ConditioningCache.for_job(model, settings())).uncond
    saved = norm.weight.detach().clone()
    try:
        with torch.no_grad():
            norm.weight.mul_(1.5)  # torch counts it: the Parameter's version goes up
        with counted(model) as calls:
            changed = encode(model, ConditioningCache.for_job(model, settings())).uncond
        assert len(calls) == 2 and not torch.equal(changed, first)
    finally:
        with torch.no_grad():
            norm.weight.copy_(saved)


def test_a_hook_on_the_text_encoder_bypasses_the_store(fresh):
    model = fresh
    encode(model, ConditioningCache.for_job(model, settings()))
    handle = model.text_encoders[0].register_forward_hook(lambda module, args, output: None)
    try:
        with counted(model) as calls:
            encode(model, ConditioningCache.for_job(model, settings()))
        assert len(calls) == 2
    finally:
        handle.remove()
    with counted(model) as calls:
        encode(model, ConditioningCache.for_job(model, settings()))
    assert len(calls) == 0


def test_undoing_the_models_changes_drops_the_store_and_it_is_bounded(fresh):
    model = fresh
    encode(model, ConditioningCache.for_job(model, settings()))
    assert len(kept_encodings(model)) == 2
    model.undo_applied()  # what the model store does before moving a model to another device
    assert "kept_encodings" not in model.applied

    small = KeptEncodings(limit=2)
    for negative in ("a", "b", "c"):
        encode(model, ConditioningCache(small), negative)
    assert len(small) == 2


def test_sdxl_keeps_both_encoders_encodings(tmp_path):
    sdxl = load_sd_model(build_tiny_checkpoint(tmp_path / "xl.safetensors", arch="sdxl"), CPU32)
    first = encode(sdxl, ConditioningCache.for_job(sdxl, settings()), "blurry")
    with counted(sdxl) as calls:
        again = encode(sdxl, ConditioningCache.for_job(sdxl, settings()), "blurry")
    assert len(calls) == 0  # penultimate layers: transformers' own hidden-state hooks do not stop the store
    assert torch.equal(again.uncond, first.uncond)
    assert torch.equal(again.added_uncond["text_embeds"], first.added_uncond["text_embeds"])
