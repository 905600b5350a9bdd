"""A1111's "Prompts from file or textbox" script through the API: one job per line, plain prompts and option
lines, the prompt position, seeds iterated or shared, and lines it cannot read refused before any work."""

from __future__ import annotations

import json

import pytest

from tests.helpers import output_files, small

SCRIPT = "prompts from file or textbox"


def run(client, text, iterate=False, same=False, position="start", **body):
    response = client.post(
        "/sdapi/v1/txt2img", json=small(script_name=SCRIPT, script_args=[iterate, same, position, text], **body)
    )
    return response, (json.loads(response.json()["info"]) if response.status_code == 200 else None)


def test_one_job_per_line_with_options(served):
    _, client = served
    text = 'a cat\n--prompt "a dog" --negative_prompt "fog" --steps 3 --seed 7 --width 64\n\n  a bird  \n'
    response, info = run(client, text, prompt="", seed=11)
    assert response.status_code == 200, response.text
    texts = info["infotexts"]
    assert len(texts) == 3 and len(response.json()["images"]) == 3
    assert texts[0].startswith("a cat\n") and "Seed: 11," in texts[0]
    # the line's negative prompt goes before the request's ("blurry"), as its prompt would
    assert texts[1].startswith("a dog\nNegative prompt: fog blurry\nSteps: 3,") and "Seed: 7," in texts[1]
    assert texts[2].startswith("a bird\n")


@pytest.mark.parametrize("position,expected", [("start", "a cat painting"), ("end", "painting a cat")])
def test_the_line_goes_before_or_after_the_prompt(served, position, expected):
    _, client = served
    _, info = run(client, "a cat", position=position, prompt="painting")
    assert info["infotexts"][0].startswith(expected + "\n")


def test_seeds_iterate_per_line_or_stay_the_same(served):
    _, client = served
    _, info = run(client, "a\nb\nc", iterate=True, seed=100, batch_size=2)
    assert info["all_seeds"] == [100, 101, 102, 103, 104, 105]
    _, info = run(client, "a\nb", same=True, seed=-1)
    assert info["all_seeds"][0] == info["all_seeds"][1] != -1


def test_bad_lines_are_refused_before_any_work(served):
    ctx, client = served
    before = len(output_files(ctx.paths.data_dir))
    response, _ = run(client, 'a cat\n--prompt "x" --bogus 3', save_images=True)
    assert response.status_code == 422 and "unknown option '--bogus'" in response.text
    response, _ = run(client, "--steps many")
    assert response.status_code == 422 and "needs a whole number" in response.text
    assert run(client, "   \n")[0].status_code == 422
    assert len(output_files(ctx.paths.data_dir)) == before
