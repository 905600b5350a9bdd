"""The app context: each job runs with a frozen snapshot of the settings, override_settings stay in that snapshot,
a checkpoint chosen in the settings loads through the queue, and batches add up across the requests of one job."""

from __future__ import annotations

import hashlib
import json
import random
import threading

import pytest

from sdui.app.context import generate
from sdui.core.hooks import ProcessingHooks
from sdui.errors import CheckpointError, InvalidRequestError
from sdui.request import GenerationRequest
from tests.helpers import install_checkpoint, make_ctx


@pytest.fixture
def app(tmp_path, tiny_sd1_checkpoint):
    data = tmp_path / "data"
    install_checkpoint(tiny_sd1_checkpoint, data, "a.safetensors")
    install_checkpoint(tiny_sd1_checkpoint, data, "b.safetensors")
    ctx = make_ctx(data)
    yield ctx
    ctx.jobs.shutdown()


def request(**fields) -> GenerationRequest:
    base = dict(
        prompt="a cat",
        seed=3,
        steps=2,
        width=64,
        height=64,
        sampler_name="Euler",
        do_not_save_samples=True,
        do_not_save_grid=True,
    )
    return GenerationRequest(**{**base, **fields})


def run(ctx, req):
    return ctx.jobs.run(generate, ctx, req, timeout=120)


def test_a_setting_changed_while_a_job_runs_applies_to_the_next_job_only(app):
    started, release = threading.Event(), threading.Event()

    class Pause(ProcessingHooks):
        def process_batch(self, run_, batch):
            if not started.is_set():
                started.set()
                release.wait(60)

    app.hooks.append(Pause())
    first = app.jobs.submit(generate, app, request())
    assert started.wait(60)
    app.options.set("CLIP_stop_at_last_layers", 2)  # the Settings tab, or POST /sdapi/v1/options
    release.set()
    running_then = first.wait(120)
    after = run(app, request())
    assert "Clip skip" not in running_then.infotexts[0] and running_then.settings.CLIP_stop_at_last_layers == 1
    assert "Clip skip: 2," in after.infotexts[0]


def test_override_settings_leave_the_shared_settings_as_they_were(app):
    run(app, request())  # the first generation loads the model and records it as the selected one
    before = dict(app.options.data)
    result = run(
        app,
        request(
            override_settings={"CLIP_stop_at_last_layers": 2, "eta_noise_seed_delta": 31337}, sampler_name="Euler a"
        ),
    )
    assert "Clip skip: 2," in result.infotexts[0] and "ENSD: 31337" in result.infotexts[0]
    assert result.settings.CLIP_stop_at_last_layers == 2
    assert app.options.data == before
    assert not app.paths.config_file.exists()
    with pytest.raises(InvalidRequestError, match="CLIP_stop_at_last_layers"):
        run(app, request(override_settings={"CLIP_stop_at_last_layers": "two"}))
    assert app.options.data == before


def test_override_settings_restore_afterwards_false_keeps_them(app):
    result = run(
        app, request(override_settings={"CLIP_stop_at_last_layers": 2}, override_settings_restore_afterwards=False)
    )
    assert "Clip skip: 2," in result.infotexts[0]
    assert app.options.CLIP_stop_at_last_layers == 2
    assert json.loads(app.paths.config_file.read_text())["CLIP_stop_at_last_layers"] == 2


def test_a_checkpoint_override_is_for_its_request_only(app):
    run(app, request())
    selected = app.options.sd_model_checkpoint
    assert selected.startswith("a.safetensors [")
    other = run(app, request(override_settings={"sd_model_checkpoint": "b.safetensors"}))
    assert "Model: b," in other.infotexts[0]
    assert app.options.sd_model_checkpoint == selected
    assert "Model: a," in run(app, request()).infotexts[0]


def test_batches_add_up_across_the_requests_of_one_job(app):
    seen = []

    class Watch(ProcessingHooks):
        def before_process_batch(self, run_, batch):
            seen.append((job.job_no, job.job_count))

    app.hooks.append(Watch())

    def two_requests(job):
        generate(app, request(n_iter=2), job=job)
        generate(app, request(n_iter=2, seed=9), job=job)
        return job.job_no, job.job_count

    job = app.jobs.submit(two_requests, name="x/y/z")
    assert job.wait(120) == (4, 4)
    assert seen == [(0, 2), (1, 2), (2, 4), (3, 4)]


def test_choosing_a_checkpoint_in_the_settings_loads_it_and_a_bad_name_changes_nothing(app):
    app.options.set("sd_model_checkpoint", "b")  # an alias, as A1111 accepts
    info = app.store.current_info
    data = (app.paths.sd_models_dir / "b.safetensors").read_bytes()
    assert info.name == "b.safetensors" and info.sha256 == hashlib.sha256(data).hexdigest()
    assert app.options.sd_model_checkpoint == info.title == f"b.safetensors [{info.sha256[:10]}]"
    assert app.options.sd_checkpoint_hash == info.sha256
    with pytest.raises(CheckpointError):
        app.options.set("sd_model_checkpoint", "missing")
    assert app.options.sd_model_checkpoint == info.title and app.store.current_info is info


def test_ckpt_flag_is_listed_first_and_selected_over_the_saved_setting(tmp_path):
    outside = tmp_path / "elsewhere" / "z.safetensors"
    outside.parent.mkdir()
    outside.write_bytes(random.Random(3).randbytes(1000))
    data = tmp_path / "data"
    (data / "models" / "Stable-diffusion").mkdir(parents=True)
    (data / "models" / "Stable-diffusion" / "a.safetensors").write_bytes(random.Random(1).randbytes(1000))
    (data / "config.json").write_text(json.dumps({"sd_model_checkpoint": "a.safetensors"}))
    ctx = make_ctx(data, "--ckpt", str(outside))
    try:
        assert [i.name for i in ctx.store.checkpoints] == ["z.safetensors", "a.safetensors"]
        assert ctx.store.select().filename == str(outside)
    finally:
        ctx.jobs.shutdown()
