"""The prompt token counter: tokens as the encoder chunks them (75 per chunk), the longest text prompt editing
makes, extra network tags and emphasis syntax not counted; and the counters beside the prompts in the page."""

from __future__ import annotations

from sdui.text.token_count import token_count


def test_counts():
    assert token_count("") == (0, 75)
    assert token_count("a cat") == (2, 75)
    assert token_count("a (cat:1.3) <lora:style:0.8>") == (2, 75)
    assert token_count("a [dog:bird of paradise:5]") == (4, 75)  # the longer of "a dog" and "a bird of paradise"
    assert token_count(" ".join(["cat"] * 80)) == (80, 150)
    assert token_count("a BREAK cat") == (76, 150)  # BREAK fills the chunk
    assert token_count("a [unfinished") == (2, 75)  # half-typed: counted as text


def test_counters_in_the_page(ctx):
    from sdui.ui.app import create_ui
    from tests.helpers import components_by_id, handler

    demo = create_ui(ctx)
    blocks = components_by_id(demo)
    for tab in ("txt2img", "img2img", "inpaint", "outpaint", "depth2img"):
        assert f"{tab}_token_counter" in blocks and f"{tab}_negative_token_counter" in blocks
    count = handler(demo, "txt2img_prompt", "change")
    assert "3/75" in count.fn("a red cat")
