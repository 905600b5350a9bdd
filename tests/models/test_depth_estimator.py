"""The depth model inside SD 2 depth checkpoints (MiDaS DPT-Hybrid) and the depth conditioning built from it.

Weights are tiny random models written in the real `depth_model.model.*` layout; correctness is checked against
transformers' own DPT forward and against MiDaS' forward written by hand on the MiDaS names (tests/fixtures/midas_ldm).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sdui.errors import CheckpointError
from sdui.models.depth_estimator import (
    DEPTH_PREFIX,
    DepthEstimator,
    depth_estimator_config,
    depth_from_image,
    depth_to_pil,
    estimate_depth,
    load_depth_estimator_from_checkpoint,
    load_depth_estimator_from_folder,
    net_input_size,
    normalize_depth,
)
from tests.fixtures.midas_ldm import (
    FULL,
    TINY,
    midas_hybrid_shapes,
    midas_reference_depth,
    tiny_dpt,
    tiny_midas_state_dict,
)

NET = TINY["grid"] * 16          # the tiny model's training size (MiDaS: 384)


@pytest.fixture(scope="module")
def midas_sd() -> dict:
    return tiny_midas_state_dict(seed=0)


@pytest.fixture(scope="module")
def estimator(midas_sd) -> DepthEstimator:
    return load_depth_estimator_from_checkpoint(dict(midas_sd))


def _images(n: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, height, width, generator=generator) * 2 - 1


# ------------------------------------------------------------------------------------------------ loading
def test_tiny_checkpoint_layout_is_midas_layout(midas_sd):
    """The fixture's inverse mapping writes exactly the names and shapes of ldm's MiDaS definition."""
    spec = midas_hybrid_shapes(TINY)
    assert {k: tuple(v.shape) for k, v in midas_sd.items()} == spec
    assert all(k.startswith(DEPTH_PREFIX) for k in midas_sd)


def test_loaded_estimator_equals_original_dpt(estimator):
    original = tiny_dpt(seed=0)
    x = _images(2, NET, NET)
    with torch.no_grad():
        expected = original(pixel_values=x).predicted_depth
        got = estimator(x)
    assert got.shape == (2, NET, NET)
    assert expected.std() > 0.1                   # a live output, not a dead ReLU
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(NET, NET), (NET, NET + 32), (NET + 64, NET)])
def test_loaded_estimator_equals_midas_forward(estimator, midas_sd, size):
    """Non-square inputs too: MiDaS resizes its position embeddings to the token grid."""
    x = _images(1, *size, seed=1)
    with torch.no_grad():
        got = estimator(x)
    expected = midas_reference_depth(midas_sd, x)
    assert got.shape == (1, *size)
    torch.testing.assert_close(got, expected, atol=5e-5, rtol=0)


def test_depth_model_loads_from_a_checkpoint_file(tmp_path):
    """Merged into a tiny SD2 depth checkpoint as the lead's fixture will do, written and read like a user's file."""
    from safetensors.torch import save_file

    from sdui.models.loading import read_state_dict
    from tests.fixtures.checkpoints import tiny_state_dict
    sd = tiny_state_dict("sd2", "depth")
    sd.update(tiny_midas_state_dict(seed=0))
    path = tmp_path / "tiny-512-depth.safetensors"
    save_file(sd, str(path))
    estimator = load_depth_estimator_from_checkpoint(read_state_dict(path))
    x = _images(1, NET, NET, seed=6)
    with torch.no_grad():
        torch.testing.assert_close(estimator(x), tiny_dpt(seed=0)(pixel_values=x).predicted_depth, atol=1e-5, rtol=0)


def test_full_size_config_derived_from_shapes():
    sd = {k: torch.empty(shape, device="meta") for k, shape in midas_hybrid_shapes(FULL).items()}
    config = depth_estimator_config(sd)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 12, 12)
    assert config.intermediate_size == 3072
    assert config.readout_type == "project" and config.is_hybrid
    assert list(config.neck_hidden_sizes) == [256, 512, 768, 768]
    assert config.fusion_hidden_size == 256
    assert (config.image_size, config.patch_size) == (384, 16)
    assert list(config.backbone_out_indices[2:]) == [8, 11]          # MiDaS hooks [0, 1, 8, 11]
    assert list(config.backbone_featmap_shape) == [1, 1024, 24, 24]
    bit = config.backbone_config
    assert (bit.embedding_size, list(bit.hidden_sizes), list(bit.depths), bit.num_groups) == (64, [256, 512, 1024],
                                                                                               [3, 4, 9], 32)
    assert config.layer_norm_eps == 1e-6
    # and every full-size weight finds its place (built on the meta device: no memory)
    model = load_depth_estimator_from_checkpoint(sd)
    assert sum(p.numel() for p in model.parameters()) == sum(
        int(np.prod(s)) for k, s in midas_hybrid_shapes(FULL).items() if ".model.head." not in k)


def test_no_depth_keys_gives_none():
    assert load_depth_estimator_from_checkpoint({"model.diffusion_model.out.2.bias": torch.zeros(4)}) is None


def test_dtype_is_applied(midas_sd):
    model = load_depth_estimator_from_checkpoint(dict(midas_sd), dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert not any(p.requires_grad for p in model.parameters())


def test_truncated_depth_model_is_a_checkpoint_error(midas_sd):
    keys = sorted(midas_sd)
    truncated = {k: midas_sd[k] for k in keys[: len(keys) * 2 // 3]}
    with pytest.raises(CheckpointError, match="incomplete"):
        load_depth_estimator_from_checkpoint(truncated)


@pytest.mark.parametrize("missing", ["pretrained.model.blocks.1.attn.qkv.weight", "scratch.refinenet2.out_conv.bias",
                                     "pretrained.model.patch_embed.backbone.stages.1.blocks.1.norm2.weight",
                                     "scratch.output_conv.4.weight"])
def test_missing_weight_is_named(midas_sd, missing):
    sd = {k: v for k, v in midas_sd.items() if k != DEPTH_PREFIX + missing}
    with pytest.raises(CheckpointError) as error:
        load_depth_estimator_from_checkpoint(sd)
    assert DEPTH_PREFIX + missing in error.value.message
    assert "re-download" in error.value.message


def test_unknown_or_misshapen_weight_is_a_checkpoint_error(midas_sd):
    with pytest.raises(CheckpointError, match="not the MiDaS DPT-Hybrid.*scratch.refinenet5"):
        load_depth_estimator_from_checkpoint({**midas_sd, DEPTH_PREFIX + "scratch.refinenet5.out_conv.weight":
                                              torch.zeros(1)})
    key = DEPTH_PREFIX + "scratch.refinenet3.resConfUnit1.conv2.weight"
    with pytest.raises(CheckpointError, match="refinenet3.resConfUnit1.conv2.weight has shape"):
        load_depth_estimator_from_checkpoint({**midas_sd, key: torch.zeros(16, 16, 1, 1)})
    with pytest.raises(CheckpointError, match="not under 'depth_model.model.'"):
        load_depth_estimator_from_checkpoint({"depth_model.scratch.layer1_rn.weight": torch.zeros(1)})


def test_folder_model_equals_original(tmp_path):
    original = tiny_dpt(seed=3)
    folder = tmp_path / "models" / "depth" / "tiny-dpt"
    original.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3}))
    loaded = load_depth_estimator_from_folder(folder)
    x = _images(1, NET, NET, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), original(pixel_values=x).predicted_depth, atol=1e-5, rtol=0)
    assert loaded.net_size == NET


def test_folder_without_model_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        load_depth_estimator_from_folder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "dpt"}))
    with pytest.raises(CheckpointError, match="Cannot load the depth model"):
        load_depth_estimator_from_folder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "clip"}))
    with pytest.raises(CheckpointError, match="not a DPT"):
        load_depth_estimator_from_folder(tmp_path)


# ------------------------------------------------------------------------------------- the depth conditioning
@pytest.mark.parametrize("hw, expected", [((512, 512), (384, 384)), ((512, 768), (384, 576)),
                                          ((768, 512), (576, 384)), ((1024, 1024), (384, 384)),
                                          ((400, 1000), (384, 960)), ((600, 384), (608, 384))])
def test_net_input_size_is_ldm_minimal_resize(hw, expected):
    assert net_input_size(*hw, 384) == expected


def test_normalize_depth_formula():
    ramp = torch.arange(12, dtype=torch.float32).reshape(1, 1, 3, 4) * 0.5
    expected = 2.0 * (ramp - 0.0) / (5.5 - 0.0) - 1.0
    torch.testing.assert_close(normalize_depth(ramp), expected, atol=0, rtol=0)
    assert normalize_depth(ramp).min() == -1.0 and normalize_depth(ramp).max() == 1.0
    constant = torch.full((2, 1, 4, 4), 3.0)
    assert torch.equal(normalize_depth(constant), torch.full_like(constant, -1.0))
    # per image: each image of a batch spans its own range
    batch = torch.stack([ramp[0], ramp[0] * 10 + 7])
    out = normalize_depth(batch)
    assert out[0].min() == -1.0 and out[1].min() == -1.0


def test_estimate_depth_follows_ldm(estimator, midas_sd):
    """MiDaS transform (aspect kept, multiple of 32, bicubic), network, bicubic to the latent grid, per-image range."""
    images = _images(2, 80, 120, seed=4)        # -> network input 64x96 at the tiny model's 64
    got = estimate_depth(estimator, images, (10, 15))
    net_in = F.interpolate(images, size=(64, 96), mode="bicubic", align_corners=False)
    depth = midas_reference_depth(midas_sd, net_in).unsqueeze(1)
    depth = F.interpolate(depth, size=(10, 15), mode="bicubic", align_corners=False)
    low, high = depth.amin(dim=(1, 2, 3), keepdim=True), depth.amax(dim=(1, 2, 3), keepdim=True)
    expected = 2.0 * (depth - low) / (high - low) - 1.0
    assert got.shape == (2, 1, 10, 15) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=2e-4, rtol=0)
    for image in got:
        assert image.min() == -1.0 and image.max() == 1.0


def test_estimate_depth_rejects_non_image_batches(estimator):
    with pytest.raises(ValueError, match="N, 3, H, W"):
        estimate_depth(estimator, torch.zeros(3, 64, 64), (8, 8))


def test_depth_from_uploaded_image():
    ramp = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))       # dark left (far), bright right (near)
    depth = depth_from_image(Image.fromarray(ramp), (6, 8))
    assert depth.shape == (1, 1, 6, 8)
    assert depth.min() == -1.0 and depth.max() == 1.0
    assert torch.all(depth[0, 0, :, 1:] > depth[0, 0, :, :-1])            # still increasing left to right
    # RGB depth maps read as their gray level; 16-bit maps keep their precision
    rgb = depth_from_image(Image.fromarray(np.stack([ramp] * 3, axis=-1)), (6, 8))
    torch.testing.assert_close(rgb, depth, atol=1e-6, rtol=0)
    wide = Image.fromarray(ramp.astype(np.uint16) * 257)
    assert wide.mode.startswith("I;16")
    torch.testing.assert_close(depth_from_image(wide, (6, 8)), depth, atol=1e-5, rtol=0)
    flat = depth_from_image(Image.new("L", (32, 32), 128), (4, 4))
    assert torch.equal(flat, torch.full((1, 1, 4, 4), -1.0))


def test_depth_to_pil_round_trip(estimator):
    depth = estimate_depth(estimator, _images(1, 64, 64, seed=5), (8, 8))
    picture = depth_to_pil(depth[0])
    assert picture.mode == "L" and picture.size == (8, 8)
    pixels = np.asarray(picture)
    assert pixels.min() == 0 and pixels.max() >= 254
    np.testing.assert_array_equal(pixels, ((depth[0, 0].numpy() + 1) * 127.5).round().astype(np.uint8))
    back = depth_from_image(picture, (8, 8))
    torch.testing.assert_close(back, depth, atol=1.5 / 127.5, rtol=0)
    with pytest.raises(ValueError, match="one depth map"):
        depth_to_pil(torch.zeros(2, 1, 4, 4))
