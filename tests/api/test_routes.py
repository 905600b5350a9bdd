"""The /sdapi/v1 API through FastAPI's TestClient, on a real app context with a real tiny checkpoint."""

from __future__ import annotations

import base64
import hashlib
import json
import threading

import pytest
from PIL import Image

import webui
from tests.helpers import LOCAL, decode_png, install_checkpoint, make_ctx, output_files, small

# ------------------------------------------------------------------------------------------------- listing routes


def test_sd_models_lists_the_checkpoint_with_a1111_fields(make_client, data_dir, tiny_sd1_checkpoint):
    path = install_checkpoint(tiny_sd1_checkpoint, data_dir, "sub/my model.safetensors")
    _, client = make_client(data_dir)
    models = client.get("/sdapi/v1/sd-models").json()
    assert len(models) == 1
    entry = models[0]
    assert set(entry) == {"title", "model_name", "hash", "sha256", "filename", "config"}
    assert entry["model_name"] == "sub_my model"
    assert entry["filename"] == str(path)
    # not hashed until loaded: the title is the bare name, as in A1111
    assert entry["title"] == "sub/my model.safetensors" and entry["hash"] is None


def test_title_gains_the_sha256_shorthash_once_loaded(served):
    ctx, client = served
    assert client.post("/sdapi/v1/txt2img", json=small(steps=1)).status_code == 200
    entry = client.get("/sdapi/v1/sd-models").json()[0]
    sha = hashlib.sha256((ctx.paths.sd_models_dir / "tiny.safetensors").read_bytes()).hexdigest()
    assert entry["sha256"] == sha
    assert entry["hash"] == sha[:10]
    assert entry["title"] == f"tiny.safetensors [{sha[:10]}]"


def test_refresh_checkpoints_finds_a_new_file(make_client, data_dir, tiny_sd1_checkpoint):
    _, client = make_client(data_dir)
    assert client.get("/sdapi/v1/sd-models").json() == []
    install_checkpoint(tiny_sd1_checkpoint, data_dir, "late.safetensors")
    response = client.post("/sdapi/v1/refresh-checkpoints")
    assert response.status_code == 200 and response.json() is None
    assert [m["title"] for m in client.get("/sdapi/v1/sd-models").json()] == ["late.safetensors"]


def test_samplers_and_schedulers_lists(make_client, data_dir):
    _, client = make_client(data_dir)
    samplers = client.get("/sdapi/v1/samplers").json()
    names = [s["name"] for s in samplers]
    assert {"Euler a", "Euler", "DPM++ 2M", "DDIM"} <= set(names)
    for s in samplers:
        assert set(s) == {"name", "aliases", "options"} and isinstance(s["aliases"], list)
    schedulers = client.get("/sdapi/v1/schedulers").json()
    assert schedulers[0] == {
        "name": "automatic",
        "label": "Automatic",
        "aliases": None,
        "default_rho": -1.0,
        "need_inner_model": False,
    }
    assert {"karras", "exponential", "sgm_uniform"} <= {s["name"] for s in schedulers}
    karras = next(s for s in schedulers if s["name"] == "karras")
    assert karras["label"] == "Karras" and karras["default_rho"] == 7.0


def test_cmd_flags_and_ping(make_client, data_dir):
    _, client = make_client(data_dir, "--no-half")
    flags = client.get("/sdapi/v1/cmd-flags").json()
    assert flags["data_dir"] == str(data_dir) and flags["no_half"] is True and flags["port"] is None
    assert client.get("/internal/ping").status_code == 200


# ------------------------------------------------------------------------------------------------------- options


def test_options_get_and_set_are_saved(make_client, data_dir):
    ctx, client = make_client(data_dir)
    options = client.get("/sdapi/v1/options").json()
    assert options["samples_format"] == "png" and options["CLIP_stop_at_last_layers"] == 1
    assert "sd_model_checkpoint" in options
    response = client.post("/sdapi/v1/options", json={"samples_format": "jpg", "CLIP_stop_at_last_layers": 2})
    assert response.status_code == 200 and response.json() is None
    options = client.get("/sdapi/v1/options").json()
    assert options["samples_format"] == "jpg" and options["CLIP_stop_at_last_layers"] == 2
    saved = json.loads(ctx.paths.config_file.read_text())
    assert saved["samples_format"] == "jpg" and saved["CLIP_stop_at_last_layers"] == 2


def test_options_bad_value_is_422_and_changes_nothing(make_client, data_dir):
    _, client = make_client(data_dir)
    response = client.post("/sdapi/v1/options", json={"samples_format": "jpg", "jpeg_quality": "very"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "InvalidRequestError" and "jpeg_quality" in body["detail"]
    assert client.get("/sdapi/v1/options").json()["samples_format"] == "png"


def test_options_unknown_checkpoint_is_404_with_the_titles(make_client, data_dir, tiny_sd1_checkpoint):
    install_checkpoint(tiny_sd1_checkpoint, data_dir, "real.safetensors")
    _, client = make_client(data_dir)
    response = client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "nope.safetensors"})
    assert response.status_code == 404
    body = response.json()
    assert "nope.safetensors" in body["detail"] and "real.safetensors" in body["detail"]
    assert body["checkpoints"] == ["real.safetensors"]
    assert client.get("/internal/ping").status_code == 200


def test_options_switch_checkpoint_loads_it(make_client, data_dir, tiny_sd1_checkpoint):
    install_checkpoint(tiny_sd1_checkpoint, data_dir, "a.safetensors")
    install_checkpoint(tiny_sd1_checkpoint, data_dir, "b.safetensors")
    ctx, client = make_client(data_dir)
    assert client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "b.safetensors"}).status_code == 200
    assert ctx.store.current_info.name == "b.safetensors"
    title = client.get("/sdapi/v1/options").json()["sd_model_checkpoint"]
    assert title.startswith("b.safetensors [")
    assert json.loads(ctx.paths.config_file.read_text())["sd_model_checkpoint"] == title


# ------------------------------------------------------------------------------------------------------ png-info


def test_png_info_round_trip(make_client, data_dir):
    from sdui.imaging.encoding import image_to_png_bytes

    _, client = make_client(data_dir)
    text = (
        "a cat\nNegative prompt: dog\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, "
        "Seed: 42, Size: 512x768, Model hash: 0123456789"
    )
    png = image_to_png_bytes(Image.new("RGB", (8, 8), "white"), text)
    response = client.post("/sdapi/v1/png-info", json={"image": base64.b64encode(png).decode()})
    assert response.status_code == 200
    body = response.json()
    assert body["info"] == text
    p = body["parameters"]
    assert p["Prompt"] == "a cat" and p["Negative prompt"] == "dog" and p["Steps"] == "20"
    assert p["Sampler"] == "DPM++ 2M" and p["Schedule type"] == "Karras" and p["Seed"] == "42"
    assert p["Size-1"] == "512" and p["Size-2"] == "768"
    # a data: URL prefix is accepted too; an empty image gives an empty answer
    prefixed = "data:image/png;base64," + base64.b64encode(png).decode()
    assert client.post("/sdapi/v1/png-info", json={"image": prefixed}).json()["info"] == text
    assert client.post("/sdapi/v1/png-info", json={"image": ""}).json()["info"] == ""


def test_png_info_bad_image_is_4xx(make_client, data_dir):
    _, client = make_client(data_dir)
    response = client.post("/sdapi/v1/png-info", json={"image": "bm90IGFuIGltYWdl"})
    assert 400 <= response.status_code < 500
    assert "Invalid encoded image" in response.json()["detail"]


# ------------------------------------------------------------------------------------------------------- txt2img


def test_txt2img_png_parameters_parse_back_to_the_request(served):
    from sdui.imaging.pnginfo import read_info_from_image
    from sdui.infotext import parse_infotext

    ctx, client = served
    response = client.post("/sdapi/v1/txt2img", json=small())
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"images", "parameters", "info"}
    assert len(body["images"]) == 1
    image = decode_png(body["images"][0])
    assert image.size == (64, 64)
    text, _ = read_info_from_image(image)
    p = parse_infotext(text)
    assert p["Prompt"] == "a red cube" and p["Negative prompt"] == "blurry"
    assert p["Steps"] == "2" and p["Sampler"] == "Euler" and p["Seed"] == "1234"
    assert float(p["CFG scale"]) == 5.0 and (p["Size-1"], p["Size-2"]) == ("64", "64")
    info = json.loads(body["info"])
    assert info["seed"] == 1234 and info["all_seeds"] == [1234] and info["infotexts"] == [text]
    assert info["width"] == 64 and info["steps"] == 2 and info["sampler_name"] == "Euler"
    # the request is echoed with A1111's defaults filled in
    assert body["parameters"]["prompt"] == "a red cube" and body["parameters"]["save_images"] is False
    assert body["parameters"]["sampler_index"] == "Euler" and body["parameters"]["n_iter"] == 1
    # save_images defaults to false: nothing written
    assert output_files(ctx.paths.data_dir) == []


def test_txt2img_infotext_fills_unset_fields_and_reproduces_the_image(served):
    _, client = served
    first = client.post("/sdapi/v1/txt2img", json=small(seed=77, cfg_scale=3)).json()
    text = json.loads(first["info"])["infotexts"][0]
    again = client.post("/sdapi/v1/txt2img", json={"infotext": text}).json()
    assert again["parameters"]["seed"] == 77 and again["parameters"]["steps"] == 2
    assert again["parameters"]["width"] == 64 and again["parameters"]["prompt"] == "a red cube"
    assert decode_png(again["images"][0]).tobytes() == decode_png(first["images"][0]).tobytes()
    # an explicitly set field wins over the infotext
    other = client.post("/sdapi/v1/txt2img", json={"infotext": text, "seed": 78}).json()
    assert json.loads(other["info"])["seed"] == 78


def test_txt2img_send_images_false_and_batch(served):
    _, client = served
    body = client.post("/sdapi/v1/txt2img", json=small(steps=1, send_images=False)).json()
    assert body["images"] == [] and json.loads(body["info"])["seed"] == 1234
    body = client.post("/sdapi/v1/txt2img", json=small(steps=1, batch_size=2, seed=5)).json()
    info = json.loads(body["info"])
    assert info["all_seeds"] == [5, 6]
    # no grid without save_images (A1111 sets do_not_save_grid): one image per seed
    assert len(body["images"]) == 2 and info["index_of_first_image"] == 0


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"width": 100}, ["width", "multiple of 8"]),
        ({"steps": 0}, ["steps"]),
        ({"sampler_name": "No Such Sampler"}, ["No Such Sampler"]),
        ({"script_name": "loopback wave"}, ["loopback wave", "x/y/z plot"]),
    ],
)
def test_bad_requests_are_4xx_and_the_server_keeps_working(served, bad, words):
    ctx, client = served
    response = client.post("/sdapi/v1/txt2img", json=small(save_images=True, **bad))
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert set(body) >= {"error", "detail", "body", "errors"}
    for word in words:
        assert word.lower() in body["detail"].lower()
    assert output_files(ctx.paths.data_dir) == []
    assert client.post("/sdapi/v1/txt2img", json=small(steps=1)).status_code == 200


def test_wrong_type_is_422(served):
    _, client = served
    response = client.post("/sdapi/v1/txt2img", json=small(steps="many"))
    assert response.status_code == 422
    assert response.json()["error"] == "RequestValidationError" and "steps" in response.json()["errors"]


def test_empty_models_folder_is_409_naming_the_folder(make_client, data_dir):
    ctx, client = make_client(data_dir)
    response = client.post("/sdapi/v1/txt2img", json=small())
    assert response.status_code == 409
    assert str(ctx.paths.sd_models_dir) in response.json()["detail"]
    assert output_files(data_dir) == []
    assert client.get("/internal/ping").status_code == 200


def test_save_images_writes_a1111_named_file(make_client, data_dir, tiny_sd1_checkpoint):
    install_checkpoint(tiny_sd1_checkpoint, data_dir)
    _, client = make_client(data_dir)
    assert client.post("/sdapi/v1/txt2img", json=small(steps=1, seed=31, save_images=True)).status_code == 200
    files = output_files(data_dir)
    assert len(files) == 1
    assert files[0].parent.parent == data_dir / "outputs" / "txt2img-images" and files[0].name == "00000-31.png"


# ------------------------------------------------------------------------------------------ progress / interrupt


def test_progress_interrupt_and_skip_reach_the_running_job(make_client, data_dir):
    ctx, client = make_client(data_dir)
    idle = client.get("/sdapi/v1/progress").json()
    assert idle["progress"] == 0 and idle["state"]["job_count"] == 0 and idle["current_image"] is None
    started, release = threading.Event(), threading.Event()

    def fake_sampling(job):
        job.add_batches(1, 10)
        job.step_done(4, 10)
        started.set()
        release.wait(10)
        return (job.interrupted(), job.skipped())

    job = ctx.jobs.submit(fake_sampling, name="txt2img", owner="address:testclient")  # as the API submits it
    assert started.wait(10)
    progress = client.get("/sdapi/v1/progress").json()
    assert progress["progress"] == pytest.approx(0.4)
    assert progress["state"]["sampling_step"] == 4 and progress["state"]["sampling_steps"] == 10
    assert progress["state"]["job"] == "txt2img" and progress["state"]["job_count"] == 1
    assert progress["eta_relative"] >= 0
    assert client.post("/sdapi/v1/skip").status_code == 200
    assert client.post("/sdapi/v1/interrupt").json() == {}
    assert client.get("/sdapi/v1/progress").json()["state"]["interrupted"] is True
    release.set()
    assert job.wait(10) == (True, True)
    assert job.id.startswith("task(") and len(job.id) == len("task(XXXXXXX)")


def test_jobs_run_in_submission_order(make_client, data_dir):
    ctx, _ = make_client(data_dir)
    order, running, gate = [], threading.Event(), threading.Event()
    first = ctx.jobs.submit(lambda job: running.set() or (gate.wait(10) and order.append(1)))
    assert running.wait(10)
    later = [ctx.jobs.submit(lambda job, i=i: order.append(i)) for i in (2, 3, 4)]
    assert [ctx.jobs.position(j) for j in later] == [0, 1, 2]
    gate.set()
    for job in [first, *later]:
        job.wait(10)
    assert order == [1, 2, 3, 4]
    failing = ctx.jobs.submit(lambda job: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.wait(10)
    assert failing.state == "failed" and ctx.jobs.run(lambda job: "alive", timeout=10) == "alive"


# -------------------------------------------------------------------------------------------------- auth, origin


def test_api_auth_protects_every_sdapi_route(make_client, data_dir):
    _, client = make_client(data_dir, "--api-auth", "alice:pa:ss,bob:x")
    routes = [
        (method.upper(), path)
        for path, methods in client.app.openapi()["paths"].items()
        if path.startswith("/sdapi/")
        for method in methods
    ]
    assert len(routes) >= 15
    for method, path in routes:
        assert client.request(method, path).status_code == 401, path
    # wrong passwords (fewer than the throttle allows: tests/api/test_auth.py checks the throttle)
    assert client.request("GET", "/sdapi/v1/options", auth=("alice", "wrong")).status_code == 401
    assert client.request("POST", "/sdapi/v1/txt2img", auth=("alice", "pa")).status_code == 401  # split on 1st colon
    response = client.get("/sdapi/v1/sd-models")
    assert response.status_code == 401 and response.json()["detail"] == "Not authenticated"
    assert client.get("/sdapi/v1/sd-models", auth=("alice", "pa:ss")).status_code == 200
    assert client.get("/sdapi/v1/options", auth=("bob", "x")).status_code == 200
    assert client.post("/sdapi/v1/refresh-checkpoints", auth=("alice", "pa:ss")).status_code == 200
    assert client.get("/internal/ping").status_code == 200


def test_cross_origin_post_is_refused(make_client, data_dir):
    _, client = make_client(data_dir)
    response = client.post("/sdapi/v1/refresh-checkpoints", headers={"Origin": "http://evil.example"})
    assert response.status_code == 403
    assert "evil.example" in response.json()["detail"] and "--cors-allow-origins" in response.json()["detail"]
    assert (
        client.post(
            "/sdapi/v1/options", json={"samples_format": "jpg"}, headers={"Origin": "http://evil.example"}
        ).status_code
        == 403
    )
    assert client.get("/sdapi/v1/options").json()["samples_format"] == "png"
    # the page's own origin, and clients that send no Origin, pass; so do GETs
    assert client.post("/sdapi/v1/refresh-checkpoints", headers={"Origin": LOCAL}).status_code == 200
    assert client.post("/sdapi/v1/refresh-checkpoints").status_code == 200
    assert client.get("/sdapi/v1/sd-models", headers={"Origin": "http://evil.example"}).status_code == 200


def test_cors_allow_origins_lets_that_origin_post(make_client, data_dir):
    _, client = make_client(data_dir, "--cors-allow-origins", "http://tool.example")
    ok = client.post("/sdapi/v1/refresh-checkpoints", headers={"Origin": "http://tool.example"})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "http://tool.example"
    assert client.post("/sdapi/v1/refresh-checkpoints", headers={"Origin": "http://evil.example"}).status_code == 403


def test_override_checkpoint_applies_to_one_request_only(make_client, data_dir, tiny_sd1_checkpoint):
    install_checkpoint(tiny_sd1_checkpoint, data_dir, "a.safetensors")
    install_checkpoint(tiny_sd1_checkpoint, data_dir, "b.safetensors")
    ctx, client = make_client(data_dir)
    first = json.loads(client.post("/sdapi/v1/txt2img", json=small(steps=1)).json()["info"])
    assert first["sd_model_name"] == "a"
    selected = client.get("/sdapi/v1/options").json()["sd_model_checkpoint"]
    over = client.post(
        "/sdapi/v1/txt2img",
        json=small(steps=1, override_settings={"sd_model_checkpoint": "b.safetensors", "CLIP_stop_at_last_layers": 2}),
    )
    info = json.loads(over.json()["info"])
    assert info["sd_model_name"] == "b" and "Clip skip: 2" in info["infotexts"][0]
    options = client.get("/sdapi/v1/options").json()
    assert options["sd_model_checkpoint"] == selected and options["CLIP_stop_at_last_layers"] == 1
    after = json.loads(client.post("/sdapi/v1/txt2img", json=small(steps=1)).json()["info"])
    assert after["sd_model_name"] == "a" and "Clip skip" not in after["infotexts"][0]
    unknown = client.post("/sdapi/v1/txt2img", json=small(override_settings={"sd_model_checkpoint": "zzz"}))
    assert 400 <= unknown.status_code < 500 and "zzz" in unknown.json()["detail"]


def test_unexpected_failure_is_500_json_and_the_server_keeps_working(
    make_client, data_dir, tiny_sd1_checkpoint, caplog
):
    install_checkpoint(tiny_sd1_checkpoint, data_dir)
    ctx, client = make_client(data_dir)
    real_loader = ctx.store.loader

    def broken_loader(path, policy):
        raise RuntimeError("disk on fire")

    ctx.store.loader = broken_loader
    response = client.post("/sdapi/v1/txt2img", json=small(steps=1))
    assert response.status_code == 500
    assert response.json()["error"] == "RuntimeError" and "disk on fire" in response.json()["detail"]
    assert "Traceback" in caplog.text or any(r.exc_info for r in caplog.records)
    ctx.store.loader = real_loader
    assert client.post("/sdapi/v1/txt2img", json=small(steps=1)).status_code == 200


def test_malformed_api_auth_is_refused_at_start(data_dir):
    from sdui.errors import UserError

    ctx = make_ctx(data_dir, "--api-auth", "just-a-name")
    try:
        with pytest.raises(UserError, match="user:password"):
            webui.create_app(ctx)
    finally:
        ctx.jobs.shutdown()


def test_one_clients_interrupt_leaves_another_clients_job_alone(served):
    """Client B's interrupt must not stop client A's job (A1111 lets anyone stop anyone's)."""
    import threading
    import time

    _, client = served
    body = small(steps=12, seed=77, sampler_name="Euler")
    reference = client.post("/sdapi/v1/txt2img", json=body).json()["images"][0]
    result = {}

    def run_a():
        result["a"] = client.post("/sdapi/v1/txt2img", json=body, headers={"X-Client-Id": "a"}).json()

    thread = threading.Thread(target=run_a)
    thread.start()
    deadline = time.time() + 60
    while time.time() < deadline:
        state = client.get("/sdapi/v1/progress", headers={"X-Client-Id": "a"}).json()["state"]
        if state["sampling_step"] >= 1:
            break
        time.sleep(0.02)
    assert client.post("/sdapi/v1/interrupt", headers={"X-Client-Id": "b"}).json() == {}
    assert client.post("/sdapi/v1/skip", headers={"X-Client-Id": "b"}).status_code == 200
    assert client.get("/sdapi/v1/progress", headers={"X-Client-Id": "b"}).json()["state"]["job_count"] == 0
    thread.join(120)
    assert result["a"]["images"][0] == reference  # ran all 12 steps: the same picture as undisturbed
