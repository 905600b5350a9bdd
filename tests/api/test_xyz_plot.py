"""A1111's X/Y/Z plot through the API: axes by index (A1111's order) or label, A1111's value syntax, a labelled
grid whose cells are exactly the single generations, Prompt S/R, and refusals before any work."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sdui.core.xyz_plot import AXES, axes_for, parse_values
from tests.helpers import decode_png, small

SCRIPT = "x/y/z plot"


def xyz_args(x=("Nothing", ""), y=("Nothing", ""), z=("Nothing", ""), *, legend=True, lone=True, margin=0):
    args = []
    for kind, values in (x, y, z):
        dropdown = values if isinstance(values, list) else []
        args += [kind, "" if dropdown else values, dropdown]
    return [*args, legend, lone, False, False, False, False, False, margin, False]


def run(client, args, **body):
    response = client.post("/sdapi/v1/txt2img", json=small(script_name=SCRIPT, script_args=args, **body))
    info = json.loads(response.json()["info"]) if response.status_code == 200 else None
    return response, info


def test_a1111s_axis_order_per_tab():
    txt2img = [a.label for a in axes_for("txt2img")]
    assert txt2img[:8] == [
        "Nothing",
        "Seed",
        "Var. seed",
        "Var. strength",
        "Steps",
        "Hires steps",
        "CFG Scale",
        "Prompt S/R",
    ]
    assert txt2img.index("Sampler") == 9 and "Image CFG Scale" not in txt2img
    img2img = [a.label for a in axes_for("img2img")]
    assert img2img[4:8] == ["Steps", "CFG Scale", "Image CFG Scale", "Prompt S/R"] and img2img[-1] == "Size"
    assert len(AXES) == 46


@pytest.mark.parametrize(
    "axis,text,values",
    [
        ("Steps", "1-5", [1, 2, 3, 4, 5]),
        ("Steps", "1-10 (+3)", [1, 4, 7, 10]),
        ("Steps", "1-10 [4]", [1, 4, 7, 10]),
        ("Steps", "10, 20,30", [10, 20, 30]),
        ("Steps", "10-1 (-3)", [10, 7, 4, 1]),
        ("CFG Scale", "1-2 (+0.5)", [1.0, 1.5, 2.0]),
        ("CFG Scale", "1-2 [3]", [1.0, 1.5, 2.0]),
        ("Prompt S/R", 'cat, "dog, big", bird', ["cat", "dog, big", "bird"]),
        ("Prompt order", "a, b", [["a", "b"], ["b", "a"]]),
    ],
)
def test_value_syntax(axis, text, values):
    assert parse_values(next(a for a in AXES if a.label == axis), text) == values


def test_prompt_order_and_size_axes_change_the_request():
    from sdui.core.xyz_plot import Cell
    from sdui.request import GenerationRequest

    order = next(a for a in AXES if a.label == "Prompt order")
    request = GenerationRequest(prompt="a cat, on a mat, at night")
    for value, expected in (
        (["cat", "night"], "a cat, on a mat, at night"),
        (["night", "cat"], "a night, on a mat, at cat"),
    ):
        cell = Cell()
        order.apply(cell, value, request, [])
        assert cell.fields["prompt"] == expected
    size, cell = next(a for a in AXES if a.label == "Size"), Cell()
    size.apply(cell, "512x768", request, [])
    assert (cell.fields["width"], cell.fields["height"]) == (512, 768)


def test_grid_of_steps_and_cfg_equals_the_single_jobs(served):
    _, client = served
    response, info = run(client, xyz_args((4, "2, 3"), (6, "5, 7")))  # 4: Steps, 6: CFG Scale in txt2img
    assert response.status_code == 200, response.text
    images = [decode_png(b) for b in response.json()["images"]]
    assert len(images) == 5  # the grid, then the four cells (Include Sub Images)
    grid, cells = images[0], images[1:]
    assert grid.width > 128 and grid.height > 128  # two by two cells of 64 plus the legend bands
    texts = info["infotexts"]
    assert (
        "Steps: 2," in texts[1]
        and "CFG scale: 5" in texts[1]
        and "Steps: 3," in texts[4]
        and "CFG scale: 7" in texts[4]
    )
    assert 'X Type: Steps, X Values: "2, 3", Y Type: CFG Scale, Y Values: "5.0, 7.0"' in texts[1]
    single = client.post("/sdapi/v1/txt2img", json=small(steps=3, cfg_scale=7)).json()["images"][0]
    assert np.array_equal(np.asarray(decode_png(single)), np.asarray(cells[3]))
    # the grid's bottom-right cell is that image too (the legend bands are on the top and the left)
    corner = np.asarray(grid)[-64:, -64:]
    assert np.array_equal(corner, np.asarray(cells[3].convert("RGB")))


def test_axes_by_label_with_dropdown_values_and_prompt_sr(served):
    _, client = served
    response, info = run(client, xyz_args(("Sampler", ["Euler", "DDIM"]), ("Prompt S/R", "red, blue")), lone=True)
    assert response.status_code == 200, response.text
    texts = info["infotexts"][1:]
    assert [t.split("\n")[0] for t in texts] == ["a red cube", "a red cube", "a blue cube", "a blue cube"]
    assert ["Sampler: Euler" in texts[0], "Sampler: DDIM" in texts[1]] == [True, True]


@pytest.mark.parametrize(
    "args,words",
    [
        (xyz_args(("Bogus", "1")), "unknown axis type 'Bogus'"),
        (xyz_args(("VAE", "x")), "'VAE' is not available"),
        (xyz_args((4, "1-x")), "is neither a whole number nor a range"),
        (xyz_args((4, "1-9 [99999999]")), "asks for more than 1000 values"),
        (xyz_args(("Prompt order", "a, b, c, d, e, f, g, h")), "8 tokens make more than 1000 orders"),
        (xyz_args(("Prompt S/R", "purple, green")), "did not find 'purple'"),
        (xyz_args(("Sampler", ["Euler", "Nope"])), "'Nope' is not a Sampler value"),
        (xyz_args((99, "1")), "axis type 99 is out of range"),
        (xyz_args((4, "1-2000")), "more than 1000"),
        ([4, "2", 16], "must be a list, not 16"),
        ([True, "1"], "not True"),
        ([4, "2", [], 0, "", [], 0, "", [], True, False, False, False, False, False, False, "wide"], "margin size"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(served, args, words):
    _, client = served
    response, _ = run(client, args)
    assert response.status_code == 422 and words in response.text, response.text


def test_checkpoint_axis_switches_models_inside_the_job(make_client, data_dir, tiny_sd1_checkpoint):
    from tests.fixtures.checkpoints import build_tiny_checkpoint
    from tests.helpers import install_checkpoint

    install_checkpoint(tiny_sd1_checkpoint, data_dir, "tiny.safetensors")
    build_tiny_checkpoint(data_dir / "models" / "Stable-diffusion" / "other.safetensors", seed=1)
    ctx, client = make_client(data_dir)
    response, info = run(client, xyz_args(("Checkpoint name", ["tiny", "other"]), ("Seed", "1, 2")))
    assert response.status_code == 200, response.text
    cells = [decode_png(b) for b in response.json()["images"][1:]]
    texts = info["infotexts"][1:]
    assert ["Model: tiny," in texts[0], "Model: other," in texts[1], "Model: other," in texts[3]] == [True] * 3
    assert not np.array_equal(np.asarray(cells[0]), np.asarray(cells[1]))  # other weights, other image
    alone = client.post(
        "/sdapi/v1/txt2img", json=small(seed=2, override_settings={"sd_model_checkpoint": "other"})
    ).json()["images"][0]
    assert np.array_equal(np.asarray(decode_png(alone)), np.asarray(cells[3]))

    response, _ = run(client, xyz_args(("Checkpoint name", "tiny, missing")))
    assert response.status_code in (400, 422) and "'missing' not found" in response.text and "tiny" in response.text
