"""Every sampler /sdapi/v1/samplers lists (20) with every schedule type /sdapi/v1/schedulers lists, as a client sends
them (by name, alias and label): A1111 runs every pair, so every pair must run here and say so in its infotext."""

from __future__ import annotations

import json

import pytest

from tests.helpers import decode_png, small

pytestmark = pytest.mark.slow  # 250 small generations


def test_every_sampler_with_every_schedule_runs(served):
    _, client = served
    samplers = client.get("/sdapi/v1/samplers").json()
    schedulers = client.get("/sdapi/v1/schedulers").json()
    assert len(samplers) == 20 and len(schedulers) == 12
    failures = []
    for sampler in samplers:
        for schedule in schedulers:
            # the label (what the UI and most clients send) for all; the name too for one sampler
            for sent in {schedule["label"], schedule["name"] if sampler["name"] == "Euler a" else schedule["label"]}:
                body = small(steps=2, sampler_name=sampler["name"], scheduler=sent, eta=0.5)
                response = client.post("/sdapi/v1/txt2img", json=body)
                if response.status_code != 200:
                    failures.append((sampler["name"], sent, response.status_code, response.text[:200]))
                    continue
                info = json.loads(response.json()["info"])
                text = info["infotexts"][0]
                assert f"Sampler: {sampler['name']}," in text, text
                image = decode_png(response.json()["images"][0])
                assert image.size == (64, 64)
    assert failures == []


@pytest.mark.parametrize("alias", ["k_euler_a", "k_dpmpp_2m", "k_dpm_ad", "ddim_cfgpp", "k_lcm", "restart"])
def test_samplers_by_alias_and_old_names_with_schedule(served, alias):
    _, client = served
    response = client.post("/sdapi/v1/txt2img", json=small(steps=2, sampler_name=alias))
    assert response.status_code == 200, response.text
    response = client.post("/sdapi/v1/txt2img", json=small(steps=2, sampler_name="DPM++ 2M Karras", scheduler=""))
    assert "Sampler: DPM++ 2M, Schedule type: Karras" in json.loads(response.json()["info"])["infotexts"][0]


def test_an_unknown_schedule_is_a_4xx_naming_the_ones_that_exist(served):
    _, client = served
    response = client.post("/sdapi/v1/txt2img", json=small(steps=2, scheduler="Turbo"))
    assert response.status_code == 422
    assert "Unknown schedule type 'Turbo'" in response.text and "Align Your Steps" in response.text
