"""LoRA through the API, as a user calls it (`<lora:name:multiplier>` in the prompt), against weights merged by hand:
W + multiplier * alpha / rank * up @ down for each layer the test's own file names (kohya names in the diffusers and
in the LDM layout, a 3x3 conv, a text encoder layer; the same in diffusers/PEFT layout). The tags never reach the
text encoder, weight 0 and the job after are the baseline exactly, unknown names and misfits are told."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tests.helpers import decode_png, install_checkpoint, small

RANK, ALPHA = 2, 1.0
# (kohya module name, our model's component, its module path): the names a real file uses, written by hand
LAYERS = [
    (
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k",
        "unet",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k",
    ),
    ("lora_unet_input_blocks_1_1_proj_in", "unet", "down_blocks.0.attentions.0.proj_in"),  # LDM layout, 1x1 conv
    ("lora_unet_output_blocks_0_0_in_layers_2", "unet", "up_blocks.0.resnets.0.conv1"),  # LDM layout, 3x3 conv
    ("lora_te_text_model_encoder_layers_0_self_attn_q_proj", "te", "text_model.encoder.layers.0.self_attn.q_proj"),
]


def module_of(model, component, path):
    if component == "unet":
        return model.unet.get_submodule(path)
    encoder = model.text_encoders[0]  # transformers' CLIPTextModel, with or without its text_model level
    return encoder.get_submodule(path if hasattr(encoder, "text_model") else path.removeprefix("text_model."))


def factors(model, seed: int) -> dict:
    """{kohya name: (down, up)} for LAYERS, shaped as each layer's weight needs, random but fixed."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, component, path in LAYERS:
        w = module_of(model, component, path).weight
        if w.dim() == 4:
            down = torch.randn(RANK, w.shape[1], w.shape[2], w.shape[3], generator=g) * 0.3
            up = torch.randn(w.shape[0], RANK, 1, 1, generator=g) * 0.3
        else:
            down = torch.randn(RANK, w.shape[1], generator=g) * 0.3
            up = torch.randn(w.shape[0], RANK, generator=g) * 0.3
        out[name] = (down, up)
    return out


def write_kohya(path, parts: dict, alias: str = "") -> None:
    tensors = {}
    for name, (down, up) in parts.items():
        tensors[f"{name}.lora_down.weight"] = down.contiguous()
        tensors[f"{name}.lora_up.weight"] = up.contiguous()
        tensors[f"{name}.alpha"] = torch.tensor(ALPHA)
    save_file(tensors, str(path), metadata={"ss_output_name": alias} if alias else None)


def write_peft(path, parts: dict) -> None:
    tensors = {}
    for name, component, module_path in LAYERS:
        down, up = parts[name]
        prefix = "unet" if component == "unet" else "text_encoder"
        tensors[f"{prefix}.{module_path}.lora_A.weight"] = down.contiguous()
        tensors[f"{prefix}.{module_path}.lora_B.weight"] = up.contiguous()
        tensors[f"{prefix}.{module_path}.alpha"] = torch.tensor(ALPHA)
    save_file(tensors, str(path))


def merged_by_hand(model, parts_and_multipliers):
    """Add each file's change to the weights; returns what restores them."""
    saved = {}
    with torch.no_grad():
        for parts, multiplier in parts_and_multipliers:
            for name, component, path in LAYERS:
                module = module_of(model, component, path)
                saved.setdefault(module, module.weight.detach().clone())
                down, up = parts[name]
                delta = (up.flatten(1) @ down.flatten(1)).reshape(module.weight.shape)
                module.weight += multiplier * (ALPHA / RANK) * delta
    return saved


def restore(saved):
    with torch.no_grad():
        for module, weight in saved.items():
            module.weight.copy_(weight)


def image(client, prompt, **body):
    response = client.post("/sdapi/v1/txt2img", json=small(prompt=prompt, negative_prompt="", seed=7, **body))
    assert response.status_code == 200, response.text
    answer = response.json()
    return np.asarray(decode_png(answer["images"][0])).astype(int), json.loads(answer["info"])


@pytest.fixture
def lora_app(make_client, data_dir, tiny_sd1_checkpoint):
    install_checkpoint(tiny_sd1_checkpoint, data_dir, "tiny.safetensors")
    ctx, client = make_client(data_dir)
    baseline, _ = image(client, "a cat")  # loads the model
    folder = data_dir / "models" / "Lora"
    folder.mkdir(parents=True, exist_ok=True)
    return ctx, client, baseline, folder


def test_lora_equals_weights_merged_by_hand_and_is_taken_back(lora_app):
    ctx, client, baseline, folder = lora_app
    model = ctx.store.current
    one, two = factors(model, 1), factors(model, 2)
    write_kohya(folder / "style.safetensors", one, alias="my_style")
    write_peft(folder / "other.safetensors", two)

    saved = merged_by_hand(model, [(one, 0.7)])
    by_hand, _ = image(client, "a cat")
    restore(saved)
    saved = merged_by_hand(model, [(one, 0.7), (two, -0.4)])
    both_by_hand, _ = image(client, "a cat")
    restore(saved)
    assert np.abs(by_hand - baseline).max() > 10  # the change is visible at all

    with_lora, info = image(client, "<lora:style:0.7> a cat")
    assert np.abs(with_lora - by_hand).max() <= 1
    text = info["infotexts"][0]
    assert text.startswith("<lora:style:0.7> a cat\n")  # the infotext keeps the prompt as written
    data = (folder / "style.safetensors").read_bytes()
    tensor_sha = hashlib.sha256(data[8 + int.from_bytes(data[:8], "little") :]).hexdigest()
    assert f'Lora hashes: "style: {tensor_sha[:12]}"' in text

    # by alias, and a second file in the diffusers/PEFT layout; the two add up
    both, _ = image(client, "a cat <lora:my_style:0.7> <lora:other:-0.4>")
    assert np.abs(both - both_by_hand).max() <= 1

    # the next job without a LoRA is the baseline, bit for bit; weight 0 too
    again, info = image(client, "a cat")
    assert np.array_equal(again, baseline) and "Lora hashes" not in info["infotexts"][0]
    zero, _ = image(client, "a cat <lora:style:0>")
    assert np.array_equal(zero, baseline)


def test_separate_text_encoder_and_unet_multipliers(lora_app):
    ctx, client, baseline, folder = lora_app
    model = ctx.store.current
    write_kohya(folder / "style.safetensors", factors(model, 1))
    te_only, _ = image(client, "a cat <lora:style:1:0>")
    named, _ = image(client, "a cat <lora:style:unet=0:te=1>")
    assert np.array_equal(te_only, named) and not np.array_equal(te_only, baseline)
    unet_only, _ = image(client, "a cat <lora:style:0:1>")
    assert not np.array_equal(unet_only, te_only)


def test_unknown_names_and_misfits_are_told_and_the_job_runs(lora_app):
    ctx, client, baseline, folder = lora_app
    (folder / "broken.safetensors").write_bytes(b"not a safetensors file")
    save_file(
        {
            "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": torch.zeros(2, 3),
            "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": torch.zeros(3, 2),
        },
        str(folder / "xl.safetensors"),
    )
    result, info = image(client, "a cat <lora:nope:1> <lora:broken:1> <lora:xl:1>")
    assert np.array_equal(result, baseline)
    notes = " | ".join(info["notes"])
    assert "Networks not found: nope" in notes
    assert "broken.safetensors" in notes and "xl.safetensors does not fit this model (sd1)" in notes
    assert "Lora hashes" not in info["infotexts"][0]


def test_the_loras_route_lists_names_and_aliases(lora_app):
    ctx, client, _, folder = lora_app
    write_kohya(folder / "style.safetensors", factors(ctx.store.current, 1), alias="my_style")
    listed = client.get("/sdapi/v1/loras").json()
    assert [(e["name"], e["alias"]) for e in listed] == [("style", "my_style")]
    assert listed[0]["metadata"] == {"ss_output_name": "my_style"}


def test_hires_pass_uses_the_networks_of_a_different_hires_prompt(lora_app):
    ctx, client, _, folder = lora_app
    write_kohya(folder / "style.safetensors", factors(ctx.store.current, 1))
    hires = {
        "enable_hr": True,
        "hr_scale": 1.5,
        "hr_upscaler": "Latent",
        "denoising_strength": 0.6,
        "width": 64,
        "height": 64,
    }
    plain, _ = image(client, "a cat", **hires)
    second_only, info = image(client, "a cat", hr_prompt="<lora:style:1> a cat", **hires)
    both, _ = image(client, "<lora:style:1> a cat", **hires)
    assert not np.array_equal(second_only, plain) and not np.array_equal(second_only, both)
    assert 'Hires prompt: "<lora:style:1> a cat"' in info["infotexts"][0]
    again, _ = image(client, "a cat", **hires)
    assert np.array_equal(again, plain)
