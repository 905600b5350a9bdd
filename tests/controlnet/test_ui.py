"""The ControlNet accordion of the txt2img tab, driven through the handlers Gradio runs: a unit set on the page
gives the same pixels as the same unit sent to the API; the preview shows the preprocessor's map; picking a
preprocessor relabels its sliders; "send dimensions" copies the image's size."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

import webui
from sdui.controlnet import preprocessors
from sdui.ui.app import create_ui
from tests.fixtures.controlnet import BASE, b64, decoded, shapes_image, write_controlnet
from tests.helpers import LOCAL, call, components_by_id, handler, install_checkpoint, make_ctx, outputs_by_id

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Should have")]


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_sd1_checkpoint):
    data = tmp_path_factory.mktemp("cn-ui")
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    write_controlnet(data / "models" / "ControlNet" / "control_tiny_canny.safetensors")
    ctx = make_ctx(data)
    yield ctx, create_ui(ctx), TestClient(webui.create_app(ctx), base_url=LOCAL)
    ctx.jobs.shutdown()


def test_a_unit_set_on_the_page_equals_the_same_unit_through_the_api(app):
    ctx, demo, client = app
    model = ctx.controlnet.catalog.titles(include_none=False)[0]
    fn = handler(demo, "txt2img_generate", "click")
    chosen = {
        "txt2img_prompt": BASE["prompt"],
        "txt2img_neg_prompt": BASE["negative_prompt"],
        "txt2img_seed": BASE["seed"],
        "txt2img_steps": BASE["steps"],
        "txt2img_width": BASE["width"],
        "txt2img_height": BASE["height"],
        "txt2img_cfg_scale": BASE["cfg_scale"],
        "txt2img_sampling": BASE["sampler_name"],
        "txt2img_controlnet_0_enable": True,
        "txt2img_controlnet_0_image": shapes_image(),
        "txt2img_controlnet_0_module": "canny",
        "txt2img_controlnet_0_model": model,
    }
    values = [chosen.get(block.elem_id, getattr(block, "value", None)) for block in fn.inputs]
    final = outputs_by_id(fn, list(call(fn, *values))[-1])
    page = np.asarray(final["txt2img_gallery"][0].convert("RGB"), dtype=np.int16)
    assert "ControlNet 0:" in final["generation_info_txt2img"]

    unit = {"enabled": True, "module": "canny", "model": model, "image": b64(shapes_image())}
    body = {**BASE, "alwayson_scripts": {"controlnet": {"args": [unit]}}}
    api = client.post("/sdapi/v1/txt2img", json=body).json()
    assert np.array_equal(page, decoded(api["images"][0]))
    plain = client.post("/sdapi/v1/txt2img", json=BASE).json()
    assert not np.array_equal(page, decoded(plain["images"][0]))


def test_preview_sliders_and_send_dimensions(app):
    ctx, demo, _ = app
    ids = components_by_id(demo)
    preview = handler(demo, "txt2img_controlnet_0_run_preview", "click")
    shown = preview.fn(shapes_image(), "canny", 64, 100, 200)
    expected = preprocessors.run("canny", np.asarray(shapes_image()), resolution=64, threshold_a=100, threshold_b=200)
    assert np.array_equal(np.asarray(shown), expected)

    relabel = handler(demo, "txt2img_controlnet_0_module", "change")
    resolution, low, high = relabel.fn("canny")
    assert (low["label"], low["value"], high["label"], high["value"]) == (
        "Canny Low Threshold",
        100,
        "Canny High Threshold",
        200,
    )
    assert resolution["visible"] and resolution["value"] == 512
    assert [u["visible"] for u in relabel.fn("none")] == [False, False, False]

    narrow = handler(demo, "txt2img_controlnet_0_control_type", "change")
    modules, models = narrow.fn("Canny")
    assert (modules["choices"], modules["value"]) == (["none", "canny"], "canny")
    assert models["value"] == ctx.controlnet.catalog.titles(include_none=False)[0] and models["choices"][0] == "None"
    modules, models = narrow.fn("Depth")
    assert modules["value"] == "depth_midas" and models["value"] == "None"  # no depth model here
    assert len(narrow.fn("All")[0]["choices"]) > 50

    send = handler(demo, "txt2img_controlnet_0_send_dimensions", "click")
    image = shapes_image().resize((300, 203))
    assert send.fn(image) == (296, 200)
    assert ids["txt2img_width"]._id in [b._id for b in send.outputs]


def test_paste_restores_the_units_of_an_infotext(app):
    ctx, demo, _ = app
    fn = handler(demo, "txt2img_paste", "click")
    text = (
        "a box\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: 7, Size: 64x64, "
        'ControlNet 1: "Module: canny, Model: control_tiny_canny [12345678], Weight: 0.65, Resize Mode: Just Resize, '
        "Processor Res: 256, Threshold A: 50.0, Threshold B: 150.0, Guidance Start: 0.1, Guidance End: 0.8, "
        'Pixel Perfect: True, Control Mode: ControlNet is more important"'
    )
    depth = ', ControlNet 2: "Module: depth, Model: control_sd15_depth [fef5e48e], Weight: 1.0"'
    out = outputs_by_id(fn, fn.fn(text + depth, ""))
    assert out["txt2img_controlnet_2_module"] == "depth_midas"  # the internal name shown as the list shows it
    unit = {
        k.removeprefix("txt2img_controlnet_1_"): v for k, v in out.items() if str(k).startswith("txt2img_controlnet_1_")
    }
    assert unit["enable"] is True and unit["module"] == "canny" and unit["weight"] == 0.65
    assert (unit["start"], unit["end"], unit["resolution"], unit["a"], unit["b"]) == (0.1, 0.8, 256, 50.0, 150.0)
    assert unit["pixel_perfect"] is True and unit["resize_mode"] == "Just Resize"
    assert unit["control_mode"] == "ControlNet is more important"
    assert unit["model"] == ctx.controlnet.catalog.titles()[1]  # the file here, found by its name (another hash)
    assert unit["model"].startswith("control_tiny_canny [") and "12345678" not in unit["model"]
    untouched = [v for k, v in out.items() if str(k).startswith("txt2img_controlnet_0_")]
    assert all(v is None or getattr(v, "get", lambda *_: None)("__type__") == "update" for v in untouched)
