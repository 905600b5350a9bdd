"""Architecture / variant / prediction-type detection on original-layout state dicts (A1111's rules)."""
from __future__ import annotations

import pytest
import torch

from sdui.errors import CheckpointError
from sdui.models.detection import ModelSpec, detect, spec_from_yaml, v_prediction_score, yaml_beside
from sdui.models.unet_vae_loading import load_unet
from tests.fixtures.checkpoints import V_TEST_TARGET, tiny_state_dict
from tests.fixtures.ldm_unet_vae import tiny_unet

UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"

CASES = [("sd1", "base", "epsilon"), ("sd1", "inpaint", "epsilon"), ("sd2", "base", "epsilon"),
         ("sd2", "base", "v_prediction"), ("sd2", "inpaint", "epsilon"), ("sd2", "depth", "epsilon"),
         ("sdxl", "base", "epsilon"), ("sdxl", "inpaint", "epsilon"), ("sdxl-refiner", "base", "epsilon")]


@pytest.mark.parametrize("arch,variant,prediction_type", CASES)
def test_detects_every_supported_kind(arch, variant, prediction_type):
    assert detect(tiny_state_dict(arch, variant, prediction_type)) == ModelSpec(arch, variant, prediction_type)


def test_v_probe_measures_the_unet_output():
    unet = tiny_unet("sd2")
    before = v_prediction_score(unet)
    with torch.no_grad():
        unet.conv_out.bias -= 5.0
    assert v_prediction_score(unet) == pytest.approx(before - 5.0, abs=1e-4)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_sd2_fixture_sits_where_intended_on_the_probe(prediction_type):
    sd = tiny_state_dict("sd2", "base", prediction_type)
    assert "v_pred" not in sd                   # decided by running the UNet, not by a marker
    score = v_prediction_score(load_unet(sd, "sd2"))
    assert score == pytest.approx(V_TEST_TARGET[prediction_type], abs=1e-3)


def test_v_pred_marker_wins_over_the_probe_and_works_for_any_arch():
    assert detect(tiny_state_dict("sd2", "base", "epsilon", v_pred_key=True)).prediction_type == "v_prediction"
    assert detect(tiny_state_dict("sdxl", "base", "v_prediction")) == ModelSpec("sdxl", "base", "v_prediction")
    assert detect(tiny_state_dict("sd2", "inpaint", "v_prediction")).prediction_type == "v_prediction"


def test_only_sd2_base_is_probed():
    # an SD1 UNet whose output would read as "v" on the probe is still epsilon: A1111 never probes SD1
    sd = tiny_state_dict("sd1")
    sd["model.diffusion_model.out.2.bias"] = sd["model.diffusion_model.out.2.bias"] - 50.0
    assert v_prediction_score(load_unet(sd, "sd1")) < -10
    assert detect(sd).prediction_type == "epsilon"


@pytest.fixture(scope="module")
def sd1():
    return tiny_state_dict("sd1")


def test_unknown_layouts_are_refused(sd1):
    with pytest.raises(CheckpointError, match="does not look like a Stable Diffusion 1.x/2.x/XL checkpoint"):
        detect({})
    vae_only = {k: v for k, v in sd1.items() if k.startswith("first_stage_model.")}
    with pytest.raises(CheckpointError, match="has no UNet.*does not look like a Stable Diffusion"):
        detect(vae_only)
    unet_only = {k: v for k, v in sd1.items() if k.startswith("model.diffusion_model.")}
    with pytest.raises(CheckpointError, match="no text encoder we know.*does not look like a Stable Diffusion"):
        detect(unet_only)
    with pytest.raises(CheckpointError, match="Stable Diffusion 3"):
        detect({**sd1, "model.diffusion_model.x_embedder.proj.weight": torch.zeros(1)})


def test_unsupported_input_channels_are_refused(sd1):
    pix2pix = dict(sd1, **{UNET_IN: torch.zeros(32, 8, 3, 3)})
    with pytest.raises(CheckpointError, match="instruct-pix2pix"):
        detect(pix2pix)
    sd1_depth = dict(sd1, **{UNET_IN: torch.zeros(32, 5, 3, 3)})
    with pytest.raises(CheckpointError, match="sd1 UNet with 5 input channels"):
        detect(sd1_depth)


LDM_V_YAML = """
model:
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    parameterization: "v"
    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params: {in_channels: 4, out_channels: 4, model_channels: 320}
    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder
      params: {freeze: true, layer: penultimate}
"""
SGM_V_YAML = """
model:
  target: sgm.models.diffusion.DiffusionEngine
  params:
    denoiser_config:
      target: sgm.modules.diffusionmodules.denoiser.DiscreteDenoiser
      params:
        scaling_config: {target: sgm.modules.diffusionmodules.denoiser_scaling.VScaling}
    network_config:
      target: sgm.modules.diffusionmodules.openaimodel.UNetModel
      params: {in_channels: 4}
    conditioner_config:
      target: sgm.modules.GeneralConditioner
      params:
        emb_models:
          - {target: sgm.modules.encoders.modules.FrozenCLIPEmbedder, input_key: txt}
          - {target: sgm.modules.encoders.modules.FrozenOpenCLIPEmbedder2, input_key: txt}
          - {target: sgm.modules.encoders.modules.ConcatTimestepEmbedderND, input_key: original_size_as_tuple}
"""


def test_yaml_sets_the_prediction_type(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(LDM_V_YAML)
    assert spec_from_yaml(path, tiny_state_dict("sd2", "base", "epsilon")) == ModelSpec("sd2", "base", "v_prediction")
    path.write_text(LDM_V_YAML.replace('parameterization: "v"', 'parameterization: "eps"'))
    assert spec_from_yaml(path, tiny_state_dict("sd2", "base", "v_prediction")).prediction_type == "epsilon"
    path.write_text(SGM_V_YAML)
    assert spec_from_yaml(path, tiny_state_dict("sdxl")) == ModelSpec("sdxl", "base", "v_prediction")


def test_yaml_that_contradicts_the_weights_is_refused(tmp_path, sd1):
    path = tmp_path / "m.yaml"
    path.write_text(LDM_V_YAML)
    with pytest.raises(CheckpointError, match="m.yaml describes a sd2 model but the checkpoint's weights are sd1"):
        spec_from_yaml(path, sd1)
    path.write_text(LDM_V_YAML.replace("FrozenOpenCLIPEmbedder", "FrozenCLIPEmbedder").replace("in_channels: 4", "in_channels: 9"))
    with pytest.raises(CheckpointError, match="9 input channels.*takes 4"):
        spec_from_yaml(path, sd1)


def test_broken_yaml_is_refused_with_its_name(tmp_path, sd1):
    path = tmp_path / "broken.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(CheckpointError, match="broken.yaml .*could not be read"):
        spec_from_yaml(path, sd1)
    path.write_text("just a string\n")
    with pytest.raises(CheckpointError, match="broken.yaml"):
        spec_from_yaml(path, sd1)


def test_yaml_beside_uses_the_same_basename(tmp_path):
    ckpt = tmp_path / "foo.safetensors"
    assert yaml_beside(ckpt) is None
    (tmp_path / "foo.safetensors.yaml").write_text("x: 1")
    assert yaml_beside(ckpt) is None
    (tmp_path / "foo.yaml").write_text("x: 1")
    assert yaml_beside(ckpt) == tmp_path / "foo.yaml"
