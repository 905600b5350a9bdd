"""Text encoders from single-file checkpoints in the original layout: round trips, real-size configs, bad files."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from sdui.errors import CheckpointError
from sdui.models.text_encoder_loading import load_text_encoders
from tests.fixtures.text_encoder_ldm import text_encoders_to_ldm, tiny_text_encoders

ARCHS = ("sd1", "sd2", "sdxl", "sdxl-refiner")
EXPECTED_TYPES = {"sd1": [CLIPTextModel], "sd2": [CLIPTextModel],
                  "sdxl": [CLIPTextModel, CLIPTextModelWithProjection], "sdxl-refiner": [CLIPTextModelWithProjection]}
EXPECTED_PADS = {"sd1": [49407], "sd2": [0], "sdxl": [49407, 0], "sdxl-refiner": [0]}


def sample_ids(batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 49406, (batch, 77), generator=g)
    ids[:, 0] = 49406
    ids[0, 20] = 49407
    ids[0, 21:] = 0
    ids[1, 76] = 49407
    return ids


def assert_same_outputs(reference, loaded, ids):
    with torch.no_grad():
        a = reference(ids, output_hidden_states=True)
        b = loaded(ids, output_hidden_states=True)
    assert len(a.hidden_states) == len(b.hidden_states)
    for x, y in zip(a.hidden_states, b.hidden_states):
        assert torch.equal(x, y)
    assert torch.equal(a.last_hidden_state, b.last_hidden_state)
    if hasattr(reference, "text_projection"):
        assert torch.equal(a.text_embeds, b.text_embeds)


@pytest.mark.parametrize("arch", ARCHS)
def test_round_trip_through_safetensors(tmp_path, arch):
    originals = tiny_text_encoders(arch)
    path = tmp_path / "te.safetensors"
    save_file(text_encoders_to_ldm(arch, originals), str(path))
    encoders, tokenizers = load_text_encoders(load_file(str(path)), arch)
    assert [type(e) for e in encoders] == EXPECTED_TYPES[arch]
    assert [t.pad_token_id for t in tokenizers] == EXPECTED_PADS[arch]
    for original, loaded in zip(originals, encoders, strict=True):
        assert loaded.config.num_hidden_layers == original.config.num_hidden_layers
        assert loaded.config.hidden_act == original.config.hidden_act
        assert loaded.config.projection_dim == original.config.projection_dim
        assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
        assert_same_outputs(original, loaded, sample_ids())


def test_sd2_drops_the_unused_last_block():
    originals = tiny_text_encoders("sd2")
    sd = text_encoders_to_ldm("sd2", originals)
    assert "cond_stage_model.model.transformer.resblocks.2.attn.in_proj_weight" in sd   # written: 3 blocks
    (encoder,), _ = load_text_encoders(sd, "sd2")
    assert encoder.config.num_hidden_layers == 2
    # the dropped block and the projection are really ignored: changing them changes nothing
    sd["cond_stage_model.model.transformer.resblocks.2.mlp.c_fc.weight"] += 1.0
    sd["cond_stage_model.model.text_projection"] *= 3.0
    (again,), _ = load_text_encoders(sd, "sd2")
    assert_same_outputs(encoder, again, sample_ids())


def test_old_sd1_layout_without_text_model_level():
    (original,) = tiny_text_encoders("sd1")
    sd = {k.replace("transformer.text_model.", "transformer."): v for k, v in text_encoders_to_ldm("sd1", [original]).items()}
    assert not any(".text_model." in k for k in sd)
    (encoder,), _ = load_text_encoders(sd, "sd1")
    assert_same_outputs(original, encoder, sample_ids())


def test_dtype_and_other_weights_ignored():
    (original,) = tiny_text_encoders("sd1")
    sd = text_encoders_to_ldm("sd1", [original])
    sd["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(1)    # other components are not our business
    (encoder,), _ = load_text_encoders({k: v.half() if v.is_floating_point() else v for k, v in sd.items()},
                                       "sd1", dtype=torch.bfloat16)
    assert {p.dtype for p in encoder.parameters()} == {torch.bfloat16}


def _meta_open_clip(prefix: str, hidden: int, layers: int, projection: int) -> dict:
    def m(*shape):
        return torch.empty(*shape, device="meta", dtype=torch.float16)
    sd = {prefix + "token_embedding.weight": m(49408, hidden), prefix + "positional_embedding": m(77, hidden),
          prefix + "ln_final.weight": m(hidden), prefix + "ln_final.bias": m(hidden),
          prefix + "text_projection": m(hidden, projection), prefix + "logit_scale": m(())}
    for i in range(layers):
        b = f"{prefix}transformer.resblocks.{i}."
        sd |= {b + "ln_1.weight": m(hidden), b + "ln_1.bias": m(hidden), b + "ln_2.weight": m(hidden),
               b + "ln_2.bias": m(hidden), b + "attn.in_proj_weight": m(3 * hidden, hidden),
               b + "attn.in_proj_bias": m(3 * hidden), b + "attn.out_proj.weight": m(hidden, hidden),
               b + "attn.out_proj.bias": m(hidden), b + "mlp.c_fc.weight": m(4 * hidden, hidden),
               b + "mlp.c_fc.bias": m(4 * hidden), b + "mlp.c_proj.weight": m(hidden, 4 * hidden),
               b + "mlp.c_proj.bias": m(hidden)}
    return sd


def _meta_clip_l(prefix: str) -> dict:
    shapes = {"embeddings.token_embedding.weight": (49408, 768), "embeddings.position_embedding.weight": (77, 768),
              "final_layer_norm.weight": (768,), "final_layer_norm.bias": (768,)}
    for i in range(12):
        b = f"encoder.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes[b + f"self_attn.{name}.weight"], shapes[b + f"self_attn.{name}.bias"] = (768, 768), (768,)
        for name in ("layer_norm1", "layer_norm2"):
            shapes[b + f"{name}.weight"], shapes[b + f"{name}.bias"] = (768,), (768,)
        shapes[b + "mlp.fc1.weight"], shapes[b + "mlp.fc1.bias"] = (3072, 768), (3072,)
        shapes[b + "mlp.fc2.weight"], shapes[b + "mlp.fc2.bias"] = (768, 3072), (768,)
    return {f"{prefix}text_model.{k}": torch.empty(s, device="meta") for k, s in shapes.items()}


def test_real_size_configs_are_derived_from_shapes():
    # meta tensors: real shapes, no memory
    (l,), _ = load_text_encoders(_meta_clip_l("cond_stage_model.transformer."), "sd1", dtype=torch.float16)
    assert (l.config.hidden_size, l.config.num_hidden_layers, l.config.num_attention_heads,
            l.config.intermediate_size, l.config.hidden_act) == (768, 12, 12, 3072, "quick_gelu")
    (h,), _ = load_text_encoders(_meta_open_clip("cond_stage_model.model.", 1024, 24, 1024), "sd2")
    assert (h.config.hidden_size, h.config.num_hidden_layers, h.config.num_attention_heads,
            h.config.intermediate_size, h.config.hidden_act) == (1024, 23, 16, 4096, "gelu")
    sd = _meta_clip_l("conditioner.embedders.0.transformer.") | _meta_open_clip("conditioner.embedders.1.model.",
                                                                                 1280, 32, 1280)
    (l, g), _ = load_text_encoders(sd, "sdxl")
    assert l.config.num_hidden_layers == 12
    assert (g.config.hidden_size, g.config.num_hidden_layers, g.config.num_attention_heads,
            g.config.intermediate_size, g.config.projection_dim) == (1280, 32, 20, 5120, 1280)
    assert g.text_projection.weight.shape == (1280, 1280)


# ---- files that cannot be used ----

def _sd(arch="sd2"):
    return text_encoders_to_ldm(arch, tiny_text_encoders(arch))


@pytest.mark.parametrize("arch", ARCHS)
def test_missing_text_encoder_is_reported(arch):
    with pytest.raises(CheckpointError, match="no text encoder weights under"):
        load_text_encoders({"model.diffusion_model.out.2.weight": torch.zeros(1)}, arch)


def test_missing_tensor_is_reported():
    sd = _sd("sd1")
    del sd["cond_stage_model.transformer.text_model.encoder.layers.1.mlp.fc2.bias"]
    with pytest.raises(CheckpointError, match=r"missing 1 tensors \(e\.g\. encoder\.layers\.1\.mlp\.fc2\.bias\)"):
        load_text_encoders(sd, "sd1")


def test_missing_layer_is_reported():
    sd = {k: v for k, v in _sd("sdxl").items() if ".resblocks.0." not in k}
    with pytest.raises(CheckpointError, match="missing transformer layers"):
        load_text_encoders(sd, "sdxl")


def test_unknown_tensor_is_reported():
    sd = _sd("sd2")
    sd["cond_stage_model.model.mystery.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match="Unknown text encoder weights.*mystery.weight"):
        load_text_encoders(sd, "sd2")
    sd = _sd("sd1")
    sd["cond_stage_model.transformer.text_model.encoder.layers.0.extra.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match="1 unknown tensors"):
        load_text_encoders(sd, "sd1")


def test_inconsistent_shapes_are_reported():
    sd = _sd("sdxl-refiner")
    key = "conditioner.embedders.0.model.transformer.resblocks.1.mlp.c_fc.weight"
    sd[key] = torch.zeros(sd[key].shape[0] + 1, sd[key].shape[1])
    with pytest.raises(CheckpointError, match="inconsistent tensor shapes"):
        load_text_encoders(sd, "sdxl-refiner")


def test_missing_essential_tensor_is_reported():
    sd = _sd("sdxl-refiner")
    del sd["conditioner.embedders.0.model.text_projection"]
    with pytest.raises(CheckpointError, match="no 'conditioner.embedders.0.model.text_projection'"):
        load_text_encoders(sd, "sdxl-refiner")


def test_unknown_arch():
    with pytest.raises(ValueError, match="unknown architecture"):
        load_text_encoders({}, "sd3")
