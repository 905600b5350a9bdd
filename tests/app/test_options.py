"""Settings: defaults, casting and validation, callbacks, atomic save, reload, and surviving a corrupt config.json."""

import json
import threading
from types import SimpleNamespace

import pytest

from sdui.app.options import Options
from sdui.errors import InvalidRequestError, UserError
from sdui.settings import OptionInfo
from sdui.settings.definitions import MAX_IMAGE_PIXELS, builtin_registry


def test_defaults_and_attribute_access():
    opts = Options()
    assert opts.sd_model_checkpoint == "" and opts.get("sd_model_checkpoint") == ""
    assert opts.randn_source == "CPU"
    assert opts.CLIP_stop_at_last_layers == 1 and opts.eta_noise_seed_delta == 0
    assert opts.emphasis == "Original" and opts.samples_format == "png"
    assert opts.samples_save is True and opts.grid_save is True and opts.return_grid is True
    assert opts.outdir_txt2img_samples == "outputs/txt2img-images"
    assert opts.outdir_txt2img_grids == "outputs/txt2img-grids"
    assert opts.sd_checkpoint_cache == 0 and opts.max_image_pixels == MAX_IMAGE_PIXELS == 4096 * 4096
    assert opts.get("no_such_key") is None and opts.get("no_such_key", 5) == 5
    with pytest.raises(AttributeError, match="no setting named 'no_such_key'"):
        _ = opts.no_such_key
    # GET /sdapi/v1/options: every key, defaults for unset
    assert set(builtin_registry().defaults()) <= set(opts.data)
    assert json.loads(json.dumps(opts.data)) == opts.data


def test_defaults_are_not_shared_between_instances():
    a, b = Options(), Options()
    for opts in (a, b):
        opts.add_option("ext_list", OptionInfo(["sd_model_checkpoint"], "A list"))
    a.data["ext_list"].append("x")
    assert b.ext_list == ["sd_model_checkpoint"]
    assert a.registry["ext_list"].default == ["sd_model_checkpoint"]


def test_list_settings_take_lists_or_old_comma_text():
    opts = Options()
    opts.add_option("ext_list", OptionInfo(["sd_model_checkpoint"], "A list"))
    opts.set("ext_list", "sd_model_checkpoint, sd_vae")
    assert opts.ext_list == ["sd_model_checkpoint", "sd_vae"]
    opts.set("ext_list", ("a",))
    assert opts.ext_list == ["a"]


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("CLIP_stop_at_last_layers", "2", 2),
        ("CLIP_stop_at_last_layers", 3.0, 3),
        ("eta_noise_seed_delta", 31337, 31337),
        ("samples_save", "false", False),
        ("samples_save", 1, True),
        ("grid_save", "True", True),
        ("eta_ddim", 1, 1.0),
        ("initial_noise_multiplier", "0.5", 0.5),
        ("sd_model_checkpoint", "model.safetensors [0123456789]", "model.safetensors [0123456789]"),
        ("randn_source", "GPU", "GPU"),
        ("emphasis", "No norm", "No norm"),
    ],
)
def test_set_casts(key, value, expected):
    opts = Options()
    opts.set(key, value)
    assert opts.get(key) == expected and type(opts.get(key)) is type(expected)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("CLIP_stop_at_last_layers", "two", "Setting 'CLIP_stop_at_last_layers' expects a whole number, got 'two'"),
        ("CLIP_stop_at_last_layers", 2.5, "expects a whole number"),
        ("eta_noise_seed_delta", True, "expects a whole number"),
        ("samples_save", "maybe", "Setting 'samples_save' expects true or false"),
        ("eta_ddim", [1], "Setting 'eta_ddim' expects a finite number"),
        ("eta_ddim", float("nan"), "Setting 'eta_ddim' expects a finite number"),
        ("jpeg_quality", 101, "must be between 1 and 100; got 101"),
        ("outdir_samples", {"a": 1}, "Setting 'outdir_samples' expects text"),
        ("samples_format", "bmp", "Setting 'samples_format' must be one of 'png', 'jpg'"),
        ("CLIP_stop_at_last_layers", 0, "must be between 1 and 12; got 0"),
        ("max_image_pixels", 10, "must be at least 4096"),
    ],
)
def test_set_rejects_bad_values_with_a_message(key, value, message):
    opts = Options()
    before = opts.get(key)
    with pytest.raises(InvalidRequestError) as exc:
        opts.set(key, value)
    assert message in str(exc.value)
    assert exc.value.status_code == 422
    assert opts.get(key) == before


def test_unknown_randn_source_is_refused_clearly():
    opts = Options()
    with pytest.raises(
        InvalidRequestError, match="Setting 'randn_source' must be one of 'GPU', 'CPU', 'NV'; got 'TPU'"
    ):
        opts.set("randn_source", "TPU")
    assert opts.randn_source == "CPU"
    opts.set("randn_source", "NV")
    assert opts.randn_source == "NV"


def test_null_resets_to_default_and_unknown_keys_are_kept():
    opts = Options()
    opts.set("CLIP_stop_at_last_layers", 2)
    opts.set("CLIP_stop_at_last_layers", None)
    assert opts.CLIP_stop_at_last_layers == 1
    assert opts.set("some_extension_setting", {"free": ["form"]}) is True
    assert opts.data["some_extension_setting"] == {"free": ["form"]}
    assert opts.some_extension_setting == {"free": ["form"]}


def test_set_returns_whether_it_changed_and_runs_callbacks():
    opts = Options()
    calls = []
    opts.onchange("sd_model_checkpoint", lambda: calls.append(opts.sd_model_checkpoint))
    assert opts.set("sd_model_checkpoint", "a.safetensors") is True
    assert opts.set("sd_model_checkpoint", "a.safetensors") is False  # same value: no callback
    assert opts.set("sd_model_checkpoint", "b.safetensors", run_callbacks=False) is True
    assert calls == ["a.safetensors"]
    opts.onchange("emphasis", lambda: calls.append("now"), call=True)
    assert calls == ["a.safetensors", "now"]


def test_failing_callback_restores_the_old_value():
    opts = Options()
    opts.set("sd_model_checkpoint", "good.safetensors")

    def refuse():
        raise UserError(f"Checkpoint {opts.sd_model_checkpoint!r} not found")

    opts.onchange("sd_model_checkpoint", refuse)
    with pytest.raises(UserError, match="'missing.safetensors' not found"):
        opts.set("sd_model_checkpoint", "missing.safetensors")
    assert opts.sd_model_checkpoint == "good.safetensors"


def test_attribute_assignment_sets_without_callbacks():
    opts = Options()
    calls = []
    opts.onchange("eta_noise_seed_delta", lambda: calls.append(1))
    opts.eta_noise_seed_delta = "31337"
    assert opts.eta_noise_seed_delta == 31337 and calls == []
    with pytest.raises(AttributeError):
        opts.not_an_option = 1


def test_add_option_with_value_or_option_info():
    opts = Options()
    opts.add_option("my_ext_strength", 0.5)
    assert opts.my_ext_strength == 0.5 and opts.get_default("my_ext_strength") == 0.5
    opts.set("my_ext_strength", "0.75")
    assert opts.my_ext_strength == 0.75
    changed = []
    info = SimpleNamespace(default=True, label="Enable", onchange=lambda: changed.append(opts.my_ext_enabled))
    opts.add_option("my_ext_enabled", info)
    assert opts.my_ext_enabled is True and opts.data_labels["my_ext_enabled"].label == "Enable"
    opts.set("my_ext_enabled", "false")
    assert changed == [False]


def test_save_and_reload(tmp_path):
    path = tmp_path / "config.json"
    opts = Options(path)
    opts.set("CLIP_stop_at_last_layers", 2)
    opts.set("samples_format", "webp")
    opts.set("unknown_client_key", [1, 2])
    assert opts.save() == path
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved == {"CLIP_stop_at_last_layers": 2, "samples_format": "webp", "unknown_client_key": [1, 2]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]  # no temp file left behind
    again = Options(path)
    assert again.CLIP_stop_at_last_layers == 2 and again.samples_format == "webp"
    assert again.unknown_client_key == [1, 2] and again.randn_source == "CPU"


def test_save_replaces_atomically_under_concurrent_writers(tmp_path):
    path = tmp_path / "config.json"
    opts = Options(path)

    def writer(i):
        for j in range(20):
            opts.set(f"key_{i}", j)
            opts.save()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert {saved[f"key_{i}"] for i in range(4)} == {19}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_save_without_a_path_is_an_error():
    with pytest.raises(ValueError, match="needs a path"):
        Options().save()


@pytest.mark.parametrize("content", ["{not json", "[1, 2, 3]", "", '{"CLIP_stop_at_last_layers": 2'])
def test_corrupt_config_is_backed_up_and_defaults_used(tmp_path, caplog, content):
    path = tmp_path / "config.json"
    path.write_text(content, encoding="utf-8")
    opts = Options(path)
    assert opts.CLIP_stop_at_last_layers == 1
    assert (tmp_path / "config.json.bak").read_text(encoding="utf-8") == content
    assert "is corrupt" in caplog.text and "config.json.bak" in caplog.text
    opts.set("CLIP_stop_at_last_layers", 2)
    opts.save()
    assert json.loads(path.read_text(encoding="utf-8")) == {"CLIP_stop_at_last_layers": 2}


def test_bad_values_in_config_fall_back_per_key(tmp_path, caplog):
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "CLIP_stop_at_last_layers": "abc",
                "randn_source": "TPU",
                "samples_format": "jpg",
                "old_a1111_key": "kept",
                "sd_model_checkpoint": None,
            }
        ),
        encoding="utf-8",
    )
    opts = Options(path)
    assert opts.CLIP_stop_at_last_layers == 1 and opts.randn_source == "CPU"
    assert opts.samples_format == "jpg" and opts.old_a1111_key == "kept" and opts.sd_model_checkpoint == ""
    assert "CLIP_stop_at_last_layers" in caplog.text and "'TPU'" in caplog.text
    assert not (tmp_path / "config.json.bak").exists()


def test_frozen_settings_refuse_changes():
    opts = Options(frozen=True)
    with pytest.raises(UserError, match="frozen"):
        opts.set("CLIP_stop_at_last_layers", 2)
