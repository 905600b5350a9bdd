"""UNet and VAE from a single-file checkpoint in the original LDM/SGM key layout.

The architecture is read from the weights themselves (widths, block counts, transformer depths, context width), so
fine-tunes and tiny test models load through the same path as the official releases. Only what weights cannot tell
(attention head convention, VAE latent scaling, default sample size) comes from the architecture name.
Key renaming is diffusers' own single-file converter; we only supply the config it needs.
"""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

from sdui.errors import CheckpointError

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."

# SD1 uses 8 heads everywhere; SD2 and SDXL use heads of 64 channels. diffusers' UNet2DConditionModel calls the
# number of heads `attention_head_dim` (a historical misnomer kept by its configs), so that is what we fill in.
SD1_NUM_HEADS = 8
HEAD_CHANNELS = 64
SDXL_TIME_EMBED_DIM = 256   # sinusoidal width of each SDXL size/crop/aesthetic id; not stored in the weights

# latent scaling cannot be read from weights: it is a property of how the model was trained
VAE_SCALING_FACTOR = {"sd1": 0.18215, "sd2": 0.18215, "sdxl": 0.13025, "sdxl-refiner": 0.13025}
# native image size (pixels); only informs diffusers' defaults (pipeline size, VAE tiling)
IMAGE_SIZE = {"sd1": 512, "sd2": 512, "sdxl": 1024, "sdxl-refiner": 1024}


def _need(sd: dict, key: str, what: str):
    if key not in sd:
        raise CheckpointError(f"The checkpoint has no '{key}' ({what} weights are missing or use an unknown layout); "
                              "check that the file is a complete Stable Diffusion checkpoint.")
    return sd[key]


def _indices(sd: dict, prefix: str) -> list[int]:
    """Sorted block numbers N found in keys of the form prefix + 'N.' + ..."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in sd if (m := pattern.match(k))}
    return sorted(found)


def _transformer_depth(sd: dict, prefix: str) -> int:
    """Number of transformer blocks in the SpatialTransformer at `prefix` (0 when there is none)."""
    return len(_indices(sd, prefix + "transformer_blocks."))


def unet_config_from_state_dict(sd: dict, arch: str | None = None) -> dict:
    """A diffusers UNet2DConditionModel config describing the UNet whose LDM weights are in `sd`.

    Only key names and tensor shapes are used (meta tensors work). `arch` picks the attention head convention;
    without it the convention follows the projection style (linear projection = SD2/SDXL = 64-channel heads).
    """
    p = UNET_PREFIX
    conv_in = _need(sd, p + "input_blocks.0.0.weight", "UNet")
    in_channels = conv_in.shape[1]
    out_channels = _need(sd, p + "out.2.weight", "UNet").shape[0]

    # input blocks after the stem: runs of ResBlock(+transformer) separated by downsamplers ("op" convs)
    levels: list[list[tuple[int, int]]] = [[]]
    for i in _indices(sd, p + "input_blocks.")[1:]:
        block = f"{p}input_blocks.{i}."
        if block + "0.op.weight" in sd:
            levels.append([])
            continue
        width = _need(sd, block + "0.out_layers.3.weight", "UNet").shape[0]
        levels[-1].append((width, _transformer_depth(sd, block + "1.")))
    if not levels[-1]:
        raise CheckpointError("The UNet ends with a downsampler, which no Stable Diffusion model does; "
                              "the file is damaged or not Stable Diffusion.")

    layers_per_block = len(levels[0])
    block_out_channels, depths = [], []
    for n, level in enumerate(levels):
        widths = {w for w, _ in level}
        level_depths = {d for _, d in level}
        if len(level) != layers_per_block or len(widths) != 1 or len(level_depths) != 1:
            raise CheckpointError(f"UNet level {n} has an irregular layout (ResBlocks {level}); "
                                  "this is not a Stable Diffusion 1.x/2.x/XL UNet.")
        block_out_channels.append(widths.pop())
        depths.append(level_depths.pop())

    # output blocks mirror the input levels with one extra ResBlock each; check, so a damaged file fails here clearly
    out_blocks = _indices(sd, p + "output_blocks.")
    if len(out_blocks) != len(levels) * (layers_per_block + 1):
        raise CheckpointError(f"The UNet has {len(out_blocks)} output blocks where {len(levels) * (layers_per_block + 1)} "
                              "were expected; the file is damaged or not a Stable Diffusion UNet.")
    for j in out_blocks:
        level = len(levels) - 1 - j // (layers_per_block + 1)
        if _transformer_depth(sd, f"{p}output_blocks.{j}.1.") != depths[level]:
            raise CheckpointError(f"UNet output block {j} does not mirror input level {level}; unsupported UNet layout.")

    mid_depth = _transformer_depth(sd, p + "middle_block.1.")
    if mid_depth == 0:
        raise CheckpointError("The UNet middle block has no attention (an SSD-1B/Vega style distilled model?); "
                              "only Stable Diffusion 1.x/2.x/XL UNets are supported.")

    first_attn = next((k for k in sd if k.startswith(p) and k.endswith("attn2.to_k.weight")), None)
    if first_attn is None:
        raise CheckpointError("The UNet has no cross-attention layers; it is not a text-to-image Stable Diffusion UNet.")
    context_dim = sd[first_attn].shape[1]
    proj_in = next(k for k in sd if k.startswith(p) and k.endswith(".proj_in.weight"))
    use_linear_projection = sd[proj_in].ndim == 2

    convention = {"sd1": "heads"}.get(arch, "channels") if arch else ("channels" if use_linear_projection else "heads")
    if convention == "heads":
        attention_head_dim = SD1_NUM_HEADS
    else:
        attention_head_dim = [max(1, w // HEAD_CHANNELS) for w in block_out_channels]

    # one depth when every attention level (and the middle) shares it, else per level as diffusers' SDXL config does;
    # diffusers takes the middle block's depth from the last level, so a last level without attention carries it
    if len({d for d in depths if d} | {mid_depth}) == 1:
        transformer_layers_per_block: int | list[int] = mid_depth
    else:
        transformer_layers_per_block = [d or 1 for d in depths]
        if depths[-1] == 0:
            transformer_layers_per_block[-1] = mid_depth
        elif depths[-1] != mid_depth:
            raise CheckpointError("The UNet middle block's transformer depth differs from its deepest level's; "
                                  "unsupported UNet layout.")

    config = {
        "in_channels": in_channels,
        "out_channels": out_channels,
        "block_out_channels": block_out_channels,
        "layers_per_block": layers_per_block,
        "down_block_types": ["CrossAttnDownBlock2D" if d else "DownBlock2D" for d in depths],
        "up_block_types": ["CrossAttnUpBlock2D" if d else "UpBlock2D" for d in reversed(depths)],
        "cross_attention_dim": context_dim,
        "attention_head_dim": attention_head_dim,
        "use_linear_projection": use_linear_projection,
        "transformer_layers_per_block": transformer_layers_per_block,
        "addition_embed_type": None,
        "addition_time_embed_dim": None,
        "projection_class_embeddings_input_dim": None,
    }
    if p + "label_emb.0.0.weight" in sd:
        # SDXL: pooled text embedding + sinusoidal embeddings of the size/crop(/aesthetic) ids
        config.update(addition_embed_type="text_time", addition_time_embed_dim=SDXL_TIME_EMBED_DIM,
                      projection_class_embeddings_input_dim=sd[p + "label_emb.0.0.weight"].shape[1])
    elif any(k.startswith(p + "label_emb") for k in sd):
        raise CheckpointError("The UNet has a class/noise-level embedding (unCLIP or upscaler model); "
                              "only Stable Diffusion 1.x/2.x/XL text-to-image, inpainting and depth models are supported.")
    return config


def vae_config_from_state_dict(sd: dict, arch: str, *, image_size: int | None = None) -> dict:
    """A diffusers AutoencoderKL config for the VAE stored under 'first_stage_model.' in `sd`."""
    p = VAE_PREFIX
    levels = _indices(sd, p + "encoder.down.")
    if not levels:
        _need(sd, p + "encoder.down.0.block.0.conv1.weight", "VAE")
    block_out_channels = [_need(sd, f"{p}encoder.down.{i}.block.0.conv2.weight", "VAE").shape[0] for i in levels]
    if arch not in VAE_SCALING_FACTOR:
        raise ValueError(f"unknown arch {arch!r}")
    return {
        "in_channels": _need(sd, p + "encoder.conv_in.weight", "VAE").shape[1],
        "out_channels": _need(sd, p + "decoder.conv_out.weight", "VAE").shape[0],
        "down_block_types": ["DownEncoderBlock2D"] * len(levels),
        "up_block_types": ["UpDecoderBlock2D"] * len(levels),
        "block_out_channels": block_out_channels,
        "layers_per_block": len(_indices(sd, p + "encoder.down.0.block.")),
        "latent_channels": _need(sd, p + "decoder.conv_in.weight", "VAE").shape[1],
        "norm_num_groups": 32,
        "sample_size": image_size or IMAGE_SIZE[arch],
        "scaling_factor": VAE_SCALING_FACTOR[arch],
        "force_upcast": True,
        "use_quant_conv": p + "quant_conv.weight" in sd,
        "use_post_quant_conv": p + "post_quant_conv.weight" in sd,
        "mid_block_add_attention": p + "encoder.mid.attn_1.q.weight" in sd,
    }


def _subset(sd: dict, prefix: str) -> dict:
    return {k: v for k, v in sd.items() if k.startswith(prefix)}


def _instantiate(cls, config: dict, weights: dict, what: str, dtype: torch.dtype):
    """Build `cls` without allocating weights, then adopt the converted tensors; every parameter must be supplied."""
    weights = {k: v for k, v in weights.items() if v is not None}
    # cast (the bulk of the work, in torch without the GIL) while Python builds the empty model beside it; tensors
    # already in `dtype` are taken as they are (no copy of a memory-mapped file)
    with ThreadPoolExecutor(max_workers=1) as pool:
        cast = pool.submit(lambda: {k: v.to(dtype) for k, v in weights.items()})
        with init_empty_weights():
            model = cls.from_config(config)
        weights = cast.result()
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(weights) if tuple(expected[k].shape) != tuple(weights[k].shape))
    if missing or unexpected or wrong_shape:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise CheckpointError(f"The {what} weights do not fit the architecture read from the checkpoint: "
                              f"{'; '.join(parts)}. The file is damaged or a variant we do not support; re-download it.")
    model.load_state_dict(weights, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def load_unet(state_dict: dict, arch: str, dtype: torch.dtype = torch.float32, *,
              upcast_attention: bool | None = None, image_size: int | None = None) -> UNet2DConditionModel:
    """The UNet of an LDM/SGM single-file checkpoint as a diffusers UNet2DConditionModel (CPU, eval mode).

    upcast_attention defaults to True for SD2 (fp16 attention overflows in its 768-v models); image_size only
    sets the config's sample_size (diffusers' default generation size).
    """
    config = unet_config_from_state_dict(state_dict, arch)
    config["upcast_attention"] = (arch == "sd2") if upcast_attention is None else upcast_attention
    config["sample_size"] = (image_size or IMAGE_SIZE.get(arch, 512)) // 8
    converted = convert_ldm_unet_checkpoint(_subset(state_dict, UNET_PREFIX), config)
    return _instantiate(UNet2DConditionModel, config, converted, "UNet", dtype)


def load_vae(state_dict: dict, arch: str, dtype: torch.dtype = torch.float32, *,
             image_size: int | None = None) -> AutoencoderKL:
    """The VAE of an LDM/SGM single-file checkpoint as a diffusers AutoencoderKL (CPU, eval mode)."""
    config = vae_config_from_state_dict(state_dict, arch, image_size=image_size)
    converted = convert_ldm_vae_checkpoint(_subset(state_dict, VAE_PREFIX), config)
    return _instantiate(AutoencoderKL, config, converted, "VAE", dtype)
