"""LoRA/LyCORIS module math against the formulas written out here (LoRA, LoCon with a Tucker mid, LoHa, LoKr, full
diff), the names of every layer of SD1 and SDXL models in kohya's both layouts, and the exact restore."""

from __future__ import annotations

import pytest
import torch

from sdui.core.lora import LoraFormatError, activate, group_modules, model_targets, module_delta, restore
from sdui.models.ldm_unet_names import ldm_names

g = torch.Generator().manual_seed(0)


def load_tiny_model(arch: str, folder):
    """A tiny checkpoint of `arch` loaded as a user's file is (random weights, real key names)."""
    from sdui.devices import DevicePolicy
    from sdui.models.loading import load_sd_model
    from tests.fixtures.checkpoints import build_tiny_checkpoint

    path = build_tiny_checkpoint(folder / f"{arch}.safetensors", arch=arch)
    return load_sd_model(path, DevicePolicy(torch.device("cpu"), torch.float32, torch.float32))


def r(*shape):
    return torch.randn(*shape, generator=g)


def test_lora_and_locon():
    down, up = r(4, 10), r(6, 4)
    parts = {"lora_down.weight": down, "lora_up.weight": up, "alpha": torch.tensor(2.0)}
    assert torch.allclose(module_delta(parts, torch.Size([6, 10])), up @ down * 0.5)
    conv_down, conv_up = r(4, 3, 3, 3), r(5, 4, 1, 1)
    parts = {"lora_down.weight": conv_down, "lora_up.weight": conv_up}  # no alpha: scale 1
    expected = torch.einsum("or,rikl->oikl", conv_up.flatten(1), conv_down)
    assert torch.allclose(module_delta(parts, torch.Size([5, 3, 3, 3])), expected, atol=1e-5)
    mid = r(4, 4, 3, 3)
    parts = {
        "lora_down.weight": r(4, 3, 1, 1),
        "lora_up.weight": conv_up,
        "lora_mid.weight": mid,
        "alpha": torch.tensor(4.0),
    }
    expected = torch.einsum("or,rskl,si->oikl", conv_up.flatten(1), mid, parts["lora_down.weight"].flatten(1))
    assert torch.allclose(module_delta(parts, torch.Size([5, 3, 3, 3])), expected, atol=1e-5)


def test_loha_lokr_and_full():
    w1a, w1b, w2a, w2b = r(6, 2), r(2, 10), r(6, 2), r(2, 10)
    parts = {"hada_w1_a": w1a, "hada_w1_b": w1b, "hada_w2_a": w2a, "hada_w2_b": w2b, "alpha": torch.tensor(1.0)}
    assert torch.allclose(module_delta(parts, torch.Size([6, 10])), (w1a @ w1b) * (w2a @ w2b) / 2, atol=1e-5)
    w1, w2a, w2b = r(2, 5), r(3, 1), r(1, 2)
    parts = {"lokr_w1": w1, "lokr_w2_a": w2a, "lokr_w2_b": w2b, "alpha": torch.tensor(3.0)}
    assert torch.allclose(module_delta(parts, torch.Size([6, 10])), torch.kron(w1, w2a @ w2b) * 3.0, atol=1e-5)
    diff = r(6, 10)
    assert torch.equal(module_delta({"diff": diff}, torch.Size([6, 10])), diff)


def test_ia3_scales_the_weight_per_channel():
    weight, scales = r(6, 10), r(6)
    parts = {"weight": scales, "on_input": torch.tensor(False)}
    assert torch.allclose(module_delta(parts, weight.shape, weight), weight * scales[:, None])
    scales = r(10)
    parts = {"weight": scales, "on_input": torch.tensor(True)}
    assert torch.allclose(module_delta(parts, weight.shape, weight), weight * scales[None, :])
    with pytest.raises(LoraFormatError, match="does not fit"):
        module_delta({"weight": r(7), "on_input": torch.tensor(False)}, weight.shape, weight)


def test_misfits_and_unknown_types_are_format_errors():
    with pytest.raises(LoraFormatError, match="does not fit"):
        module_delta({"lora_down.weight": r(2, 3), "lora_up.weight": r(4, 2)}, torch.Size([4, 5]))
    with pytest.raises(LoraFormatError, match="unknown module type"):
        module_delta({"oft_blocks": r(2, 2)}, torch.Size([2, 2]))


def test_file_layouts_group_by_module():
    groups = group_modules(
        {
            "lora_unet_a_b.lora_up.weight": r(1),
            "lora_unet_a_b.alpha": r(1),
            "unet.down_blocks.0.x.lora_A.weight": r(1),
            "text_encoder_2.text_model.y.lora_B.weight": r(1),
            "mid_block.attentions.0.processor.to_out_lora.down.weight": r(1),
        }
    )
    assert set(groups) == {
        "lora_unet_a_b",
        ("unet", "down_blocks.0.x"),
        ("te2", "text_model.y"),
        ("unet", "mid_block.attentions.0.to_out.0"),
    }
    assert set(groups["lora_unet_a_b"]) == {"lora_up.weight", "alpha"}


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_every_layer_has_its_kohya_names_in_both_layouts(arch, tmp_path):
    from tests.fixtures.checkpoints import tiny_state_dict

    model = load_tiny_model(arch, tmp_path)
    targets = model_targets(model)
    sd = tiny_state_dict(arch, "base", "epsilon", 0)
    for name, module in model.unet.named_modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            ldm = ldm_names(model.unet)[name]
            assert f"model.diffusion_model.{ldm}.weight" in sd
            assert targets["lora_unet_" + ldm.replace(".", "_")].module is module
            assert targets["lora_unet_" + name.replace(".", "_")].module is module
    prefixes = ["lora_te1_", "lora_te2_"] if arch == "sdxl" else ["lora_te_"]
    for prefix, encoder in zip(prefixes, model.text_encoders, strict=True):
        q = encoder.get_submodule([n for n, _ in encoder.named_modules() if n.endswith("layers.0.self_attn.q_proj")][0])
        assert targets[prefix + "text_model_encoder_layers_0_self_attn_q_proj"].module is q


def test_restore_is_exact_and_the_same_set_is_not_applied_twice(tmp_path):
    from safetensors.torch import save_file

    model = load_tiny_model("sd1", tmp_path)
    layer = model.unet.get_submodule("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k")
    before = layer.weight.detach().clone()
    path = tmp_path / "x.safetensors"
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    save_file(
        {
            f"{name}.lora_down.weight": r(2, layer.weight.shape[1]),
            f"{name}.lora_up.weight": r(layer.weight.shape[0], 2),
        },
        str(path),
    )
    reads = []

    def read(p):
        reads.append(p)
        from sdui.core.lora import read_network

        return read_network(p)

    report = activate(model, [(path, 1.0, 0.3)], read=read)
    assert report.names == ["x.safetensors"] and not torch.equal(layer.weight, before)
    activate(model, [(path, 1.0, 0.3)], read=read)
    assert len(reads) == 1  # the same set: nothing to do
    activate(model, [], read=read)
    assert torch.equal(layer.weight, before)
    activate(model, [(path, 1.0, 0.3)], read=read)
    restore(model)
    assert torch.equal(layer.weight, before)
    # before the model store moves a model between devices, every kept change is taken back
    activate(model, [(path, 1.0, 0.3)], read=read)
    model.undo_applied()
    assert torch.equal(layer.weight, before) and model.applied["lora"].key == ()
    activate(model, [(path, 1.0, 0.3)], read=read)
    assert not torch.equal(layer.weight, before)


def test_an_sdxl_file_in_kohya_sgm_layout_changes_exactly_its_layers(tmp_path):
    from safetensors.torch import save_file

    model = load_tiny_model("sdxl", tmp_path)
    names = ldm_names(model.unet)
    unet_layer = "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v"
    te1, te2 = model.text_encoders
    q1 = [m for n, m in te1.named_modules() if n.endswith("layers.0.self_attn.q_proj")][0]
    fc2 = [m for n, m in te2.named_modules() if n.endswith("layers.1.mlp.fc2")][0]
    targets = {
        "lora_unet_" + names[unet_layer].replace(".", "_"): model.unet.get_submodule(unet_layer),
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj": q1,
        "lora_te2_text_model_encoder_layers_1_mlp_fc2": fc2,
    }
    tensors, expected = {}, {}
    for key, module in targets.items():
        down, up = r(2, module.weight.shape[1]), r(module.weight.shape[0], 2)
        tensors |= {f"{key}.lora_down.weight": down, f"{key}.lora_up.weight": up, f"{key}.alpha": torch.tensor(1.0)}
        multiplier = 0.5 if key.startswith("lora_unet") else 0.8
        expected[key] = module.weight.detach().clone() + multiplier * 0.5 * (up @ down)
    save_file(tensors, str(tmp_path / "xl.safetensors"))
    report = activate(model, [(tmp_path / "xl.safetensors", 0.8, 0.5)])
    assert report.names == ["xl.safetensors"] and report.skipped == []
    for key, module in targets.items():
        assert torch.allclose(module.weight, expected[key], atol=1e-5), key


def test_norm_and_full_modules_change_weight_and_bias_by_the_multiplier(tmp_path):
    from safetensors.torch import save_file

    model = load_tiny_model("sd1", tmp_path)
    norm = model.unet.get_submodule("down_blocks.0.attentions.0.norm")
    out = model.unet.get_submodule("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0")
    before = {
        k: t.detach().clone() for k, t in (("nw", norm.weight), ("nb", norm.bias), ("ow", out.weight), ("ob", out.bias))
    }
    w_norm, b_norm, diff, diff_b = r(*norm.weight.shape), r(*norm.bias.shape), r(*out.weight.shape), r(*out.bias.shape)
    save_file(
        {
            "lora_unet_down_blocks_0_attentions_0_norm.w_norm": w_norm,
            "lora_unet_down_blocks_0_attentions_0_norm.b_norm": b_norm,
            "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0.diff": diff,
            "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0.diff_b": diff_b,
        },
        str(tmp_path / "full.safetensors"),
    )
    activate(model, [(tmp_path / "full.safetensors", 1.0, 0.5)])
    assert torch.allclose(norm.weight, before["nw"] + 0.5 * w_norm) and torch.allclose(
        norm.bias, before["nb"] + 0.5 * b_norm
    )
    assert torch.allclose(out.weight, before["ow"] + 0.5 * diff) and torch.allclose(
        out.bias, before["ob"] + 0.5 * diff_b
    )
    activate(model, [])
    assert torch.equal(norm.bias, before["nb"]) and torch.equal(out.weight, before["ow"])
