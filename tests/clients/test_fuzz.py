"""Fuzzing the API over HTTP against a live server: whatever a client sends, the answer is never a 5xx, every refusal
says why, and the server still works afterwards.

Two fuzzers:
- schemathesis generates requests for every operation of our /openapi.json, valid and schema-violating ones;
- a hypothesis strategy of our own sends generations that pass the schema and mostly pass validation, mixing
  samplers, schedules, hires fix, seeds, masks, outpainting, styles and settings overrides, so that the
  combinations reach the sampling loop instead of stopping at the first bound.

The server runs with small work limits (every valid request finishes in moments on a CPU) and frozen settings (the
fuzzer cannot raise those limits through POST /options). Both fuzzers are seeded: a failure reproduces."""

from __future__ import annotations

import base64
import io
import json

import hypothesis
import hypothesis.errors
import numpy as np
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from PIL import Image
from schemathesis import GenerationMode

from tests.fixtures.live_server import LiveServer, free_port
from tests.helpers import install_checkpoint, make_ctx

pytestmark = pytest.mark.slow

LIMITS = {"max_image_pixels": 128 * 128, "max_sampling_steps": 2, "max_batch_size": 2, "max_batch_count": 2}
SCHEMA_EXAMPLES = 12  # per operation and mode
GENERATIONS = 60  # per tab


def fuzz_settings(examples: int):
    return hypothesis.settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        database=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],  # report, do not shrink (slow over HTTP)
    )


def check(response: requests.Response, label: str, failures: list[str], sent) -> None:
    if response.status_code >= 500:
        failures.append(f"{label} -> {response.status_code}: {response.text[:300]}\n  sent: {str(sent)[:600]}")
    elif response.status_code >= 400 and not response.json().get("detail"):
        failures.append(f"{label} -> {response.status_code} without a reason: {response.text[:300]}")


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, tiny_sd1_checkpoint):
    data = tmp_path_factory.mktemp("fuzz")
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    (data / "config.json").write_text(json.dumps(LIMITS))
    (data / "styles.csv").write_text('name,prompt,negative_prompt\nCinematic,"{prompt}, film grain",blurry\n')
    with LiveServer(make_ctx(data, "--nowebui", "--freeze-settings"), free_port()) as server:
        yield server


# ----------------------------------------------------------------------------------------- every operation


def fuzz_operation(operation, mode, failures: list[str]) -> None:
    @hypothesis.seed(7)
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @fuzz_settings(SCHEMA_EXAMPLES)
    def run(case):
        response = case.call(timeout=120)
        check(response, f"{operation.label} ({mode.value})", failures, case.body)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        pass  # e.g. no schema-violating request exists for an operation without parameters


def test_no_request_to_any_operation_gets_a_server_error(fuzz_server):
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 39  # every /sdapi/v1 route (server-stop/-restart/-kill only with their flag)
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz_operation(operation, mode, failures)
    assert failures == []


# ------------------------------------------------------------------------------------------------ generations


def png_b64(width: int, height: int, mode: str, seed: int) -> str:
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


PROMPT_PIECES = [
    *"ab ()[]:|,.1<>\\{}",
    " BREAK ",
    " AND ",
    "<lora:x:1>",
    "cat",
    "(dog:1.3)",
    "[a:b:0.5]",
    "\u00e9\u6f22",
]
PROMPTS = st.lists(st.sampled_from(PROMPT_PIECES), max_size=20).map("".join)
NUMBERS = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**70), 2**70)


def mostly(good, bad):
    """`good` nine times in ten, else `bad`: so that most requests pass validation and reach the sampler."""
    return st.integers(0, 9).flatmap(lambda k: bad if k == 0 else good)


SIZES = mostly(st.sampled_from([8, 16, 40, 64, 72, 128]), st.sampled_from([0, 7, 136, 4096]))
STEPS = mostly(st.integers(1, 2), st.integers(0, 3))


def _common(samplers: list[str], schedulers: list[str]) -> dict:
    return {
        "prompt": PROMPTS,
        "negative_prompt": PROMPTS,
        "styles": st.lists(st.sampled_from(["Cinematic", "Cinematic", "missing"]), max_size=2),
        "batch_size": mostly(st.integers(1, 2), st.integers(0, 3)),
        "n_iter": mostly(st.integers(1, 2), st.integers(0, 3)),
        "cfg_scale": mostly(st.floats(-2, 30), NUMBERS),
        "seed": mostly(st.integers(-2, 2**33), NUMBERS),
        "subseed": st.integers(-1, 2**33),
        "subseed_strength": mostly(st.floats(0, 1), st.floats(-0.5, 1.5)),
        "seed_resize_from_w": st.sampled_from([-1, 0, 32, 64]),
        "seed_resize_from_h": st.sampled_from([-1, 0, 32, 64]),
        "sampler_name": st.sampled_from([*samplers, "Euler a", "DPM++ 2M Karras", "not a sampler"]),
        "scheduler": mostly(st.just("Automatic"), st.sampled_from([*schedulers, "automatic", "no schedule"])),
        "eta": mostly(st.none() | st.just(1.0), st.floats(0, 1.5)),
        "s_churn": mostly(st.just(0.0), st.floats(0, 2)),
        "s_noise": mostly(st.just(1.0), st.floats(0, 1.5)),
        "tiling": st.booleans(),
        "override_settings": st.fixed_dictionaries(
            {},
            optional={
                "CLIP_stop_at_last_layers": mostly(st.integers(1, 12), st.integers(-1, 13)),
                "eta_noise_seed_delta": mostly(st.integers(0, 2**31), st.integers(-5, 2**70)),
                "randn_source": st.sampled_from(["CPU", "GPU", "NV"]),
                "emphasis": st.sampled_from(["Original", "No norm", "Ignore", "None", "Bogus"]),
                "samples_format": mostly(st.sampled_from(["png", "jpg", "webp"]), st.just("bmp")),
                "sd_vae": st.sampled_from(["Automatic", "None"]),
            },
        ),
        "save_images": st.booleans(),
        "send_images": st.booleans(),
    }


def txt2img_bodies(samplers, schedulers, upscalers):
    return st.fixed_dictionaries(
        {"width": SIZES, "height": SIZES, "steps": STEPS},
        optional={
            **_common(samplers, schedulers),
            "enable_hr": st.booleans(),
            "hr_scale": mostly(st.floats(0.5, 2.0), NUMBERS),
            "hr_upscaler": mostly(st.sampled_from(upscalers), st.just("bogus")),
            "denoising_strength": mostly(st.floats(0, 1), st.floats(-0.5, 1.5)),
            "hr_second_pass_steps": mostly(st.integers(0, 2), st.integers(-1, 3)),
            "hr_resize_x": st.sampled_from([0, 64, 96, 100]),
            "hr_resize_y": st.sampled_from([0, 64, 96]),
            "hr_sampler_name": mostly(st.sampled_from(["", "Euler", "DDIM"]), st.just("nope")),
        },
    )


def img2img_bodies(samplers, schedulers):
    side = st.sampled_from([1, 3, 8, 40, 64, 72, 128])
    image = st.builds(png_b64, side, side, st.sampled_from(["RGB", "RGBA", "L"]), st.integers(0, 9))
    return st.fixed_dictionaries(
        {"init_images": st.lists(image, min_size=1, max_size=3), "width": SIZES, "height": SIZES, "steps": STEPS},
        optional={
            **_common(samplers, schedulers),
            "mask": image,
            "denoising_strength": mostly(st.floats(0, 1), st.floats(-0.5, 1.5)),
            "resize_mode": mostly(st.integers(0, 3), st.integers(-1, 4)),
            "inpainting_fill": mostly(st.integers(0, 3), st.integers(-1, 4)),
            "inpaint_full_res": st.booleans(),
            "inpaint_full_res_padding": mostly(st.integers(0, 64), st.integers(-8, 64)),
            "inpainting_mask_invert": mostly(st.integers(0, 1), st.integers(-1, 2)),
            "mask_blur": mostly(st.integers(0, 16), st.integers(-4, 70)),
            "initial_noise_multiplier": st.floats(0, 2),
            "outpaint_left": mostly(st.just(0), st.sampled_from([8, 24])),
            "outpaint_down": mostly(st.just(0), st.sampled_from([16, 5])),
            "script_name": mostly(st.sampled_from(["", "", "sd upscale", "SD Upscale"]), st.just("x/y/z plot")),
            "script_args": st.lists(st.sampled_from(["", None, 0, 8, 16, "Lanczos", "None", 1.5, 2.0, -1]), max_size=4),
        },
    )


def fuzz_generations(server, route: str, bodies, failures: list[str], outcomes: list[int]) -> None:
    @hypothesis.seed(11)
    @hypothesis.given(body=bodies)
    @fuzz_settings(GENERATIONS)
    def run(body):
        response = requests.post(f"{server.url}/sdapi/v1/{route}", json=body, timeout=300)
        outcomes.append(response.status_code)
        check(response, f"POST /sdapi/v1/{route}", failures, {k: v for k, v in body.items() if "image" not in k})
        if response.status_code == 200 and body.get("send_images", True):
            assert response.json()["images"], body  # a successful generation sends images back

    run()


# a NaN reaching the 8-bit image (a black or garbage picture) is an error here, so the fuzzer reports it as a 500
@pytest.mark.filterwarnings("error:invalid value encountered in cast:RuntimeWarning")
def test_generations_with_any_mix_of_settings_never_get_a_server_error(fuzz_server):
    url = fuzz_server.url
    samplers = [s["name"] for s in requests.get(f"{url}/sdapi/v1/samplers").json()]
    schedulers = [s["label"] for s in requests.get(f"{url}/sdapi/v1/schedulers").json()]
    upscalers = [u["name"] for u in requests.get(f"{url}/sdapi/v1/upscalers").json()]
    upscalers += [m["name"] for m in requests.get(f"{url}/sdapi/v1/latent-upscale-modes").json()]
    failures: list[str] = []
    outcomes: list[int] = []
    fuzz_generations(fuzz_server, "txt2img", txt2img_bodies(samplers, schedulers, upscalers), failures, outcomes)
    fuzz_generations(fuzz_server, "img2img", img2img_bodies(samplers, schedulers), failures, outcomes)
    assert failures == []
    assert outcomes.count(200) >= 30  # the fuzzing reached the sampling loop, not only the validation


def test_the_server_still_generates_after_the_fuzzing(fuzz_server):
    payload = {"prompt": "still here", "steps": 2, "width": 64, "height": 64, "seed": 1}
    response = requests.post(f"{fuzz_server.url}/sdapi/v1/txt2img", json=payload, timeout=120)
    assert response.status_code == 200 and len(response.json()["images"]) == 1
