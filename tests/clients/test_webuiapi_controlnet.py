"""The `webuiapi` client's ControlNet flows (ControlNetUnit in txt2img/img2img, controlnet_* helpers) against a
live server with a tiny ControlNet in models/ControlNet, unchanged as its README shows them."""

from __future__ import annotations

import numpy as np
import pytest
import webuiapi
from PIL import Image, ImageDraw

from sdui.controlnet import preprocessors
from tests.fixtures.controlnet import write_controlnet
from tests.fixtures.live_server import LiveServer, free_port
from tests.helpers import install_checkpoint, make_ctx

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Should have")]


@pytest.fixture(scope="module")
def api(tmp_path_factory, tiny_sd1_checkpoint):
    data = tmp_path_factory.mktemp("live-cn")
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    write_controlnet(data / "models" / "ControlNet" / "control_v11p_sd15_canny.safetensors")
    with LiveServer(make_ctx(data, "--nowebui"), free_port()) as server:
        yield webuiapi.WebUIApi(host="127.0.0.1", port=server.port, sampler="Euler a", steps=2)


def edges() -> Image.Image:
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).rectangle((16, 16, 48, 48), outline="black", width=4)
    return image


def test_controlnet_units_steer_txt2img_and_img2img(api):
    models = api.controlnet_model_list()
    assert len(models) == 1 and models[0].startswith("control_v11p_sd15_canny [")
    assert "canny" in api.controlnet_module_list() and api.controlnet_version() == 2

    args = dict(prompt="a box", seed=3, width=64, height=64, cfg_scale=5)
    plain = api.txt2img(**args)
    unit = webuiapi.ControlNetUnit(image=edges(), module="canny", model=models[0])
    steered = api.txt2img(**args, controlnet_units=[unit])
    assert 'ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny [' in steered.info["infotexts"][0]
    assert np.abs(np.asarray(steered.image, np.int16) - np.asarray(plain.image, np.int16)).mean() > 2
    again = api.txt2img(**args, controlnet_units=[unit])
    assert np.array_equal(np.asarray(again.image), np.asarray(steered.image))
    off = api.txt2img(
        **args, controlnet_units=[webuiapi.ControlNetUnit(image=edges(), module="canny", model=models[0], weight=0.0)]
    )
    assert np.array_equal(np.asarray(off.image), np.asarray(plain.image))

    # img2img: a unit without its own image takes the init image, as the extension does
    result = api.img2img(
        images=[edges()],
        prompt="a box",
        seed=3,
        width=64,
        height=64,
        denoising_strength=0.6,
        controlnet_units=[webuiapi.ControlNetUnit(module="canny", model=models[0])],
    )
    assert "ControlNet 0:" in result.info["infotexts"][0]


def test_controlnet_detect_returns_the_map(api):
    # the client sends the images under the older field name, with a data: prefix, and reads back PIL images
    answer = api.controlnet_detect([edges()], module="canny", processor_res=64, threshold_a=100, threshold_b=200)
    expected = preprocessors.run("canny", np.asarray(edges()), resolution=64, threshold_a=100, threshold_b=200)
    assert np.array_equal(np.asarray(answer.image.convert("RGB")), expected)
    assert expected.max() == 255
