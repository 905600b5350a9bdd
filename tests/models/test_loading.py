"""Whole files on disk -> SDModel through load_sd_model, as a user's download would go; and files that must be refused."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from sdui.devices import DevicePolicy
from sdui.errors import CheckpointError
from sdui.models.loading import load_sd_model, read_state_dict
from tests.helpers import CPU32
from tests.fixtures.checkpoints import build_tiny_checkpoint, tiny_components

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

CASES = [("sd1", "base", "epsilon"), ("sd1", "inpaint", "epsilon"), ("sd2", "base", "epsilon"),
         ("sd2", "base", "v_prediction"), ("sd2", "depth", "epsilon"), ("sdxl", "base", "epsilon"),
         ("sdxl-refiner", "base", "epsilon"), ("sdxl", "inpaint", "epsilon")]


def _assert_same_weights(loaded: torch.nn.Module, original: torch.nn.Module):
    want, got = original.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys()
    assert [k for k in want if not torch.equal(want[k], got[k])] == []


def _assert_model_equals_components(model, arch, variant, prediction_type, seed=0):
    parts = tiny_components(arch, variant, prediction_type, seed)
    _assert_same_weights(model.unet, parts["unet"])
    _assert_same_weights(model.vae, parts["vae"])
    assert len(model.text_encoders) == len(parts["text_encoders"]) == len(model.tokenizers)
    for loaded, original in zip(model.text_encoders, parts["text_encoders"]):
        assert type(loaded) is type(original)
        _assert_same_weights(loaded, original)


@pytest.mark.parametrize("arch,variant,prediction_type", CASES)
def test_every_kind_loads_detected_and_bit_identical(tmp_path, arch, variant, prediction_type):
    path = build_tiny_checkpoint(tmp_path / f"{arch}-{variant}.safetensors", arch, variant, prediction_type)
    model = load_sd_model(path, CPU32)

    assert (model.arch, model.variant, model.prediction_type) == (arch, variant, prediction_type)
    assert model.config_source == "detected"
    _assert_model_equals_components(model, arch, variant, prediction_type)
    assert model.unet.config.in_channels == {"base": 4, "inpaint": 9, "depth": 5}[variant]
    assert not model.unet.training and not model.vae.training
    assert model.vae.config.scaling_factor == (0.13025 if arch.startswith("sdxl") else 0.18215)
    assert model.vae_scale_factor == 8 and model.latent_channels == 4

    schedule = model.scheduler_config
    assert schedule["prediction_type"] == prediction_type
    assert (schedule["num_train_timesteps"], schedule["beta_start"], schedule["beta_end"], schedule["beta_schedule"]) == \
        (1000, 0.00085, 0.012, "scaled_linear")


def test_ckpt_file_loads_like_safetensors(tmp_path):
    path = build_tiny_checkpoint(tmp_path / "model.ckpt", "sd2", "base", "v_prediction", fmt="ckpt", seed=4)
    assert set(torch.load(path, weights_only=True)) == {"state_dict", "global_step"}   # lightning-style nesting
    model = load_sd_model(path, CPU32)
    assert (model.arch, model.variant, model.prediction_type) == ("sd2", "base", "v_prediction")
    _assert_model_equals_components(model, "sd2", "base", "v_prediction", seed=4)


def test_read_state_dict_unnests_and_keeps_only_tensors(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"state_dict": {"a": torch.ones(2), "b": torch.zeros(1)}, "global_step": 3}, path)
    got = read_state_dict(path)
    assert got.keys() == {"a", "b"} and torch.equal(got["a"], torch.ones(2))
    flat = tmp_path / "flat.safetensors"
    save_file({"a": torch.ones(2)}, str(flat))
    assert read_state_dict(flat).keys() == {"a"}


def test_lightning_era_ckpt_loads_without_running_its_extras(tmp_path, monkeypatch):
    """sd-v1-4.ckpt style: a ModelCheckpoint callback object and numpy counters beside the weights. They are
    replaced by inert stand-ins (pytorch_lightning is not even installed) and dropped."""
    import sys
    import types

    import numpy as np

    created = []
    module = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")

    class ModelCheckpoint:
        def __setstate__(self, state):       # would run if the real class were used
            created.append(state)

    ModelCheckpoint.__module__, ModelCheckpoint.__qualname__ = module.__name__, "ModelCheckpoint"
    module.ModelCheckpoint = ModelCheckpoint
    for name in ("pytorch_lightning", "pytorch_lightning.callbacks"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    path = tmp_path / "sd-v1-4.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "global_step": np.int64(470000),
                "callbacks": {ModelCheckpoint: {"best_model_score": torch.tensor(0.1)}},
                "checkpoint_callback": ModelCheckpoint()}, path)
    for name in ("pytorch_lightning", "pytorch_lightning.callbacks", module.__name__):
        monkeypatch.delitem(sys.modules, name)

    got = read_state_dict(path)
    assert got.keys() == {"w"} and torch.equal(got["w"], torch.ones(2))
    assert created == []


def test_same_name_yaml_overrides_detection(tmp_path):
    path = build_tiny_checkpoint(tmp_path / "model.safetensors", "sd2", "base", "epsilon")
    (tmp_path / "model.yaml").write_text(
        "model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n  params:\n    parameterization: v\n"
        "    cond_stage_config:\n      target: ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder\n")
    model = load_sd_model(path, CPU32)
    assert model.prediction_type == "v_prediction"
    assert model.scheduler_config["prediction_type"] == "v_prediction"
    assert model.config_source == str(tmp_path / "model.yaml")
    # without the yaml the probe says epsilon
    (tmp_path / "model.yaml").unlink()
    assert load_sd_model(path, CPU32).prediction_type == "epsilon"


def test_scheduler_config_files_hold_the_training_schedule():
    for arch, prediction_type in [("sd1", "epsilon"), ("sd2", "epsilon"), ("sd2-v", "v_prediction"),
                                  ("sdxl", "epsilon"), ("sdxl-refiner", "epsilon")]:
        config = json.loads((CONFIGS / arch / "scheduler_config.json").read_text())
        assert config == {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                          "beta_schedule": "scaled_linear", "trained_betas": None, "prediction_type": prediction_type,
                          "steps_offset": 1, "clip_sample": False, "set_alpha_to_one": False, "skip_prk_steps": True,
                          "timestep_spacing": "leading"}, arch


def test_policy_dtypes_are_applied(tmp_path):
    path = build_tiny_checkpoint(tmp_path / "m.safetensors", "sdxl")
    model = load_sd_model(path, DevicePolicy(torch.device("cpu"), torch.float16, torch.float32))
    assert {p.dtype for p in model.unet.parameters()} == {torch.float16}
    assert {p.dtype for p in model.vae.parameters()} == {torch.float32}
    assert {p.dtype for e in model.text_encoders for p in e.parameters()} == {torch.float16}


# ------------------------------------------------------------------------------------------------ bad files
@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    return build_tiny_checkpoint(tmp_path_factory.mktemp("good") / "good.safetensors", "sd1")


def _assert_refused(path, *hints):
    with pytest.raises(CheckpointError) as info:
        load_sd_model(path, CPU32)
    message = info.value.message
    assert path.name in message
    for hint in hints:
        assert hint in message
    return message


def test_zero_byte_file_is_refused(tmp_path):
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    assert "empty (0 bytes)" in _assert_refused(path, "re-download it")


def test_truncated_safetensors_is_refused(tmp_path, good_file):
    data = good_file.read_bytes()
    path = tmp_path / "half.safetensors"
    path.write_bytes(data[: len(data) // 2])
    _assert_refused(path, "re-download it")


def test_corrupt_safetensors_header_is_refused(tmp_path, good_file):
    data = bytearray(good_file.read_bytes())
    data[8:40] = b"\x00garbage-not-json" + bytes(15)
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(bytes(data))
    _assert_refused(path, "re-download it")
    random = tmp_path / "random.safetensors"
    random.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)).numpy().tobytes())
    _assert_refused(random, "re-download it")


def test_truncated_ckpt_is_refused(tmp_path):
    good = build_tiny_checkpoint(tmp_path / "good.ckpt", "sd1", fmt="ckpt")
    data = good.read_bytes()
    path = tmp_path / "half.ckpt"
    path.write_bytes(data[: len(data) // 2])
    _assert_refused(path, "re-download it", "prefer .safetensors")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a pickle at all, just text")
    _assert_refused(garbage, "re-download it", "prefer .safetensors")


class _CreatesFile:
    """Unpickling this object opens (creates) a file: a stand-in for a .ckpt that runs code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_ckpt_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "payload": _CreatesFile(marker)}, path)

    # the payload is live: a plain unpickle runs it
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()

    message = _assert_refused(path, "prefer .safetensors")
    assert "run code" in message
    assert not marker.exists()


def test_file_without_stable_diffusion_weights_is_refused(tmp_path):
    path = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down.weight": torch.ones(2)}, str(path))
    with pytest.raises(CheckpointError, match="does not look like a Stable Diffusion 1.x/2.x/XL checkpoint"):
        load_sd_model(path, CPU32)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_sd_model(tmp_path / "nope.safetensors", CPU32)


# ------------------------------------------------------------------------------------------ reference configs
TEXT_ENCODER_FILES = {"sd1": ["text_encoder_config.json"], "sd2": ["text_encoder_config.json"],
                      "sd2-v": ["text_encoder_config.json"],
                      "sdxl": ["text_encoder_config.json", "text_encoder_2_config.json"],
                      "sdxl-refiner": ["text_encoder_config.json"]}


@pytest.mark.parametrize("config_dir", sorted(TEXT_ENCODER_FILES))
def test_reference_text_encoder_configs_survive_the_single_file_round_trip(config_dir):
    """Full-size text encoders built from configs/<arch>/ (meta device: no memory), written in LDM layout, load
    back with the same shapes: the files a benchmark builds from these configs are what real checkpoints hold."""
    from accelerate import init_empty_weights
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from sdui.models.text_encoder_loading import load_text_encoders
    from tests.fixtures.text_encoder_ldm import text_encoders_to_ldm

    arch = config_dir.removesuffix("-v")
    originals = []
    for name in TEXT_ENCODER_FILES[config_dir]:
        config = json.loads((CONFIGS / config_dir / name).read_text())
        cls = CLIPTextModelWithProjection if config["architectures"] == ["CLIPTextModelWithProjection"] else CLIPTextModel
        with init_empty_weights():
            originals.append(cls(CLIPTextConfig.from_dict(config)))
    loaded, _ = load_text_encoders(text_encoders_to_ldm(arch, originals), arch)
    for original, model in zip(originals, loaded, strict=True):
        assert type(model) is type(original)
        assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in original.state_dict().items()}
        assert model.config.hidden_act == original.config.hidden_act
