"""Textual inversion through the API: an embedding in the embeddings folder changes the image where its name
stands (prompt or negative prompt), "TI hashes" names it in the infotext, /embeddings lists what fits and what not."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch

from tests.helpers import decode_png, install_checkpoint, small


def generate(client, prompt, negative=""):
    answer = client.post("/sdapi/v1/txt2img", json=small(prompt=prompt, negative_prompt=negative, seed=3)).json()
    return np.asarray(decode_png(answer["images"][0])).astype(int), json.loads(answer["info"])


def test_embeddings_change_the_image_and_are_named_in_the_infotext(make_client, data_dir, tiny_sd1_checkpoint):
    install_checkpoint(tiny_sd1_checkpoint, data_dir, "tiny.safetensors")
    ctx, client = make_client(data_dir)
    assert client.get("/sdapi/v1/embeddings").json() == {"loaded": {}, "skipped": {}}  # no model yet
    plain, info = generate(client, "a cat")
    assert "TI hashes" not in info["infotexts"][0]

    width = ctx.store.current.text_encoders[0].config.hidden_size
    folder = data_dir / "embeddings"
    torch.save({"string_to_param": {"*": torch.randn(3, width)}}, folder / "fluffy.pt")
    torch.save({"string_to_param": {"*": torch.randn(1, width + 1)}}, folder / "wide.pt")

    styled, info = generate(client, "a fluffy cat")
    word, _ = generate(client, "a cat")  # without the word: the plain image again
    assert np.array_equal(word, plain) and np.abs(styled - plain).max() > 0
    digest = hashlib.sha256((folder / "fluffy.pt").read_bytes()).hexdigest()[:12]
    assert f'TI hashes: "fluffy: {digest}"' in info["infotexts"][0]

    negative, info = generate(client, "a cat", negative="fluffy")
    assert np.abs(negative - plain).max() > 0 and "TI hashes" in info["infotexts"][0]

    listed = client.get("/sdapi/v1/embeddings").json()
    assert listed["loaded"]["fluffy"] == {
        "step": None,
        "sd_checkpoint": None,
        "sd_checkpoint_name": None,
        "shape": width,
        "vectors": 3,
    }
    assert "made for another model" in listed["skipped"]["wide"]["reason"]
