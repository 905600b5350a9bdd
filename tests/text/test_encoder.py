"""PromptEncoder on tiny real-format text encoders: equal to diffusers for plain prompts, A1111 rules beyond that."""

from __future__ import annotations

import pytest
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

from sdui.errors import InvalidRequestError
from sdui.models.sd_model import SDModel
from sdui.text.encoder import (
    COMMA_ID,
    Conditioning,
    PromptChunk,
    PromptEncoder,
    apply_emphasis,
    chunk_tokens,
    pad_to_chunks,
)
from sdui.text.tokenizer import load_clip_tokenizer, tokenize
from tests.fixtures.text_encoder_ldm import (
    CONTEXT_DIM,
    POOLED_DIM,
    text_only_model,
)

CPU = torch.device("cpu")
PLAIN = "a photo of an astronaut riding a horse on mars"
# 100 different one-token words, no commas
WORDS = (
    "cat dog red blue green house tree car road sky sun moon star water fire stone wood metal glass paper "
    "book door window light dark night day city river lake sea boat ship bird fish horse cow sheep goat "
    "bear lion tiger wolf fox deer mouse rat snake frog king queen man woman boy girl baby old young big "
    "small tall short fast slow hot cold wet dry soft hard happy sad angry calm loud quiet bright clean "
    "dirty rich poor new good bad black white brown pink gold silver purple orange yellow gray map cup hat bed egg "
    "leg"
).split()


@pytest.fixture(scope="module")
def models():
    return {arch: text_only_model(arch) for arch in ("sd1", "sd2", "sdxl", "sdxl-refiner")}


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-6) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=atol, rtol=0)


def test_word_list_is_one_token_per_word():
    assert len(WORDS) == 100 and len(set(WORDS)) == 100
    assert len(tokenize(load_clip_tokenizer("eot"), " ".join(WORDS))) == 100


# ---- (a) plain prompts equal diffusers' encode_prompt ----


@pytest.mark.parametrize("arch", ["sd1", "sd2"])
def test_sd_equals_diffusers(models, arch):
    model = models[arch]
    pipe = StableDiffusionPipeline(
        vae=None,
        text_encoder=model.text_encoders[0],
        tokenizer=model.tokenizers[0],
        unet=None,
        scheduler=None,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    ref_pos, ref_neg = pipe.encode_prompt([PLAIN, "Two CATS"], CPU, 1, True, negative_prompt=["", "blurry"])
    enc = PromptEncoder(model)
    pos = enc.encode([PLAIN, "Two CATS"])
    neg = enc.encode(["", "blurry"], is_negative=True)
    assert pos.pooled is None
    assert pos.embeds.shape == (2, 77, CONTEXT_DIM[arch])
    assert close(pos.embeds, ref_pos) and close(neg.embeds, ref_neg)


def test_sdxl_equals_diffusers(models):
    model = models["sdxl"]
    te, tok = model.text_encoders, model.tokenizers
    pipe = StableDiffusionXLPipeline(
        vae=None,
        text_encoder=te[0],
        text_encoder_2=te[1],
        tokenizer=tok[0],
        tokenizer_2=tok[1],
        unet=None,
        scheduler=None,
    )
    enc = PromptEncoder(model)
    # empty negative -> zeros (diffusers: negative_prompt=None with force_zeros_for_empty_prompt)
    pos, neg, pooled, neg_pooled = pipe.encode_prompt(PLAIN, device=CPU, do_classifier_free_guidance=True)
    ours, ours_neg = enc.encode([PLAIN]), enc.encode([""], is_negative=True)
    assert ours.embeds.shape == (1, 77, CONTEXT_DIM["sdxl"]) and ours.pooled.shape == (1, POOLED_DIM["sdxl"])
    assert close(ours.embeds, pos) and close(ours.pooled, pooled)
    assert torch.count_nonzero(ours_neg.embeds) == 0 and torch.count_nonzero(ours_neg.pooled) == 0
    assert ours_neg.embeds.shape == neg.shape and ours_neg.pooled.shape == neg_pooled.shape
    # a real negative prompt is encoded like a positive one
    _, neg, _, neg_pooled = pipe.encode_prompt(
        PLAIN, device=CPU, do_classifier_free_guidance=True, negative_prompt="blurry, ugly"
    )
    ours_neg = enc.encode(["blurry, ugly"], is_negative=True)
    assert close(ours_neg.embeds, neg) and close(ours_neg.pooled, neg_pooled)


def test_refiner_equals_diffusers(models):
    model = models["sdxl-refiner"]
    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=None,
        text_encoder=None,
        text_encoder_2=model.text_encoders[0],
        tokenizer=None,
        tokenizer_2=model.tokenizers[0],
        unet=None,
        scheduler=None,
        requires_aesthetics_score=True,
    )
    pos, neg, pooled, neg_pooled = pipe.encode_prompt(
        PLAIN, device=CPU, do_classifier_free_guidance=True, negative_prompt="blurry"
    )
    enc = PromptEncoder(model)
    ours, ours_neg = enc.encode([PLAIN]), enc.encode(["blurry"], is_negative=True)
    assert close(ours.embeds, pos) and close(ours.pooled, pooled)
    assert close(ours_neg.embeds, neg) and close(ours_neg.pooled, neg_pooled)
    zeros = enc.encode(["", ""], is_negative=True)
    assert zeros.embeds.shape == (2, 77, CONTEXT_DIM["sdxl-refiner"]) and not zeros.embeds.any()
    assert not zeros.pooled.any()
    padded = enc.encode([""], is_negative=True, min_chunks=2)
    assert padded.embeds.shape == (1, 154, 128) and not padded.embeds[:, :77].any()
    assert torch.equal(padded.embeds[:, 77:], enc.encode([""]).embeds)


def test_empty_positive_prompt_is_encoded_not_zeroed(models):
    cond = PromptEncoder(models["sdxl"]).encode([""])
    assert cond.embeds.abs().sum() > 0 and cond.pooled.abs().sum() > 0


# ---- (b) long prompts: 75-token chunks ----


@pytest.mark.parametrize("arch", ["sd1", "sd2", "sdxl"])
def test_long_prompt_makes_two_chunks(models, arch):
    enc = PromptEncoder(models[arch])
    full = enc.encode([" ".join(WORDS)])
    first = enc.encode([" ".join(WORDS[:75])])
    rest = enc.encode([" ".join(WORDS[75:])])
    assert full.embeds.shape == (1, 154, CONTEXT_DIM[arch]) and full.chunks == 2
    assert close(full.embeds[:, :77], first.embeds) and close(full.embeds[:, 77:], rest.embeds)
    if arch == "sdxl":  # pooled comes from the first chunk
        assert close(full.pooled, first.pooled) and not close(full.pooled, rest.pooled)


def test_token_count_and_chunks(models):
    enc = PromptEncoder(models["sd1"])
    chunks, count = enc.tokenize_prompt(" ".join(WORDS))
    assert count == 100 and [len(c.tokens) for c in chunks] == [75, 25]
    assert enc.tokenize_prompt("") == ([PromptChunk()], 0)
    chunks, count = enc.tokenize_prompt("a (cat:1.5) [dog]")
    assert count == 3 and chunks[0].weights == [1.0, 1.5, 1 / 1.1]


def test_batch_is_padded_with_empty_chunks(models):
    enc = PromptEncoder(models["sd1"])
    batch = enc.encode(["a cat", " ".join(WORDS)])
    empty = enc.encode([""])
    assert batch.embeds.shape == (2, 154, 64)
    assert close(batch.embeds[0, :77], enc.encode(["a cat"]).embeds[0])
    assert close(batch.embeds[0, 77:], empty.embeds[0])
    assert enc.encode(["a cat"], min_chunks=3).embeds.shape == (1, 231, 64)


def test_comma_word_wrap():
    ids = list(range(1000, 1070)) + [COMMA_ID] + list(range(2000, 2010))  # comma at index 70
    chunks, count = chunk_tokens([(ids, 1.0)])
    assert [len(c.tokens) for c in chunks] == [71, 10]  # text after the comma moved
    assert chunks[0].tokens[-1] == COMMA_ID and chunks[1].tokens == list(range(2000, 2010))
    assert count == 85

    far = list(range(1000, 1050)) + [COMMA_ID] + list(range(2000, 2030))  # comma 25 tokens from the end
    chunks, _ = chunk_tokens([(far, 1.0)])
    assert [len(c.tokens) for c in chunks] == [75, 6]
    chunks, _ = chunk_tokens([(ids, 1.0)], backtrack=0)  # option off
    assert [len(c.tokens) for c in chunks] == [75, 6]

    # a comma arriving at a full chunk starts the next one and is not a wrap point there (A1111 quirk)
    at_edge = list(range(1000, 1075)) + [COMMA_ID] + list(range(2000, 2080))
    chunks, _ = chunk_tokens([(at_edge, 1.0)])
    assert [len(c.tokens) for c in chunks] == [75, 75, 6]


def test_chunk_weights_follow_tokens():
    chunks, _ = chunk_tokens([([1] * 70, 1.0), ([COMMA_ID], 1.0), ([2] * 10, 1.5)])
    assert chunks[1].tokens == [2] * 10 and chunks[1].weights == [1.5] * 10
    assert chunks[0].weights == [1.0] * 71


# ---- (c) emphasis ----


def test_emphasis_weights_exactly_the_weighted_tokens(models):
    enc = PromptEncoder(models["sd1"])
    plain = enc.encode(["a cat on a mat"]).embeds
    weights = torch.ones(1, 77)
    weights[0, 2] = 1.5  # BOS, "a", "cat"
    no_norm = enc.encode(["a (cat:1.5) on a mat"], emphasis="No norm").embeds
    assert close(no_norm, plain * weights[..., None])
    changed = (no_norm != plain).any(dim=-1)[0]
    assert changed.nonzero().flatten().tolist() == [2]

    original = enc.encode(["a (cat:1.5) on a mat"], emphasis="Original").embeds
    rescaled = plain * weights[..., None]
    rescaled = rescaled * (plain.mean() / rescaled.mean())
    assert close(original, rescaled)
    assert torch.allclose(original.mean(), plain.mean(), atol=1e-6)
    assert not close(original, no_norm)

    assert torch.equal(enc.encode(["a (cat:1.5) on a mat"], emphasis="Ignore").embeds, plain)
    literal = enc.encode(["a (cat:1.5) on a mat"], emphasis="None").embeds
    assert close(literal, enc.encode(["a \\(cat:1.5\\) on a mat"], emphasis="Ignore").embeds)
    assert not close(literal, plain)


def test_original_emphasis_restores_the_mean_of_the_whole_batch_chunk(models):
    # A1111 rescales by the mean over all prompts encoded together, not per prompt
    enc = PromptEncoder(models["sd1"])
    plain = enc.encode(["a cat", "a dog"], emphasis="Ignore").embeds
    weights = torch.ones(2, 77, 1)
    weights[0, 2] = 1.5
    expected = plain * weights
    expected = expected * (plain.mean() / expected.mean())
    assert close(enc.encode(["a (cat:1.5)", "a dog"]).embeds, expected)
    assert not close(enc.encode(["a dog"]).embeds[0], expected[1])  # the unweighted prompt was rescaled too


def test_sdxl_emphasis_is_applied_per_encoder_and_not_to_pooled(models):
    enc = PromptEncoder(models["sdxl"])
    plain, weighted = enc.encode(["a cat"]), enc.encode(["a (cat:1.3)"], emphasis="No norm")
    assert close(weighted.pooled, plain.pooled)
    assert close(weighted.embeds[0, 2], plain.embeds[0, 2] * 1.3) and close(weighted.embeds[0, 3:], plain.embeds[0, 3:])


def test_apply_emphasis_modes():
    z = torch.arange(1.0, 13.0).reshape(1, 3, 4)
    w = torch.tensor([[1.0, 2.0, 1.0]])
    assert torch.equal(apply_emphasis(z, w, "Ignore"), z)
    assert torch.equal(apply_emphasis(z, w, "No norm")[0, 1], z[0, 1] * 2)
    out = apply_emphasis(z, w, "Original")
    assert torch.allclose(out.mean(), z.mean()) and not torch.equal(out, z)
    with pytest.raises(InvalidRequestError, match="Unknown emphasis mode"):
        PromptEncoder(text_only_model("sd1")).encode(["x"], emphasis="Strong")


# ---- (d) BREAK ----


def test_break_starts_a_new_chunk(models):
    enc = PromptEncoder(models["sd1"])
    both = enc.encode(["a red cat BREAK a blue dog"]).embeds
    assert both.shape == (1, 154, 64)
    assert close(both[:, :77], enc.encode(["a red cat"]).embeds)
    assert close(both[:, 77:], enc.encode(["a blue dog"]).embeds)
    assert enc.encode(["a red cat BREAK"]).embeds.shape[1] == 77  # nothing after: no extra chunk
    assert enc.encode(["a BREAK BREAK b"]).embeds.shape[1] == 231  # an empty chunk in between
    assert enc.encode(["a break b"]).embeds.shape[1] == 77  # only the upper-case word
    assert enc.encode(["a BREAK b"], emphasis="None").embeds.shape[1] == 77  # "None": text taken literally


# ---- (e) clip skip ----


def test_clip_skip_sd1(models):
    model = models["sd1"]
    enc, te = PromptEncoder(model), model.text_encoders[0]
    one, two = enc.encode([PLAIN], clip_skip=1).embeds, enc.encode([PLAIN], clip_skip=2).embeds
    assert not close(one, two, atol=1e-3)
    ids = model.tokenizers[0](PLAIN, padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        out = te(ids, output_hidden_states=True)
        assert close(one, out.last_hidden_state)
        # what diffusers' encode_prompt(clip_skip=1) computes (it counts skipped layers: 1 = penultimate)
        assert close(two, te.final_layer_norm(out.hidden_states[-2]))
    assert close(enc.encode([PLAIN], clip_skip=0).embeds, one)
    with pytest.raises(InvalidRequestError, match="Clip skip 3"):
        enc.encode([PLAIN], clip_skip=3)  # the tiny encoder has 2 layers


def test_clip_skip_ignored_where_a1111_ignores_it(models):
    for arch in ("sd2", "sdxl", "sdxl-refiner"):
        enc = PromptEncoder(models[arch])
        assert torch.equal(enc.encode([PLAIN], clip_skip=2).embeds, enc.encode([PLAIN]).embeds), arch


def test_sdxl_clip_l_skip_option(models):
    model = models["sdxl"]
    enc, clip_l = PromptEncoder(model), model.text_encoders[0]
    ids = model.tokenizers[0](PLAIN, padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        hidden = clip_l(ids, output_hidden_states=True).hidden_states
    cond = enc.encode([PLAIN], clip_skip=1, sdxl_clip_l_skip=True)
    assert close(cond.embeds[..., :64], hidden[-1])  # no final norm on SDXL's CLIP-L
    default = enc.encode([PLAIN])
    assert close(default.embeds[..., :64], hidden[-2]) and close(cond.embeds[..., 64:], default.embeds[..., 64:])


# ---- helpers ----


def test_pad_to_chunks(models):
    enc = PromptEncoder(models["sd1"])
    cond, empty = enc.encode(["a", "b"]), enc.encode([""])
    padded = pad_to_chunks(cond, empty, 3)
    assert padded.embeds.shape == (2, 231, 64) and padded.chunks == 3
    assert torch.equal(padded.embeds[1, 154:], empty.embeds[0]) and torch.equal(padded.embeds[:, :77], cond.embeds)
    assert pad_to_chunks(cond, empty, 1) is cond


def test_conditioning_dtype_follows_encoder():
    model = text_only_model("sd1")
    model.text_encoders[0].to(torch.float64)
    cond = PromptEncoder(model).encode(["a (cat:1.2)"])
    assert cond.embeds.dtype == torch.float64
    assert isinstance(cond, Conditioning)


def test_wrong_encoder_count_is_refused(models):
    broken = SDModel(
        arch="sdxl",
        variant="base",
        prediction_type="epsilon",
        unet=None,
        vae=None,
        text_encoders=models["sdxl"].text_encoders[:1],
        tokenizers=models["sdxl"].tokenizers[:1],
    )
    with pytest.raises(ValueError, match="needs 2 text encoders"):
        PromptEncoder(broken)
