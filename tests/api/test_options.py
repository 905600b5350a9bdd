"""GET/POST /sdapi/v1/options as A1111 clients use them: every A1111 key, type checks, restricted keys, folders."""

from __future__ import annotations

import json
import threading

from sdui.settings.a1111_only import A1111_ONLY_DEFAULTS
from sdui.settings.definitions import builtin_registry
from tests.helpers import install_checkpoint

# Keys of A1111 1.10 that clients and extensions are known to read or write (SillyTavern, webuiapi, A1111's own API
# tests, sd-webui-controlnet, adetailer), with A1111's default where it is fixed.
A1111_KEYS = {
    "samples_save": True,
    "samples_format": "png",
    "send_seed": True,
    "send_size": True,
    "sd_vae": "Automatic",
    "sd_lora": "None",
    "CLIP_stop_at_last_layers": 1,
    "eta_noise_seed_delta": 0,
    "img2img_color_correction": False,
    "inpainting_mask_weight": 1.0,
    "initial_noise_multiplier": 1.0,
    "face_restoration_model": "CodeFormer",
    "upscaler_for_img2img": None,
    "realesrgan_enabled_models": ["R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B"],
    "ESRGAN_tile": 192,
    "sd_checkpoints_limit": 1,
    "sd_hypernetwork": "None",
    "outdir_txt2img_samples": "outputs/txt2img-images",
    "outdir_extras_samples": "outputs/extras-images",
    "live_previews_enable": True,
    "show_progress_every_n_steps": 10,
    "enable_pnginfo": True,
    "save_txt": False,
    "jpeg_quality": 80,
    "emphasis": "Original",
    "tiling": False,
    "token_merging_ratio": 0.0,
    "sd_checkpoint_hash": "",
    "disabled_extensions": [],
    "disable_all_extensions": "none",
    "interrogate_clip_num_beams": 1,
    "control_net_unit_count": 3,  # the ControlNet extension's key and default: ControlNet is built in
}


def test_get_options_lists_every_a1111_key_with_a1111s_default(make_client, data_dir):
    _, client = make_client(data_dir)
    options = client.get("/sdapi/v1/options").json()
    for key, default in A1111_KEYS.items():
        assert key in options, key
        assert options[key] == default, key
    assert "sd_model_checkpoint" in options
    assert options["randn_source"] == "CPU"  # ours differs on purpose: a seed gives the same image on every machine
    # ours adds the VAE and clip skip to the top bar, as the issue asks
    assert options["quicksettings_list"] == ["sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers"]
    assert options["show_progress_type"] == "Approx cheap"  # A1111: "Approx NN"; ours costs nothing on any device
    assert len(options) >= 290  # A1111 1.10 with its built-in extensions lists about 300


def test_post_options_type_checks_a1111_keys_and_keeps_them(make_client, data_dir):
    ctx, client = make_client(data_dir)
    assert client.post("/sdapi/v1/options", json={"send_seed": False, "sd_vae": "None"}).status_code == 200
    options = client.get("/sdapi/v1/options").json()
    assert options["send_seed"] is False and options["sd_vae"] == "None"
    saved = json.loads(ctx.paths.config_file.read_text())
    assert saved["send_seed"] is False

    response = client.post("/sdapi/v1/options", json={"send_size": False, "ESRGAN_tile": "large"})
    assert response.status_code == 422
    assert "ESRGAN_tile" in response.json()["detail"] and "whole number" in response.json()["detail"]
    assert client.get("/sdapi/v1/options").json()["send_size"] is True  # nothing of a refused request is kept


def test_a_client_posting_back_all_it_read_succeeds(make_client, data_dir):
    """webuiapi and SillyTavern read the options, change one and may send all of them back."""
    _, client = make_client(data_dir)
    options = client.get("/sdapi/v1/options").json()
    options["jpeg_quality"] = 90
    assert client.post("/sdapi/v1/options", json=options).status_code == 200
    assert client.get("/sdapi/v1/options").json()["jpeg_quality"] == 90


def test_restricted_keys_are_ignored_through_the_api_as_in_a1111(make_client, data_dir):
    _, client = make_client(data_dir)
    response = client.post("/sdapi/v1/options", json={"api_forbid_local_requests": False, "send_seed": False})
    assert response.status_code == 200
    options = client.get("/sdapi/v1/options").json()
    assert options["api_forbid_local_requests"] is True and options["send_seed"] is False


def test_unknown_keys_are_kept_as_sent(make_client, data_dir):
    ctx, client = make_client(data_dir)
    assert client.post("/sdapi/v1/options", json={"my_extension_key": [1, "two"]}).status_code == 200
    assert client.get("/sdapi/v1/options").json()["my_extension_key"] == [1, "two"]
    assert json.loads(ctx.paths.config_file.read_text())["my_extension_key"] == [1, "two"]


def test_output_folders_outside_the_data_folder_are_refused_through_the_api(make_client, data_dir, tmp_path):
    ctx, client = make_client(data_dir)
    outside = tmp_path / "elsewhere"
    for value in (str(outside), "../escaped", "~/pictures"):
        response = client.post("/sdapi/v1/options", json={"outdir_samples": value})
        assert response.status_code == 422, value
        assert "outdir_samples" in response.json()["detail"] and "inside" in response.json()["detail"]
    response = client.post(
        "/sdapi/v1/txt2img", json={"prompt": "x", "steps": 1, "override_settings": {"outdir_grids": str(outside)}}
    )
    assert response.status_code == 422 and "outdir_grids" in response.json()["detail"]
    assert not outside.exists()
    assert client.post("/sdapi/v1/options", json={"outdir_samples": "outputs/mine"}).status_code == 200
    assert client.get("/sdapi/v1/options").json()["outdir_samples"] == "outputs/mine"


def test_sd_model_checkpoint_names_the_checkpoint_while_it_loads(make_client, data_dir, tiny_sd1_checkpoint):
    install_checkpoint(tiny_sd1_checkpoint, data_dir, "a.safetensors")
    ctx, client = make_client(data_dir)
    entered, release = threading.Event(), threading.Event()
    real_loader = ctx.store.loader

    def slow_loader(path, policy):  # the real loader, held at its start so the test can look in between
        entered.set()
        release.wait(30)
        return real_loader(path, policy)

    ctx.store.loader = slow_loader
    thread = ctx.store.load_in_background()
    try:
        assert entered.wait(30)
        assert ctx.store.current is None
        assert client.get("/sdapi/v1/options").json()["sd_model_checkpoint"].startswith("a.safetensors")
    finally:
        release.set()
        thread.join(60)
    assert ctx.store.current_info.name == "a.safetensors"


def test_inert_keys_never_replace_a_setting_this_program_honours():
    registry = builtin_registry()
    for key, info in registry.items():
        assert info.inert == (key in A1111_ONLY_DEFAULTS), key
    assert not registry["samples_format"].inert and registry["send_seed"].inert
