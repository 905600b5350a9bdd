"""Hypernetworks through the API (`<hypernet:name:multiplier>`): a one-layer file equals merging its affine map into
every cross-attention's key and value projections by hand; A1111's layer layouts (activation, layer norm) load; the
next job without it is the baseline exactly; a missing name is told."""

from __future__ import annotations

import json

import numpy as np
import torch

from tests.helpers import decode_png, install_checkpoint, small


def image(client, prompt):
    answer = client.post("/sdapi/v1/txt2img", json=small(prompt=prompt, negative_prompt="", seed=11)).json()
    return np.asarray(decode_png(answer["images"][0])).astype(int), json.loads(answer["info"])


def cross_attentions(unet):
    return [m for name, m in unet.named_modules() if name.endswith("attn2")]


def test_hypernetwork_equals_the_projections_merged_by_hand(make_client, data_dir, tiny_sd1_checkpoint):
    install_checkpoint(tiny_sd1_checkpoint, data_dir, "tiny.safetensors")
    ctx, client = make_client(data_dir)
    baseline, _ = image(client, "a cat")
    unet = ctx.store.current.unet
    dim = unet.config.cross_attention_dim
    g = torch.Generator().manual_seed(4)
    wk, bk, wv, bv = (
        torch.randn(dim, dim, generator=g) * 0.2,
        torch.randn(dim, generator=g) * 0.2,
        torch.randn(dim, dim, generator=g) * 0.2,
        torch.randn(dim, generator=g) * 0.2,
    )
    folder = data_dir / "models" / "hypernetworks"
    folder.mkdir(parents=True, exist_ok=True)
    a1111 = {
        "layer_structure": [1, 1],
        "activation_func": "linear",
        "is_layer_norm": False,
        "use_dropout": False,
        "activate_output": False,
        "last_layer_dropout": False,
        "name": "h",
        "step": 100,
    }
    torch.save(
        {**a1111, dim: [{"linear.0.weight": wk, "linear.0.bias": bk}, {"linear.0.weight": wv, "linear.0.bias": bv}]},
        folder / "h.pt",
    )

    m = 0.6
    saved = []
    with torch.no_grad():
        for attn in cross_attentions(unet):
            saved.append((attn, attn.to_k, attn.to_v))
            for name, w, b in (("to_k", wk, bk), ("to_v", wv, bv)):
                own = getattr(attn, name).weight
                merged = torch.nn.Linear(dim, own.shape[0])
                merged.weight.copy_(own @ (torch.eye(dim) + m * w))
                merged.bias.copy_(m * own @ b)
                setattr(attn, name, merged)
    by_hand, _ = image(client, "a cat")
    for attn, k, v in saved:
        attn.to_k, attn.to_v = k, v

    with_h, info = image(client, "<hypernet:h:0.6> a cat")
    assert np.abs(by_hand - baseline).max() > 5 and np.abs(with_h - by_hand).max() <= 1
    assert info["notes"] == []
    again, _ = image(client, "a cat")
    assert np.array_equal(again, baseline)

    # A1111's layout of [1, 2, 1] with relu and layer norm: linear.0, (relu), linear.2 = norm, linear.3, linear.4
    def mlp_state():
        return {
            "linear.0.weight": torch.randn(2 * dim, dim, generator=g) * 0.1,
            "linear.0.bias": torch.zeros(2 * dim),
            "linear.2.weight": torch.ones(2 * dim),
            "linear.2.bias": torch.zeros(2 * dim),
            "linear.3.weight": torch.randn(dim, 2 * dim, generator=g) * 0.1,
            "linear.3.bias": torch.zeros(dim),
            "linear.4.weight": torch.ones(dim),
            "linear.4.bias": torch.zeros(dim),
        }

    deep = {**a1111, "layer_structure": [1, 2, 1], "activation_func": "relu", "is_layer_norm": True}
    torch.save({**deep, dim: [mlp_state(), mlp_state()]}, folder / "deep.pt")
    changed, info = image(client, "<hypernet:deep:1> a cat")
    assert info["notes"] == [] and np.abs(changed - baseline).max() > 0

    _, info = image(client, "<hypernet:nope:1> a cat")
    assert "Hypernetworks not found: nope" in info["notes"]
