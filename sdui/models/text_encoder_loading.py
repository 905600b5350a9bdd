"""CLIP text encoders from a single-file checkpoint in the original LDM/SGM key layout.

Where each architecture keeps its text encoder(s):
  sd1           CLIP-L   cond_stage_model.transformer.text_model.*  (old files: cond_stage_model.transformer.*)
  sd2           OpenCLIP-H  cond_stage_model.model.*
  sdxl          CLIP-L   conditioner.embedders.0.transformer.text_model.*,  OpenCLIP-bigG  conditioner.embedders.1.model.*
  sdxl-refiner  OpenCLIP-bigG  conditioner.embedders.0.model.*
Sizes are read from the tensors, so tiny test models and the real ones load through the same code. Key renaming
(and OpenCLIP's fused q/k/v split, text_projection transpose) is diffusers' own single-file converter.

SD2 conditions on OpenCLIP's penultimate layer followed by the final layer norm. Like diffusers' SD2 text encoder
(23 of 24 layers) we build the model without its last block, so `last_hidden_state` is that conditioning.
SDXL's encoders keep every layer: the bigG pooled output comes from the last one.
"""
from __future__ import annotations

import re

import torch
from accelerate import init_empty_weights
from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint, convert_open_clip_checkpoint
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
from transformers.initialization import no_init_weights

from sdui.errors import CheckpointError
from sdui.text.tokenizer import load_clip_tokenizer

HEAD_CHANNELS = 64       # CLIP-L, OpenCLIP-H and bigG all use 64-channel attention heads
BOS_ID, EOS_ID = 49406, 49407

# (kind, prefix, drop_last_layer) per text encoder of each architecture
LAYOUTS = {
    "sd1": [("clip-l", "cond_stage_model.transformer.", False)],
    "sd2": [("openclip", "cond_stage_model.model.", True)],
    "sdxl": [("clip-l", "conditioner.embedders.0.transformer.", False),
             ("openclip-proj", "conditioner.embedders.1.model.", False)],
    "sdxl-refiner": [("openclip-proj", "conditioner.embedders.0.model.", False)],
}
TOKENIZER_PAD = {"clip-l": "eot", "openclip": "zero", "openclip-proj": "zero"}

# OpenCLIP entries that carry no text-encoder weights we use (logit_scale: contrastive temperature;
# attn_mask: the causal mask some versions saved as a buffer)
_OPENCLIP_UNUSED = ("logit_scale", "attn_mask")
_OPENCLIP_TOP = ("token_embedding.weight", "positional_embedding", "ln_final.weight", "ln_final.bias", "text_projection")
_OPENCLIP_BLOCK = re.compile(r"transformer\.resblocks\.(\d+)\.(ln_1|ln_2|attn\.in_proj|attn\.out_proj|mlp\.c_fc|mlp\.c_proj)"
                             r"(\.weight|\.bias|_weight|_bias)$")


def load_text_encoders(state_dict: dict, arch: str, dtype: torch.dtype = torch.float32) -> tuple[list, list]:
    """(text_encoders, tokenizers) for `arch`, in SDModel order, on the CPU in `dtype`, in eval mode."""
    if arch not in LAYOUTS:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {sorted(LAYOUTS)}")
    encoders, tokenizers = [], []
    for kind, prefix, drop_last in LAYOUTS[arch]:
        weights = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if not weights:
            raise CheckpointError(f"The checkpoint has no text encoder weights under '{prefix}*' (expected for {arch}); "
                                  "the file is incomplete or not a full Stable Diffusion checkpoint.")
        if kind == "clip-l":
            model = _load_clip_l(weights, prefix, dtype)
        else:
            model = _load_open_clip(weights, prefix, dtype, with_projection=kind == "openclip-proj",
                                    drop_last_layer=drop_last)
        encoders.append(model)
        tokenizers.append(load_clip_tokenizer(TOKENIZER_PAD[kind]))
    return encoders, tokenizers


def _need(weights: dict, key: str, prefix: str) -> torch.Tensor:
    if key not in weights:
        raise CheckpointError(f"The checkpoint has no '{prefix}{key}' (text encoder weights are missing or use an "
                              "unknown layout); check that the file is a complete Stable Diffusion checkpoint.")
    return weights[key]


def _layer_count(keys, pattern: re.Pattern, prefix: str) -> int:
    found = {int(m.group(1)) for k in keys if (m := pattern.match(k))}
    if not found or found != set(range(len(found))):
        raise CheckpointError(f"The text encoder under '{prefix}' has missing transformer layers (found {sorted(found)}); "
                              "the file is damaged or truncated: download it again.")
    return len(found)


def _config(*, vocab: int, hidden: int, layers: int, intermediate: int, positions: int, projection: int,
            act: str, prefix: str) -> CLIPTextConfig:
    if hidden % HEAD_CHANNELS:
        raise CheckpointError(f"The text encoder under '{prefix}' is {hidden} wide, not a multiple of {HEAD_CHANNELS}; "
                              "it is not a CLIP text encoder used by Stable Diffusion.")
    return CLIPTextConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                          num_attention_heads=hidden // HEAD_CHANNELS, intermediate_size=intermediate,
                          max_position_embeddings=positions, projection_dim=projection, hidden_act=act,
                          layer_norm_eps=1e-5, bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=1)


def _load_clip_l(weights: dict, prefix: str, dtype: torch.dtype) -> CLIPTextModel:
    # diffusers' converter strips the LDM prefix; the ".text_model" level is then optional (absent in old SD1 files)
    converted = convert_ldm_clip_checkpoint({prefix + k: v for k, v in weights.items()}, remove_prefix=prefix)
    converted = {k.removeprefix("text_model."): v for k, v in converted.items()
                 if not k.endswith("embeddings.position_ids")}     # a constant buffer some files carry
    vocab, hidden = _need(converted, "embeddings.token_embedding.weight", prefix + "text_model.").shape
    config = _config(
        vocab=vocab, hidden=hidden,
        layers=_layer_count(converted, re.compile(r"encoder\.layers\.(\d+)\."), prefix),
        intermediate=_need(converted, "encoder.layers.0.mlp.fc1.weight", prefix + "text_model.").shape[0],
        positions=_need(converted, "embeddings.position_embedding.weight", prefix + "text_model.").shape[0],
        projection=hidden, act="quick_gelu", prefix=prefix)
    return _materialize(CLIPTextModel, config, converted, prefix, dtype)


def _load_open_clip(weights: dict, prefix: str, dtype: torch.dtype, *, with_projection: bool,
                    drop_last_layer: bool) -> CLIPTextModel | CLIPTextModelWithProjection:
    unknown = [k for k in weights
               if k not in _OPENCLIP_TOP and k not in _OPENCLIP_UNUSED and not _OPENCLIP_BLOCK.match(k)]
    if unknown:
        raise CheckpointError(f"Unknown text encoder weights under '{prefix}': {', '.join(sorted(unknown)[:5])}; "
                              "the file is not a Stable Diffusion checkpoint this program knows.")
    vocab, hidden = _need(weights, "token_embedding.weight", prefix).shape
    layers = _layer_count(weights, _OPENCLIP_BLOCK, prefix)
    projection = hidden
    if with_projection:
        projection = _need(weights, "text_projection", prefix).shape[1]     # stored [hidden, projection]
    if drop_last_layer:
        if layers < 2:
            raise CheckpointError(f"The text encoder under '{prefix}' has {layers} layer; SD2 needs at least 2.")
        layers -= 1
        weights = {k: v for k, v in weights.items() if not k.startswith(f"transformer.resblocks.{layers}.")}
    if not with_projection:
        weights = {k: v for k, v in weights.items() if k != "text_projection"}
    config = _config(vocab=vocab, hidden=hidden, layers=layers,
                     intermediate=_need(weights, "transformer.resblocks.0.mlp.c_fc.weight", prefix).shape[0],
                     positions=_need(weights, "positional_embedding", prefix).shape[0],
                     projection=projection, act="gelu", prefix=prefix)
    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    with init_empty_weights():
        skeleton = cls(config)
    # diffusers' converter splits the fused in_proj into q/k/v and transposes text_projection into a Linear weight
    converted = convert_open_clip_checkpoint(skeleton, {prefix + k: v for k, v in weights.items()}, prefix=prefix)
    if not with_projection:                 # CLIPTextModel has no ".text_model" level since transformers 5.6
        converted = {k.removeprefix("text_model."): v for k, v in converted.items()}
    return _materialize(cls, config, converted, prefix, dtype)


def _materialize(cls, config: CLIPTextConfig, converted: dict, prefix: str, dtype: torch.dtype):
    # parameters start on the meta device, and transformers' own switch skips its weight init (a tenth of a second of
    # random numbers for meta tensors that the checkpoint replaces anyway)
    with init_empty_weights(), no_init_weights():
        model = cls(config)
    tensors = {k: v.to(dtype=dtype).contiguous() for k, v in converted.items()}
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - tensors.keys()), sorted(tensors.keys() - expected)
    if missing or unexpected:
        detail = "; ".join(part for part in (
            f"missing {len(missing)} tensors (e.g. {', '.join(missing[:3])})" if missing else "",
            f"{len(unexpected)} unknown tensors (e.g. {', '.join(unexpected[:3])})" if unexpected else "") if part)
        raise CheckpointError(f"The text encoder under '{prefix}' does not match a CLIP text model: {detail}. "
                              "The file is damaged, truncated, or of an unsupported kind.")
    try:
        model.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as e:               # shape mismatches between tensors of one encoder
        raise CheckpointError(f"The text encoder under '{prefix}' has inconsistent tensor shapes ({e}). "
                              "The file is damaged or not a Stable Diffusion checkpoint.") from None
    return model.eval().requires_grad_(False)
