"""The built-in ControlNet through the sd-webui-controlnet extension's API, on a served app with a tiny SD1
checkpoint and a tiny ControlNet file in lllyasviel's layout in models/ControlNet.

The API's pixels equal process() run directly with the unit's residuals (the canny map made by the preprocessor,
the model loaded by its own loader): the request path adds nothing and loses nothing. Routes answer in the
extension's shapes; mistakes are 422s that name what exists.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

import webui
from sdui.controlnet import preprocessors
from sdui.controlnet.model_files import ControlNetCatalog, load_controlnet
from sdui.controlnet.residuals import ControlNetResiduals
from sdui.core.hooks import ProcessingHooks
from sdui.core.processing import process
from sdui.imaging.masking import crop_to_region
from sdui.request import GenerationRequest
from tests.fixtures.controlnet import BASE, SIZE, b64, decoded, shapes_image, txt2img, write_controlnet
from tests.helpers import LOCAL, install_checkpoint, make_ctx

pytestmark = pytest.mark.filterwarnings("ignore:Should have")


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_sd1_checkpoint):
    data = tmp_path_factory.mktemp("cn-data")
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    write_controlnet(data / "models" / "ControlNet" / "control_tiny_canny.safetensors")
    write_controlnet(data / "models" / "ControlNet" / "control_sdxl_tiny.safetensors", arch="sdxl")
    ctx = make_ctx(data, "--nowebui")
    yield ctx, TestClient(webui.create_app(ctx), base_url=LOCAL)
    ctx.jobs.shutdown()


def unit(**fields) -> dict:
    return {"enabled": True, "module": "canny", "model": "control_tiny_canny", "image": b64(shapes_image()), **fields}


class WithResiduals(ProcessingHooks):
    def __init__(self, contributor):
        self.contributor = contributor

    def process(self, run):
        run.residual_contributors.append(self.contributor)


def direct(ctx, contributor=None) -> np.ndarray:
    """The same generation through process() itself, with the unit's residuals added by hand."""
    request = GenerationRequest(**BASE)
    hooks = [] if contributor is None else [WithResiduals(contributor)]
    model = ctx.store.get()
    processed = process(request, model, policy=ctx.policy, settings=ctx.options.snapshot(), hooks=hooks)
    return np.asarray(processed.images[0].convert("RGB"), dtype=np.int16)


def test_a_canny_unit_through_the_api_equals_process_with_its_residuals(served):
    ctx, client = served
    baseline = decoded(txt2img(client)["images"][0])
    assert np.array_equal(baseline, direct(ctx)), "without a unit the API and process() must already agree"

    result = txt2img(client, unit(threshold_a=50, threshold_b=150))
    with_unit = decoded(result["images"][0])
    entry = ControlNetCatalog([ctx.paths.models_dir / "ControlNet"]).find("control_tiny_canny")
    canny = preprocessors.run("canny", np.asarray(shapes_image()), resolution=512, threshold_a=50, threshold_b=150)
    contributor = ControlNetResiduals(load_controlnet(entry), canny)
    assert np.array_equal(with_unit, direct(ctx, contributor))
    assert np.abs(with_unit - baseline).mean() > 2, "the unit must visibly steer the image"

    info = json.loads(result["info"])
    text = info["infotexts"][0]
    assert 'ControlNet 0: "Module: canny, Model: control_tiny_canny [' in text
    assert "Threshold A: 50.0, Threshold B: 150.0" in text


def test_weight_zero_and_the_next_job_equal_no_controlnet(served):
    _, client = served
    baseline = decoded(txt2img(client)["images"][0])
    assert np.array_equal(decoded(txt2img(client, unit(weight=0))["images"][0]), baseline)
    txt2img(client, unit())
    assert np.array_equal(decoded(txt2img(client)["images"][0]), baseline)


def test_webuiapi_style_unit_with_old_aliases_runs(served):
    _, client = served
    old = {
        "input_image": b64(shapes_image()),
        "module": "canny",
        "model": "control_tiny_canny [00000000]",  # another hash: found by name, as the extension does
        "weight": 1.0,
        "resize_mode": "Crop and Resize",
        "lowvram": False,
        "processor_res": 64,
        "threshold_a": 64,
        "threshold_b": 64,
        "guidance_start": 0.0,
        "guidance_end": 1.0,
        "control_mode": 0,
        "pixel_perfect": False,
    }
    text = json.loads(txt2img(client, old)["info"])["infotexts"][0]
    assert "ControlNet 0:" in text and "Processor Res: 64" in text


def test_unknown_model_and_module_are_422_naming_what_exists(served):
    _, client = served
    body = {**BASE, "alwayson_scripts": {"controlnet": {"args": [unit(model="control_nope")]}}}
    response = client.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 422
    assert "control_nope" in response.text and "control_tiny_canny [" in response.text

    body = {**BASE, "alwayson_scripts": {"controlnet": {"args": [unit(module="cany_typo")]}}}
    response = client.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 422
    assert "cany_typo" in response.text and "canny" in response.text

    body = {**BASE, "alwayson_scripts": {"controlnet": {"args": [unit(image=None)]}}}
    response = client.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 422 and "no image" in response.text


def test_routes_answer_in_the_extensions_shapes(served):
    ctx, client = served
    assert client.get("/controlnet/version").json() == {"version": 2}
    models = client.get("/controlnet/model_list").json()["model_list"]
    assert [m.split(" [")[0] for m in models] == ["control_sdxl_tiny", "control_tiny_canny"]
    modules = client.get("/controlnet/module_list").json()
    assert "canny" in modules["module_list"] and "canny" in modules["module_detail"]
    assert client.get("/controlnet/settings").json() == {"control_net_unit_count": 3}
    types = client.get("/controlnet/control_types").json()["control_types"]
    canny = types["Canny"]
    assert canny["default_option"] == "canny" and canny["default_model"].startswith("control_tiny_canny [")
    assert canny["module_list"] == ["none", "canny"] and canny["model_list"][0] == "None"
    assert types["Depth"]["model_list"] == ["None"] and types["Depth"]["default_model"] == "None"
    assert "depth_midas" in types["Depth"]["module_list"] and len(types["All"]["module_list"]) > 50
    assert "controlnet" in client.get("/sdapi/v1/scripts").json()["txt2img"]
    infos = client.get("/sdapi/v1/script-info").json()
    assert any(i["name"] == "controlnet" and i["is_alwayson"] for i in infos)


def test_detect_returns_the_canny_map(served):
    _, client = served
    body = {
        "controlnet_module": "canny",
        "controlnet_input_images": [b64(shapes_image())],
        "controlnet_processor_res": 64,
        "controlnet_threshold_a": 100,
        "controlnet_threshold_b": 200,
    }
    answer = client.post("/controlnet/detect", json=body).json()
    assert answer["info"] == "Success"
    expected = preprocessors.run("canny", np.asarray(shapes_image()), resolution=64, threshold_a=100, threshold_b=200)
    got = decoded(answer["images"][0])
    assert np.array_equal(got, np.asarray(Image.fromarray(expected).convert("RGB"), dtype=np.int16))
    assert got.max() == 255 and got.min() == 0

    response = client.post("/controlnet/detect", json={"controlnet_module": "canny", "controlnet_input_images": []})
    assert response.status_code == 422 and "No image" in response.text
    response = client.post("/controlnet/detect", json={**body, "controlnet_module": "nonsense"})
    assert response.status_code == 422 and "canny" in response.text


def test_inpainting_with_a_unit_changes_only_the_masked_area(served):
    _, client = served
    mask = Image.new("L", (SIZE, SIZE), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 47, 47), fill=255)
    body = {**BASE, "init_images": [b64(shapes_image())], "mask": b64(mask), "denoising_strength": 0.9}
    body.update(mask_blur=0, inpainting_fill=1)
    plain = client.post("/sdapi/v1/img2img", json=body)
    assert plain.status_code == 200, plain.text
    steered = client.post(
        "/sdapi/v1/img2img",
        json={**body, "alwayson_scripts": {"ControlNet": {"args": [unit(image=None)]}}},  # takes the init image
    )
    assert steered.status_code == 200, steered.text
    before, after = decoded(plain.json()["images"][0]), decoded(steered.json()["images"][0])
    outside = np.ones((SIZE, SIZE), bool)
    outside[12:52, 12:52] = False
    assert np.array_equal(before[outside], after[outside])  # the original is kept outside the mask, as before
    assert np.abs(before[20:44, 20:44] - after[20:44, 20:44]).mean() > 2
    assert "ControlNet 0:" in json.loads(steered.json()["info"])["infotexts"][0]


def test_the_extensions_flags_add_a_model_folder_and_are_accepted(tmp_path):
    elsewhere = write_controlnet(tmp_path / "shared-models" / "control_elsewhere.pth")
    in_extension = tmp_path / "data" / "extensions" / "sd-webui-controlnet" / "models" / "control_in_ext.safetensors"
    write_controlnet(in_extension)
    ctx = make_ctx(
        tmp_path / "data",
        "--nowebui",
        "--controlnet-dir",
        str(elsewhere.parent),
        "--controlnet-annotator-models-path",
        str(tmp_path / "annotators"),
        "--no-half-controlnet",
    )
    try:
        titles = ctx.controlnet.catalog.titles(include_none=False)
        assert [t.split(" [")[0] for t in titles] == ["control_elsewhere", "control_in_ext"]
        assert ctx.controlnet.annotator_dir == tmp_path / "annotators"
    finally:
        ctx.jobs.shutdown()


def test_a_controlnet_for_another_base_model_is_422_before_sampling(served):
    _, client = served
    body = {**BASE, "alwayson_scripts": {"controlnet": {"args": [unit(model="control_sdxl_tiny")]}}}
    response = client.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 422
    assert "control_sdxl_tiny" in response.text and "SDXL" in response.text and "does not fit" in response.text


def test_inpaint_only_keeps_the_units_pixels_outside_its_mask(served):
    _, client = served
    mask = Image.new("L", (SIZE, SIZE), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 47, 47), fill=255)
    inpaint_unit = unit(module="inpaint_only", mask=b64(mask))
    result = txt2img(client, inpaint_unit)
    image = decoded(result["images"][0])
    source = np.asarray(shapes_image(), dtype=np.int16)
    # far outside the (dilated, blurred) mask the unit's own image comes back; inside, the generation
    assert np.abs(image[:4] - source[:4]).max() <= 1 and np.abs(image[:, :4] - source[:, :4]).max() <= 1
    assert np.abs(image[24:40, 24:40] - source[24:40, 24:40]).mean() > 10
    assert 'Module: inpaint_only' in json.loads(result["info"])["infotexts"][0]


def test_only_masked_inpainting_crops_the_units_image_to_the_same_box(served):
    _, client = served
    mask = Image.new("L", (SIZE, SIZE), 0)
    ImageDraw.Draw(mask).rectangle((36, 8, 55, 27), fill=255)  # the ellipse's corner: a box of its own
    body = {**BASE, "init_images": [b64(shapes_image())], "mask": b64(mask), "denoising_strength": 0.8}
    body.update(mask_blur=0, inpainting_fill=1, inpaint_full_res=True, inpaint_full_res_padding=4)

    def run(*units):
        answer = client.post("/sdapi/v1/img2img", json={**body, "alwayson_scripts": {"controlnet": {"args": units}}})
        assert answer.status_code == 200, answer.text
        return decoded(answer.json()["images"][0])

    cropped = run(unit(image=None))  # takes the init image, cut to the masked box
    box = crop_to_region(shapes_image(), (32, 4, 60, 32), SIZE, SIZE)  # the box by hand: the mask's + padding 4
    by_hand = run(unit(image=b64(box), inpaint_crop_input_image=False, resize_mode="Just Resize"))
    whole = run(unit(image=None, inpaint_crop_input_image=False))
    assert np.array_equal(cropped, by_hand)
    assert not np.array_equal(cropped, whole)
