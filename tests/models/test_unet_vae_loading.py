"""UNet/VAE from original-layout weights: configs read from the weights, keys converted by diffusers.

Two independent mappings meet here: our writer (diffusers -> LDM names, tests/fixtures/ldm_unet_vae.py) and
diffusers' single-file converter (LDM -> diffusers) driven by the config we derive. A round trip that gives back
the same tensors and the same outputs means both agree on every key.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, UNet2DConditionModel

from sdui.errors import CheckpointError
from sdui.models.unet_vae_loading import load_unet, load_vae, unet_config_from_state_dict, vae_config_from_state_dict
from tests.fixtures.ldm_unet_vae import tiny_unet, tiny_vae, unet_to_ldm, vae_to_ldm

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
P = "model.diffusion_model."
CASES = [("sd1", "base"), ("sd1", "inpaint"), ("sd2", "base"), ("sd2", "depth"), ("sdxl", "base"),
         ("sdxl", "inpaint"), ("sdxl-refiner", "base")]
DERIVED_UNET_KEYS = ("in_channels", "out_channels", "block_out_channels", "layers_per_block", "down_block_types",
                     "up_block_types", "cross_attention_dim", "attention_head_dim", "use_linear_projection",
                     "transformer_layers_per_block", "addition_embed_type", "addition_time_embed_dim",
                     "projection_class_embeddings_input_dim")


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _unet_inputs(unet, arch, seed=0):
    g = torch.Generator().manual_seed(seed)
    cfg = unet.config
    kwargs = {}
    if cfg.addition_embed_type == "text_time":
        n_ids = 5 if arch == "sdxl-refiner" else 6    # refiner: orig size, crop, aesthetic score
        pooled = cfg.projection_class_embeddings_input_dim - n_ids * cfg.addition_time_embed_dim
        kwargs["added_cond_kwargs"] = {"text_embeds": torch.randn(2, pooled, generator=g),
                                       "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64][:n_ids]] * 2)}
    return (torch.randn(2, cfg.in_channels, 8, 8, generator=g), torch.tensor([10, 700]),
            torch.randn(2, 5, cfg.cross_attention_dim, generator=g)), kwargs


@pytest.mark.parametrize("arch,variant", CASES)
def test_unet_round_trip_gives_identical_weights_and_outputs(arch, variant):
    original = tiny_unet(arch, variant, seed=3)
    ldm = unet_to_ldm(original)
    assert all(k.startswith(P) for k in ldm)
    loaded = load_unet(ldm, arch, torch.float32)

    want, got = original.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys()
    assert [k for k in want if not torch.equal(want[k], got[k])] == []
    for key in DERIVED_UNET_KEYS:
        assert _plain(loaded.config[key]) == _plain(original.config[key]), key

    args, kwargs = _unet_inputs(original, arch)
    with torch.no_grad():
        expected = original(*args, **kwargs).sample
        actual = loaded(*args, **kwargs).sample
    # same weights and structure; BLAS may round differently for tensors at other addresses, and GroupNorm over
    # a 1x1 map (the refiner's deepest level) amplifies that
    assert (actual - expected).abs().max() <= 1e-4 * expected.abs().max()
    assert expected.abs().mean() > 0.01        # a model that outputs ~nothing would make the comparison empty


def test_ldm_layout_uses_the_original_names():
    sd1 = unet_to_ldm(tiny_unet("sd1"))
    # stem, first ResBlock + SpatialTransformer with conv projections, downsampler, middle, upsampler, output head
    for key in ("input_blocks.0.0.weight", "input_blocks.1.0.in_layers.0.weight", "input_blocks.1.0.emb_layers.1.weight",
                "input_blocks.1.0.out_layers.3.weight", "input_blocks.1.1.proj_in.weight",
                "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", "input_blocks.2.0.op.weight",
                "input_blocks.3.0.skip_connection.weight", "middle_block.1.norm.weight", "middle_block.2.in_layers.2.bias",
                "output_blocks.1.1.conv.weight", "output_blocks.2.1.proj_out.weight", "time_embed.0.weight",
                "out.0.weight", "out.2.bias"):
        assert P + key in sd1, key
    assert sd1[P + "input_blocks.1.1.proj_in.weight"].ndim == 4            # SD1 projects with 1x1 convs
    sdxl = unet_to_ldm(tiny_unet("sdxl"))
    assert sdxl[P + "input_blocks.3.1.proj_in.weight"].ndim == 2            # SDXL with linear layers
    assert P + "label_emb.0.0.weight" in sdxl and P + "label_emb.0.2.weight" in sdxl
    assert P + "output_blocks.1.2.conv.weight" in sdxl                      # upsampler after a transformer

    vae = vae_to_ldm(tiny_vae("sd1"))
    q = vae["first_stage_model.decoder.mid.attn_1.q.weight"]
    assert q.ndim == 4 and q.shape[2:] == (1, 1)                            # attention as 1x1 convs like the original
    assert "first_stage_model.encoder.down.0.downsample.conv.weight" in vae
    assert "first_stage_model.decoder.up.3.block.1.conv1.weight" in vae    # one more ResBlock per level than the encoder
    assert "first_stage_model.decoder.up.1.block.0.nin_shortcut.weight" in vae  # 64 -> 32 channels
    assert "first_stage_model.decoder.up.0.upsample.conv.weight" not in vae  # highest resolution is up.0


def test_decoder_levels_are_stored_highest_resolution_first():
    vae = tiny_vae("sd1")
    ldm = vae_to_ldm(vae)
    # diffusers' up_blocks.0 works at the lowest resolution (64 wide here), the original's up.3
    assert torch.equal(ldm["first_stage_model.decoder.up.3.block.0.conv1.weight"], vae.decoder.up_blocks[0].resnets[0].conv1.weight)
    assert torch.equal(ldm["first_stage_model.decoder.up.0.block.0.conv1.weight"], vae.decoder.up_blocks[3].resnets[0].conv1.weight)


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_vae_round_trip_gives_identical_weights_and_images(arch):
    original = tiny_vae(arch, seed=5)
    loaded = load_vae(vae_to_ldm(original), arch, torch.float32)
    want, got = original.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys()
    assert [k for k in want if not torch.equal(want[k], got[k])] == []
    assert loaded.config.scaling_factor == {"sd1": 0.18215, "sdxl": 0.13025}[arch]

    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        latents = original.encode(image).latent_dist.mean
        assert latents.shape == (1, 4, 4, 4)                                 # the real 8x downscale
        assert torch.equal(latents, loaded.encode(image).latent_dist.mean)
        assert torch.equal(original.decode(latents).sample, loaded.decode(latents).sample)


def test_vae_scaling_factor_comes_from_the_arch():
    ldm = vae_to_ldm(tiny_vae("sd1"))
    assert {a: vae_config_from_state_dict(ldm, a)["scaling_factor"] for a in ("sd1", "sd2", "sdxl", "sdxl-refiner")} == \
        {"sd1": 0.18215, "sd2": 0.18215, "sdxl": 0.13025, "sdxl-refiner": 0.13025}


def test_dtype_is_applied():
    ldm = unet_to_ldm(tiny_unet("sd1"))
    unet = load_unet(ldm, "sd1", torch.float16)
    assert {p.dtype for p in unet.parameters()} == {torch.float16}
    assert not any(p.requires_grad for p in unet.parameters())


def test_sd2_unet_upcasts_attention_others_do_not():
    assert load_unet(unet_to_ldm(tiny_unet("sd2")), "sd2").config.upcast_attention is True
    assert load_unet(unet_to_ldm(tiny_unet("sd1")), "sd1").config.upcast_attention is False


REFERENCE_UNETS = sorted(CONFIGS.glob("*/unet_config*.json"))


@pytest.mark.parametrize("path", REFERENCE_UNETS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_full_size_unet_configs_are_read_back_from_weight_shapes(path):
    """A full-size UNet (on the meta device: shapes only, no memory) written in LDM layout reads back as the
    released diffusers config, and diffusers' converter fills every parameter of the model built from it."""
    reference = json.loads(path.read_text())
    with init_empty_weights():
        model = UNet2DConditionModel.from_config(reference)
    ldm = unet_to_ldm(model)
    derived = unet_config_from_state_dict(ldm)
    assert {k: derived[k] for k in DERIVED_UNET_KEYS} == {k: reference[k] for k in DERIVED_UNET_KEYS}

    arch = path.parent.name.removesuffix("-v")
    loaded = load_unet(ldm, arch)
    assert {k: v.shape for k, v in loaded.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_full_size_key_counts_match_the_released_checkpoints():
    # tensor counts of the UNet/VAE sections of v1-5-pruned and sd_xl_base_1.0 single files
    counts = {}
    for arch in ("sd1", "sdxl"):
        with init_empty_weights():
            unet = UNet2DConditionModel.from_config(json.loads((CONFIGS / arch / "unet_config.json").read_text()))
            vae = AutoencoderKL.from_config(json.loads((CONFIGS / arch / "vae_config.json").read_text()))
        counts[arch] = (len(unet_to_ldm(unet)), len(vae_to_ldm(vae)))
    assert counts == {"sd1": (686, 248), "sdxl": (1680, 248)}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*/vae_config.json")), ids=lambda p: p.parent.name)
def test_full_size_vae_configs_are_read_back(path):
    reference = json.loads(path.read_text())
    with init_empty_weights():
        model = AutoencoderKL.from_config(reference)
    arch = path.parent.name.removesuffix("-v")
    derived = vae_config_from_state_dict(vae_to_ldm(model), arch, image_size=reference["sample_size"])
    assert {k: _plain(v) for k, v in derived.items() if k in reference} == \
        {k: v for k, v in reference.items() if k in derived}


def test_missing_unet_is_a_checkpoint_error():
    with pytest.raises(CheckpointError, match="input_blocks.0.0.weight"):
        unet_config_from_state_dict({"first_stage_model.encoder.conv_in.weight": torch.zeros(1)})


def test_incomplete_unet_names_missing_keys():
    ldm = unet_to_ldm(tiny_unet("sd1"))
    del ldm[P + "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"]
    with pytest.raises(CheckpointError, match=r"1 missing \(e\.g\. down_blocks\.0\.attentions\.0\.transformer_blocks\.0\.attn1\.to_q\.weight"):
        load_unet(ldm, "sd1")


def test_wrong_shape_is_a_checkpoint_error():
    ldm = unet_to_ldm(tiny_unet("sd1"))
    ldm[P + "time_embed.2.bias"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_unet(ldm, "sd1")


def test_unclip_style_class_embedding_is_refused():
    ldm = unet_to_ldm(tiny_unet("sd2"))
    ldm[P + "label_emb.0.weight"] = torch.zeros(4, 4)
    with pytest.raises(CheckpointError, match="unCLIP or upscaler"):
        unet_config_from_state_dict(ldm)
