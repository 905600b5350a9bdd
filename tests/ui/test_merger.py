"""The Checkpoint Merger tab with a real app context: A1111's element ids, the Merge handler through the job queue
(the new checkpoint in every picker and in /sdapi/v1/sd-models with its hash, then an image generated from it),
mistakes shown as messages, and the small handlers (description, metadata reading, refresh)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from sdui.ui import runner
from sdui.ui.app import create_ui
from sdui.ui.tabs import txt2img
from tests.helpers import LOCAL, call, components_by_id, handler, install_checkpoint, make_ctx, outputs_by_id

A1111_IDS = {
    "tab_modelmerger",
    "modelmerger_interp_description",
    "modelmerger_models",
    "modelmerger_primary_model_name",
    "modelmerger_secondary_model_name",
    "modelmerger_tertiary_model_name",
    "refresh_checkpoint_A",
    "refresh_checkpoint_B",
    "refresh_checkpoint_C",
    "modelmerger_custom_name",
    "modelmerger_interp_amount",
    "modelmerger_interp_method",
    "modelmerger_checkpoint_format",
    "modelmerger_save_as_half",
    "modelmerger_config_method",
    "modelmerger_bake_in_vae",
    "modelmerger_refresh_bake_in_vae",
    "modelmerger_discard_weights",
    "modelmerger_save_metadata",
    "modelmerger_add_recipe",
    "modelmerger_copy_metadata",
    "modelmerger_merge",
    "modelmerger_results_container",
    "modelmerger_results_panel",
    "modelmerger_result",
}
HIRES_OFF = [False, "Latent", 0, 0.7, 2, 0, 0, "Use same sampler", "Use same scheduler", "", ""]
# the merge button's inputs after A, B, C: method, M, float16, custom name, format, config, VAE, discard, metadata x4
WEIGHTED = ["Weighted sum", 0.3, False, "", "safetensors", 0, "None", "", True, True, True, "{}"]


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    from tests.fixtures.checkpoints import build_tiny_checkpoint

    root = tmp_path_factory.mktemp("models")
    return build_tiny_checkpoint(root / "a.safetensors", seed=1), build_tiny_checkpoint(root / "b.safetensors", seed=2)


@pytest.fixture
def app(tmp_path, two_models):
    data = tmp_path / "data"
    for path in two_models:
        install_checkpoint(path, data)
    ctx = make_ctx(data)
    yield ctx, create_ui(ctx)
    ctx.jobs.shutdown()


def choices(dropdown) -> list[str]:
    return [c[0] if isinstance(c, tuple | list) else c for c in dropdown.choices]


def test_the_tab_has_a1111_ids_and_comes_after_png_info(app):
    ctx, demo = app
    blocks = components_by_id(demo)
    assert A1111_IDS <= blocks.keys()
    tabs = [b.elem_id for b in blocks["tabs"].children]
    assert tabs[tabs.index("tab_pnginfo") + 1] == "tab_modelmerger"
    assert choices(blocks["modelmerger_primary_model_name"]) == ["a.safetensors", "b.safetensors"]
    assert blocks["modelmerger_interp_method"].value == "Weighted sum"
    assert blocks["modelmerger_checkpoint_format"].value == "safetensors"
    assert blocks["modelmerger_interp_amount"].value == 0.3
    assert choices(blocks["modelmerger_bake_in_vae"]) == ["None"]

    describe = handler(demo, "modelmerger_interp_method", "change")
    assert "A + (B − C) × M" in describe.fn("Add difference")
    hide = handler(demo, "modelmerger_checkpoint_format", "change")
    assert hide.fn("ckpt").visible is False and hide.fn("safetensors").visible is True


@pytest.mark.slow
def test_merge_lists_the_new_checkpoint_with_its_hash_and_generates_from_it(app):
    ctx, demo = app
    merge = handler(demo, "modelmerger_merge", "click")
    out = outputs_by_id(merge, call(merge, "a.safetensors", "b.safetensors", None, *WEIGHTED))

    path = ctx.paths.sd_models_dir / "0.7(a) + 0.3(b).safetensors"
    assert f"Checkpoint saved to {path}" in out["modelmerger_result"]
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    title = f"0.7(a) + 0.3(b).safetensors [{sha[:10]}]"
    assert f"Listed as {title}." in out["modelmerger_result"]
    # every picker offers it, the top bar's included; A and B are shown under their new (hashed) titles
    for key in ("modelmerger_primary_model_name", "setting_sd_model_checkpoint"):
        assert title in choices(out[key])
    assert out["modelmerger_primary_model_name"].value.startswith("a.safetensors [")
    assert out["modelmerger_tertiary_model_name"].value is None

    import webui

    client = TestClient(webui.create_app(ctx), base_url=LOCAL)
    listed = {m["title"]: m for m in client.get("/sdapi/v1/sd-models").json()}
    assert listed[title]["hash"] == sha[:10] and listed[title]["sha256"] == sha
    assert listed[title]["model_name"] == "0.7(a) + 0.3(b)"

    # the top bar picks it; txt2img generates from it through the real queue and processing core
    select = handler(demo, "setting_sd_model_checkpoint", "input")
    _, problem = select.fn(title)
    assert problem == ""
    request = txt2img.build_request(*HIRES_OFF, "a cube", "", "Euler", "Automatic", 2, 64, 64, 1, 1, 5, 7)
    merged = runner.run_generation(ctx, request, poll=0.05)
    assert merged.error == "" and merged.images[0].size == (64, 64)
    assert f"Model hash: {sha[:10]}, Model: 0.7(a) + 0.3(b)" in merged.info

    select.fn("a.safetensors")
    plain = runner.run_generation(ctx, request, poll=0.05)
    assert "Model: a," in plain.info
    assert np.abs(np.asarray(merged.images[0], float) - np.asarray(plain.images[0], float)).mean() > 1


def test_mistakes_are_messages_and_write_nothing(app):
    ctx, demo = app
    merge = handler(demo, "modelmerger_merge", "click")
    before = sorted(p.name for p in ctx.paths.data_dir.rglob("*.safetensors"))

    def result(*values):
        return outputs_by_id(merge, call(merge, *values))["modelmerger_result"]

    escaped = WEIGHTED.copy()
    escaped[3] = "../../outside"
    assert "Error merging checkpoints: The custom name" in result("a.safetensors", "b.safetensors", None, *escaped)
    assert (
        "Secondary model (B) &#x27;gone.safetensors&#x27; is not in the checkpoint list; choose one of: "
        "a.safetensors, b.safetensors" in result("a.safetensors", "gone.safetensors", None, *WEIGHTED)
    )
    add_difference = ["Add difference", *WEIGHTED[1:]]
    assert "Choose the Tertiary model (C)" in result("a.safetensors", "b.safetensors", None, *add_difference)
    assert sorted(p.name for p in ctx.paths.data_dir.rglob("*.safetensors")) == before


def test_read_metadata_and_refresh(app, tmp_path):
    ctx, demo = app
    read = handler(demo, "modelmerger_read_metadata", "click")
    assert json.loads(read.fn("a.safetensors", "b.safetensors", "not listed")) == {"format": "pt"}

    (ctx.paths.sd_models_dir / "a.safetensors").rename(ctx.paths.sd_models_dir / "renamed.safetensors")
    refresh = handler(demo, "refresh_checkpoint_B", "click")
    updated = refresh.fn("b.safetensors")
    assert choices(updated) == ["b.safetensors", "renamed.safetensors"] and updated.value == "b.safetensors"

    (ctx.paths.vae_dir / "x.safetensors").write_bytes(b"")
    vae = handler(demo, "modelmerger_refresh_bake_in_vae", "click")
    assert choices(vae.fn("None")) == ["None", "x.safetensors"]


def test_the_merge_goes_into_the_ckpt_dir_folder(tmp_path, two_models):
    """--ckpt-dir: where A1111 writes merges (the first checkpoint folder), also when it is reached through a link."""
    real = tmp_path / "real"
    real.mkdir()
    for path in two_models:
        (real / path.name).write_bytes(path.read_bytes())
    (tmp_path / "linked").symlink_to(real)
    ctx = make_ctx(tmp_path / "data", "--ckpt-dir", str(tmp_path / "linked"))
    try:
        merge = handler(create_ui(ctx), "modelmerger_merge", "click")
        values = [*WEIGHTED]
        values[3] = "mine"
        out = outputs_by_id(merge, call(merge, "a.safetensors", "b.safetensors", None, *values))
        assert (real / "mine.safetensors").is_file()
        assert "Listed as mine.safetensors [" in out["modelmerger_result"]
        assert not list((tmp_path / "data" / "models" / "Stable-diffusion").glob("*.safetensors"))
    finally:
        ctx.jobs.shutdown()
