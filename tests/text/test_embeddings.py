"""Textual inversion: every file format A1111 reads gives the same vectors; the encoder's output with the trigger
word equals running the text encoder with the vectors inserted by hand (as rows of a copy of the token embedding);
SDXL pairs go to their encoders; a misfit is skipped with why; chunk placement follows A1111."""

from __future__ import annotations

import base64
import copy
import json

import pytest
import torch
from PIL import Image, PngImagePlugin
from safetensors.torch import save_file

from sdui.models.embeddings import load_embeddings, read_vectors
from sdui.text.encoder import CHUNK_LENGTH, PromptEncoder, chunk_tokens
from sdui.text.tokenizer import tokenize
from tests.fixtures.text_encoder_ldm import text_only_model

SPARE = (1000, 1001, 1002)  # token ids the hand-made copy gives the vectors to


@pytest.fixture(scope="module")
def models():
    return {arch: text_only_model(arch) for arch in ("sd1", "sdxl")}


def width(encoder) -> int:
    return encoder.config.hidden_size


def by_hand(model, prompt_before: str, vectors: list[torch.Tensor], prompt_after: str) -> list[torch.Tensor]:
    """Each encoder's output for "<before> <embedding> <after>" with the vectors given to spare token ids of a
    copy of the encoder, following the encoder's layer choice of the plain PromptEncoder."""
    tokenizer = model.tokenizers[0]
    ids = tokenize(tokenizer, prompt_before) + list(SPARE[: vectors[0].shape[0]]) + tokenize(tokenizer, prompt_after)
    copies = []
    for encoder, v in zip(model.text_encoders, vectors, strict=True):
        twin = copy.deepcopy(encoder)
        layer = getattr(twin, "text_model", twin).embeddings.token_embedding
        with torch.no_grad():
            for i, row in enumerate(v):
                layer.weight[SPARE[i]] = row
        copies.append(twin)
    twin_model = copy.copy(model)
    twin_model.text_encoders = copies
    plain = PromptEncoder(twin_model)
    runs = [(ids, 1.0)]
    chunks, _ = chunk_tokens(runs)
    from sdui.text.encoder import _window

    outs = []
    for use in plain.uses:
        z, _ = plain._run(
            use, torch.tensor([_window(chunks[0].tokens, use.pad_id)]), [[]], clip_skip=1, sdxl_clip_l_skip=False
        )
        outs.append(z)
    return outs


def test_formats_give_the_same_vectors(tmp_path):
    v = torch.randn(2, 16)
    torch.save({"string_to_param": {"*": v}, "name": "x"}, tmp_path / "a1111.pt")
    save_file({"emb_params": v}, str(tmp_path / "st.safetensors"))
    torch.save({"<tok>": v}, tmp_path / "diffusers.bin")
    data = base64.b64encode(json.dumps({"string_to_param": {"*": v.tolist()}}).encode()).decode()
    info = PngImagePlugin.PngInfo()
    info.add_text("sd-ti-embedding", data)
    Image.new("RGB", (8, 8)).save(tmp_path / "card.png", pnginfo=info)
    for name in ("a1111.pt", "st.safetensors", "diffusers.bin", "card.png"):
        assert torch.allclose(read_vectors(tmp_path / name)[""], v), name
    pair = read_vectors(_sdxl_file(tmp_path, torch.randn(1, 4), torch.randn(1, 6)))
    assert set(pair) == {"clip_l", "clip_g"}


def _sdxl_file(folder, clip_l, clip_g, name="pair"):
    path = folder / f"{name}.safetensors"
    save_file({"clip_l": clip_l, "clip_g": clip_g}, str(path))
    return path


def test_the_trigger_word_is_replaced_by_the_vectors(models, tmp_path):
    model = models["sd1"]
    v = torch.randn(2, width(model.text_encoders[0])) * 0.5
    torch.save({"string_to_param": {"*": v}}, tmp_path / "mystyle.pt")
    db = load_embeddings(tmp_path, model)
    assert list(db.loaded) == ["mystyle"] and db.skipped == {}
    encoder = PromptEncoder(model, embeddings=db)
    got = encoder.encode(["a mystyle cat"]).embeds
    (expected,) = by_hand(model, "a", [v], "cat")
    assert torch.allclose(got, expected, atol=1e-5)
    assert list(encoder.used_embeddings) == ["mystyle"]
    # without the database the word is just text
    assert not torch.allclose(PromptEncoder(model).encode(["a mystyle cat"]).embeds, expected, atol=1e-3)


def test_sdxl_pairs_go_to_their_encoders_and_misfits_are_skipped(models, tmp_path):
    model = models["sdxl"]
    clip_l = torch.randn(1, width(model.text_encoders[0])) * 0.5
    clip_g = torch.randn(1, width(model.text_encoders[1])) * 0.5
    _sdxl_file(tmp_path, clip_l, clip_g, "pair")
    torch.save({"string_to_param": {"*": torch.randn(1, width(model.text_encoders[0]))}}, tmp_path / "sd1only.pt")
    db = load_embeddings(tmp_path, model)
    assert list(db.loaded) == ["pair"] and "made for another model" in db.skipped["sd1only"][1]
    got = PromptEncoder(model, embeddings=db).encode(["pair dog"]).embeds
    expected = torch.cat(by_hand(model, "", [clip_l, clip_g], "dog"), dim=-1)
    assert torch.allclose(got, expected, atol=1e-5)
    # the SDXL file does not fit an SD1 model
    assert "made for another model" in load_embeddings(tmp_path, models["sd1"]).skipped["pair"][1]


def test_an_embedding_that_does_not_fit_the_chunk_starts_the_next():
    class Fake:
        count = 4

    runs = [(list(range(1, 73)), 1.0), ([Fake()], 1.5)]
    chunks, counted = chunk_tokens(runs, backtrack=0)
    assert len(chunks) == 2 and len(chunks[0].tokens) == 72
    assert chunks[1].fixes[0][0] == 0 and chunks[1].tokens == [0] * 4 and chunks[1].weights == [1.5] * 4
    assert counted == CHUNK_LENGTH + 4
