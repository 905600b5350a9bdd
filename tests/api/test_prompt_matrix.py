"""A1111's "Prompt matrix" script through the API: every combination of the | parts in A1111's order, each image
the same pixels as a plain job with its prompt and seed, the labelled grid first and saved, bad arguments refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import decode_png, small

SCRIPT = "prompt matrix"


def run(client, *args, **body):
    response = client.post("/sdapi/v1/txt2img", json=small(script_name=SCRIPT, script_args=list(args), **body))
    return response, (json.loads(response.json()["info"]) if response.status_code == 200 else None)


def prompt_of(infotext: str) -> str:
    return infotext.split("\nNegative prompt:")[0]


def test_every_combination_in_order_with_a_labelled_grid(served):
    ctx, client = served
    response, info = run(
        client, False, False, "positive", "comma", 0, prompt="a cat | in a hat | on a mat", seed=5, save_images=True
    )
    assert response.status_code == 200, response.text
    images = [decode_png(b) for b in response.json()["images"]]
    assert len(images) == 5 and info["index_of_first_image"] == 1
    texts = info["infotexts"]
    assert [prompt_of(t) for t in texts[1:]] == [
        "a cat ",
        "a cat , in a hat",
        "a cat , on a mat",
        "a cat , in a hat, on a mat",
    ]
    assert info["all_seeds"] == [5, 5, 5, 5]
    grid = images[0]
    assert grid.width > 2 * 64 and grid.height > 2 * 64  # 2 x 2 cells and the labels
    assert texts[0] == texts[1]
    # each cell is the plain job with that prompt and seed
    plain = client.post("/sdapi/v1/txt2img", json=small(prompt="a cat , on a mat", seed=5)).json()
    assert np.array_equal(np.asarray(decode_png(plain["images"][0])), np.asarray(images[3]))
    saved = sorted((ctx.paths.data_dir / "outputs" / "txt2img-grids").rglob("prompt_matrix-*.png"))
    assert len(saved) == 1


def test_batches_different_seeds_at_the_start_and_the_negative_prompt(served):
    _, client = served
    _, info = run(client, True, True, "positive", "space", 0, prompt="sky|red|blue", seed=40, batch_size=3)
    assert [prompt_of(t) for t in info["infotexts"][1:]] == ["sky", "red sky", "blue sky", "red blue sky"]
    assert info["all_seeds"] == [40, 41, 42, 43]  # 2 batches of 3: the second is short

    _, info = run(client, False, False, "negative", "comma", 4, prompt="a house", negative_prompt="fog|rain", seed=9)
    negatives = [t.split("Negative prompt: ")[1].split("\n")[0] for t in info["infotexts"][1:]]
    assert negatives == ["fog", "fog, rain"]


@pytest.mark.parametrize(
    "args,message",
    [
        ([False, False, "sideways", "comma", 0], "'positive' or 'negative'"),
        ([False, False, "positive", "tab", 0], "'comma' or 'space'"),
        ([False, False, "positive", "comma", 9999], "between 0 and 500"),
    ],
)
def test_bad_arguments_are_refused(served, args, message):
    _, client = served
    response, _ = run(client, *args, prompt="a | b")
    assert response.status_code == 422 and message in response.text


def test_too_many_parts_are_refused_before_any_work(served):
    _, client = served
    response, _ = run(client, False, False, "positive", "comma", 0, prompt="x" + "|y" * 12)
    assert response.status_code == 422 and "4096 images" in response.text
