"""A1111's "Loopback" script through the API: each loop's init image is the previous result, the strength follows
the curve, seeds count up; every loop equals the plain img2img it stands for."""

from __future__ import annotations

import base64
import io
import json
import math

import numpy as np
import pytest
from PIL import Image

from sdui.core.loopback import denoising_strength
from tests.helpers import decode_png, small

SCRIPT = "loopback"


def b64png(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def gradient() -> Image.Image:
    x = np.linspace(0, 255, 64, dtype=np.uint8)
    return Image.fromarray(
        np.stack([np.tile(x, (64, 1)), np.tile(x[:, None], (1, 64)), np.full((64, 64), 90, np.uint8)], -1)
    )


def img2img(client, image, **body):
    payload = small(init_images=[b64png(image)], **{"denoising_strength": 0.6, "steps": 3, **body})
    return client.post("/sdapi/v1/img2img", json=payload)


def test_each_loop_is_img2img_of_the_last_with_the_curve_and_the_next_seed(served):
    _, client = served
    response = img2img(client, gradient(), seed=21, script_name=SCRIPT, script_args=[3, 0.2, "Linear", "None"])
    assert response.status_code == 200, response.text
    answer = response.json()
    info = json.loads(answer["info"])
    grid, *loops = [decode_png(b) for b in answer["images"]]
    assert len(loops) == 3 and grid.size == (3 * 64, 64)
    assert info["all_seeds"] == [21]  # A1111 reports the first loop's parameters for every image
    assert all(t == info["infotexts"][0] for t in info["infotexts"])
    assert "Final denoising strength: 0.2, Denoising curve: Linear" in info["infotexts"][0]

    # loop 2 = img2img of loop 1's image, seed 22, strength halfway from 0.6 to 0.2, masked content "original"
    plain = img2img(client, loops[0], seed=22, denoising_strength=0.4, inpainting_fill=1).json()
    assert np.array_equal(np.asarray(decode_png(plain["images"][0])), np.asarray(loops[1]))


def test_batch_count_starts_over_and_keeps_the_last_of_each_run(served):
    _, client = served
    answer = img2img(client, gradient(), seed=3, n_iter=2, script_name=SCRIPT, script_args=[2, 0.5]).json()
    grid, *lasts = [decode_png(b) for b in answer["images"]]
    assert len(lasts) == 2 and grid.size == (2 * 64, 64)
    # the second run's last image is loop 2 from the original image with seeds 5 and 6
    first = img2img(client, gradient(), seed=5).json()
    second = img2img(client, decode_png(first["images"][0]), seed=6, denoising_strength=0.5, inpainting_fill=1)
    assert np.array_equal(np.asarray(decode_png(second.json()["images"][0])), np.asarray(lasts[1]))


def test_curves():
    assert denoising_strength(0, 4, 0.8, 0.2, "Linear") == pytest.approx(0.8)
    assert denoising_strength(3, 4, 0.8, 0.2, "Linear") == pytest.approx(0.2)
    assert denoising_strength(1, 3, 0.8, 0.2, "Aggressive") == pytest.approx(0.8 - 0.6 * math.sin(math.pi / 4))
    assert denoising_strength(1, 3, 0.8, 0.2, "Lazy") == pytest.approx(0.8 - 0.6 * (1 - math.cos(math.pi / 4)))
    assert denoising_strength(0, 1, 0.7, 0.1, "Linear") == 0.7


@pytest.mark.parametrize(
    "args,message",
    [
        ([0, 0.5], "between 1 and 32"),
        ([2, 1.5], "between 0 and 1"),
        ([2, 0.5, "Wavy"], "Aggressive, Linear, Lazy"),
        ([2, 0.5, "Linear", "CLIP"], "interrogation model"),
    ],
)
def test_bad_arguments_are_refused(served, args, message):
    _, client = served
    response = img2img(client, gradient(), script_name=SCRIPT, script_args=args)
    assert response.status_code == 422 and message in response.text


def test_txt2img_has_no_loopback(served):
    _, client = served
    response = client.post("/sdapi/v1/txt2img", json=small(script_name=SCRIPT, script_args=[2, 0.5]))
    assert response.status_code == 422 and "not found for txt2img" in response.text
