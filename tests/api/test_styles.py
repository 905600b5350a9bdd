"""The API's `styles` field: the named styles of styles.csv applied to the prompts as A1111 applies them (the same
image as sending the styled prompts), the hires prompt styled too, an unknown name told."""

from __future__ import annotations

import json

import numpy as np

from sdui.text.styles import Style, apply_styles, merge_prompts
from tests.helpers import decode_png, install_checkpoint, small


def test_merge_rules():
    assert merge_prompts("{prompt}, film grain", "a cat") == "a cat, film grain"
    assert merge_prompts("masterpiece", " a cat ") == "a cat, masterpiece"
    assert merge_prompts("", "a cat ") == "a cat"
    styles = [Style("A", "{prompt} in oil", "ugly"), Style("B", "by night")]
    assert apply_styles("a cat", "fog", ["A", "B", "C"], styles) == ("a cat in oil, by night", "fog, ugly", ["C"])


def test_styles_field_is_applied(make_client, data_dir, tiny_sd1_checkpoint):
    install_checkpoint(tiny_sd1_checkpoint, data_dir, "tiny.safetensors")
    (data_dir / "styles.csv").write_text('name,prompt,negative_prompt\nCinematic,"{prompt}, film grain",blurry\n')
    _, client = make_client(data_dir)
    styled = client.post("/sdapi/v1/txt2img", json=small(prompt="a cat", negative_prompt="fog", styles=["Cinematic"]))
    assert styled.status_code == 200, styled.text
    info = json.loads(styled.json()["info"])
    assert info["infotexts"][0].startswith("a cat, film grain\nNegative prompt: fog, blurry\n")
    by_hand = client.post("/sdapi/v1/txt2img", json=small(prompt="a cat, film grain", negative_prompt="fog, blurry"))
    assert np.array_equal(
        np.asarray(decode_png(styled.json()["images"][0])), np.asarray(decode_png(by_hand.json()["images"][0]))
    )
    unknown = client.post("/sdapi/v1/txt2img", json=small(styles=["Nope"])).json()
    assert "Styles not found: Nope" in json.loads(unknown["info"])["notes"]
