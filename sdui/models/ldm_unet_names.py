"""The original (LDM/SGM) name of each module of our diffusers UNet: `down_blocks.0.attentions.0.proj_in` is
`input_blocks.1.1.proj_in` in the checkpoint. LoRA files name the modules they change either way (kohya's SD1
files use the diffusers names, its SDXL files and others the LDM ones), so both must lead to the module.

The layout follows from the UNet's config as the checkpoint conversion reads it: input block 0 is conv_in, then each
down block has layers_per_block (resnet, attention) layers and a downsampler; the middle block is resnet,
attention, resnet; each up block has layers_per_block + 1 layers, its upsampler in the last one.
"""

from __future__ import annotations

import re

_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_TOP = {
    "conv_in": "input_blocks.0.0",
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_PART = re.compile(r"(down_blocks|up_blocks)\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)(?:\.(.*))?$")
_MID = re.compile(r"mid_block\.(resnets|attentions)\.(\d+)(?:\.(.*))?$")


def _inner(kind: str, rest: str | None) -> str:
    if not rest:
        return ""
    if kind == "resnets":
        head, _, tail = rest.partition(".")
        rest = _RESNET.get(head, head) + (f".{tail}" if tail else "")
    return f".{rest}"


def ldm_name(name: str, layers_per_block: int, up_has_attention: list[bool]) -> str | None:
    """The LDM name of diffusers module `name`, None for one the original layout does not have."""
    if name in _TOP:
        return _TOP[name]
    if match := _MID.fullmatch(name):
        kind, index, rest = match[1], int(match[2]), match[3]
        block = {("resnets", 0): 0, ("attentions", 0): 1, ("resnets", 1): 2}.get((kind, index))
        return None if block is None else f"middle_block.{block}{_inner(kind, rest)}"
    match = _PART.fullmatch(name)
    if match is None:
        return None
    side, b, kind, layer, rest = match[1], int(match[2]), match[3], int(match[4]), match[5]
    if side == "down_blocks":
        if kind == "downsamplers":
            return f"input_blocks.{(b + 1) * (layers_per_block + 1)}.0" + _inner(kind, rest).replace(".conv", ".op", 1)
        return f"input_blocks.{1 + b * (layers_per_block + 1) + layer}.{0 if kind == 'resnets' else 1}" + _inner(
            kind, rest
        )
    per_block = layers_per_block + 1
    if kind == "upsamplers":
        return f"output_blocks.{b * per_block + per_block - 1}.{2 if up_has_attention[b] else 1}" + _inner(kind, rest)
    return f"output_blocks.{b * per_block + layer}.{0 if kind == 'resnets' else 1}" + _inner(kind, rest)


def ldm_names(unet) -> dict[str, str]:
    """diffusers module name -> LDM name, for every module of `unet` that has one."""
    config = unet.config
    layers = config.layers_per_block
    if not isinstance(layers, int):
        layers = layers[0]
    up_attention = ["CrossAttn" in t for t in config.up_block_types]
    found = {}
    for name, _ in unet.named_modules():
        ldm = ldm_name(name, layers, up_attention) if name else None
        if ldm is not None:
            found[name] = ldm
    return found
