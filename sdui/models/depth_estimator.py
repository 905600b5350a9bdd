"""The depth estimator of SD 2 depth checkpoints (MiDaS DPT-Hybrid), and the depth map the UNet's 5th channel gets.

A 512-depth-ema checkpoint carries its own MiDaS v3 DPT-Hybrid under `depth_model.model.*` (ldm's MiDaSInference ->
DPTDepthModel): `pretrained.model.*` is timm's ViT-hybrid (a 3-stage ResNetV2/BiT stem, then ViT-B/16),
`pretrained.act_postprocess3/4` turn ViT tokens back into feature maps, `scratch.*` is the fusion decoder and the head.
transformers' DPTForDepthEstimation with a hybrid BiT backbone has exactly these layers; we rename the keys onto it,
with every size read from the tensors (tiny test models and the real one load through the same code).

Why our own forward over transformers' modules: ldm feeds MiDaS the picture at its own aspect ratio (sides scaled
towards 384 and rounded to multiples of 32) and interpolates the position embeddings to that token grid, while
transformers' hybrid DPT accepts only its configured square size. `DepthEstimator.forward` runs the same modules in
MiDaS' order for any multiple-of-32 size; at the configured size it equals DPTForDepthEstimation's own output.

The depth map for the UNet follows ldm's LatentDepth2ImageDiffusion: MiDaS output resized (bicubic) to the latent
grid, then each image's values min-max scaled to [-1, 1] as 2 * (d - min) / (max - min + 0.001) - 1.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import init_empty_weights
from PIL import Image
from torch import nn
from transformers import BitConfig, DPTConfig, DPTForDepthEstimation

from sdui.errors import CheckpointError

DEPTH_PREFIX = "depth_model.model."
NET_MULTIPLE = 32        # ldm's MiDaS transform: ensure_multiple_of=32
DEPTH_EPS = 0.0          # A1111 (depth2img_image_conditioning) and diffusers: no epsilon; ldm training code adds 0.001
HEAD_CHANNELS = 64       # ViT-B/16: 12 heads of 64 channels
MAX_GROUPS = 32          # timm ResNetV2 / BiT GroupNorm: 32 groups
VIT_LAYER_NORM_EPS = 1e-6   # timm ViT (transformers' DPT default, 1e-12, is BERT's)
MIDAS_MEAN = MIDAS_STD = (0.5, 0.5, 0.5)   # ldm's NormalizeImage for dpt_hybrid: the [-1, 1] image as it is

_VIT = "pretrained.model."
_BIT = "pretrained.model.patch_embed.backbone."
_HF_BIT = "dpt.embeddings.backbone.bit."
# timm saved its ImageNet classifier beside the ViT; MiDaS never runs it
_UNUSED = re.compile(r"pretrained\.model\.(head|pre_logits)\..*")
_QKV = re.compile(r"pretrained\.model\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)")
_HF_QKV = re.compile(r"dpt\.encoder\.layer\.(\d+)\.attention\.attention\.(?:query|key|value)\.(weight|bias)")


def _rule_pairs() -> list[tuple[str, str]]:
    """(MiDaS/timm name, transformers name) templates: <p> is weight|bias, <part> a ResNet sub-layer, the other
    fields indices that carry over. timm's fused q/k/v is split separately (_QKV)."""
    vit, bit, hf_bit = _VIT, _BIT, _HF_BIT
    pairs = [
        (vit + "cls_token", "dpt.embeddings.cls_token"),
        (vit + "pos_embed", "dpt.embeddings.position_embeddings"),
        (vit + "patch_embed.proj.<p>", "dpt.embeddings.projection.<p>"),
        (bit + "stem.conv.weight", hf_bit + "embedder.convolution.weight"),
        (bit + "stem.norm.<p>", hf_bit + "embedder.norm.<p>"),
        # ResNetV2 blocks keep their sub-layer names (conv1..3, norm1..3, downsample.conv/norm) in BiT
        (bit + "stages.<s>.blocks.<b>.<part>.<p>", hf_bit + "encoder.stages.<s>.layers.<b>.<part>.<p>"),
        (vit + "blocks.<i>.norm1.<p>", "dpt.encoder.layer.<i>.layernorm_before.<p>"),
        (vit + "blocks.<i>.norm2.<p>", "dpt.encoder.layer.<i>.layernorm_after.<p>"),
        (vit + "blocks.<i>.attn.proj.<p>", "dpt.encoder.layer.<i>.attention.output.dense.<p>"),
        (vit + "blocks.<i>.mlp.fc1.<p>", "dpt.encoder.layer.<i>.intermediate.dense.<p>"),
        (vit + "blocks.<i>.mlp.fc2.<p>", "dpt.encoder.layer.<i>.output.dense.<p>"),
        (vit + "norm.<p>", "dpt.layernorm.<p>"),
        ("scratch.output_conv.<i>.<p>", "head.head.<i>.<p>"),
    ]
    for n in range(1, 5):
        # act_postprocessN = [readout projection, transpose, unflatten, 1x1 conv, resize conv (hybrid: N=4 only)]
        post, stage = f"pretrained.act_postprocess{n}.", f"neck.reassemble_stage.layers.{n - 1}."
        # MiDaS fuses refinenet4 (deepest) first; transformers numbers its fusion layers in that order
        refine, fusion = f"scratch.refinenet{n}.", f"neck.fusion_stage.layers.{4 - n}."
        pairs += [(post + "0.project.0.<p>", f"neck.reassemble_stage.readout_projects.{n - 1}.0.<p>"),
                  (post + "3.<p>", stage + "projection.<p>"),
                  (post + "4.<p>", stage + "resize.<p>"),
                  (f"scratch.layer{n}_rn.weight", f"neck.convs.{n - 1}.weight"),
                  (refine + "out_conv.<p>", fusion + "projection.<p>"),
                  (refine + "resConfUnit<u>.conv<c>.<p>", fusion + "residual_layer<u>.convolution<c>.<p>")]
    return pairs


_FIELD = re.compile(r"<(\w+)>")
_FIELD_PATTERNS = {"p": r"weight|bias", "part": r"(?:downsample\.)?(?:conv|norm)\d?"}


def _template_regex(template: str) -> re.Pattern:
    pieces = _FIELD.split(template)         # literal, field, literal, field, ...
    return re.compile("".join(re.escape(piece) if i % 2 == 0 else f"(?P<{piece}>{_FIELD_PATTERNS.get(piece, _INDEX)})"
                              for i, piece in enumerate(pieces)))


def _fill(template: str, match: re.Match) -> str:
    return _FIELD.sub(lambda field: match[field[1]], template)


_INDEX = r"\d+"
_RULES = [(midas, hf, _template_regex(midas), _template_regex(hf)) for midas, hf in _rule_pairs()]


def _to_hf(key: str) -> str | None:
    for _, hf, regex, _ in _RULES:
        if m := regex.fullmatch(key):
            return _fill(hf, m)
    return None


def _to_midas(hf_key: str) -> str:
    """A transformers name back to the MiDaS name it comes from (for messages)."""
    if m := _HF_QKV.fullmatch(hf_key):
        return f"{_VIT}blocks.{m[1]}.attn.qkv.{m[2]}"
    for midas, _, _, regex in _RULES:
        if m := regex.fullmatch(hf_key):
            return _fill(midas, m)
    return hf_key


# ----------------------------------------------------------------------------------------------- the module
class DepthEstimator(nn.Module):
    """A DPT depth network (transformers modules) run the MiDaS way: any input whose sides are multiples of 32.

    forward(pixel_values (N,3,H,W), normalised as `image_mean`/`image_std` say) -> relative inverse depth (N,H,W),
    larger = nearer. `net_size` is the side the network was trained at (384 for MiDaS)."""

    def __init__(self, dpt: DPTForDepthEstimation, net_size: int, image_mean=MIDAS_MEAN, image_std=MIDAS_STD):
        super().__init__()
        self.dpt = dpt
        self.net_size = int(net_size)
        self.image_mean = tuple(float(v) for v in image_mean)
        self.image_std = tuple(float(v) for v in image_std)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        config, model = self.dpt.config, self.dpt.dpt
        n, _, height, width = pixel_values.shape
        if height % NET_MULTIPLE or width % NET_MULTIPLE:
            raise ValueError(f"depth network input must have sides that are multiples of {NET_MULTIPLE}, "
                             f"got {height}x{width}")
        grid = (height // config.patch_size, width // config.patch_size)
        embeddings = model.embeddings
        if config.is_hybrid:
            # the first two BiT stages feed the decoder directly; the last one becomes the ViT's tokens
            maps = embeddings.backbone(pixel_values).feature_maps
            tokens = embeddings.projection(maps[-1]).flatten(2).transpose(1, 2)
            features, taps = [maps[0], maps[1]], list(config.backbone_out_indices[2:])
        else:
            tokens = embeddings.patch_embeddings(pixel_values)
            features, taps = [], list(config.backbone_out_indices)
        cls = embeddings.cls_token.expand(n, -1, -1)
        hidden = torch.cat([cls, tokens], dim=1) + grid_position_embeddings(embeddings.position_embeddings, grid)
        for index, layer in enumerate(model.encoder.layer[:max(taps) + 1]):
            hidden = layer(hidden)
            if index in taps:
                features.append(hidden)       # taken before the final LayerNorm, as MiDaS' forward hooks do
        fused = self.dpt.neck(features, grid[0], grid[1])
        return self.dpt.head(fused)


def grid_position_embeddings(position_embeddings: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """The trained square grid of position embeddings resized (bilinear) to `grid`, the class token's kept:
    what MiDaS' forward_flex adds for inputs of another size or shape."""
    cls_pos, grid_pos = position_embeddings[:, :1], position_embeddings[0, 1:]
    side = math.isqrt(grid_pos.shape[0])
    grid_pos = grid_pos.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    if (side, side) != tuple(grid):
        grid_pos = F.interpolate(grid_pos, size=tuple(grid), mode="bilinear", align_corners=False)
    grid_pos = grid_pos.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)
    return torch.cat([cls_pos, grid_pos], dim=1)


# ------------------------------------------------------------------------------------- loading from a checkpoint
def _midas_weights(state_dict: dict) -> dict:
    return {k[len(DEPTH_PREFIX):]: v for k, v in state_dict.items() if k.startswith(DEPTH_PREFIX)}


def _incomplete(keys: list[str]) -> CheckpointError:
    count = f"{len(keys)} of its weights are" if len(keys) > 1 else "a weight is"
    return CheckpointError(
        f"The depth model inside this checkpoint is incomplete: {count} missing (first: {DEPTH_PREFIX}{min(keys)}). "
        "The file is damaged or was pruned; re-download the SD 2 depth checkpoint (512-depth-ema), or put a "
        "transformers DPT depth model in models/depth/.")


def _not_midas(why: str) -> CheckpointError:
    return CheckpointError(
        f"The depth model inside this checkpoint is not the MiDaS DPT-Hybrid that SD 2 depth checkpoints carry "
        f"({why}). Use the original 512-depth-ema checkpoint, or put a transformers DPT depth model in models/depth/.")


def _count(midas: dict, template: str) -> int:
    """How many consecutive indices 0..n-1 fill `template`'s {} (e.g. ViT blocks); a gap is a missing weight."""
    before, after = template.split("{}")
    regex = re.compile(re.escape(before) + r"(\d+)" + re.escape(after))
    found = {int(m[1]) for k in midas if (m := regex.match(k))}
    count = len(found)
    gaps = sorted(set(range(max(found, default=-1) + 1)) - found)
    if not found or gaps:
        raise _incomplete([template.format(gaps[0] if gaps else 0) + "*"])
    return count


def depth_estimator_config(state_dict: dict) -> DPTConfig:
    """The DPTConfig of the MiDaS DPT-Hybrid under `depth_model.model.*`, every size read from the tensor shapes."""
    midas = _midas_weights(state_dict)

    def shape(key: str) -> tuple[int, ...]:
        if key not in midas:
            raise _incomplete([key])
        return tuple(midas[key].shape)

    if not any(k.startswith(_BIT) for k in midas) and f"{_VIT}patch_embed.proj.weight" in midas:
        raise _not_midas("its ViT has no ResNet stem: a DPT-Large/Base, not DPT-Hybrid")
    hidden = shape(f"{_VIT}pos_embed")[-1]
    layers = _count(midas, _VIT + "blocks.{}.")
    stages = _count(midas, _BIT + "stages.{}.")
    if stages != 3:
        raise _not_midas(f"its ResNet stem has {stages} stages, DPT-Hybrid's has 3")
    depths = [_count(midas, f"{_BIT}stages.{s}.blocks.{{}}.") for s in range(stages)]
    widths = [shape(f"{_BIT}stages.{s}.blocks.0.conv3.weight")[0] for s in range(stages)]
    # GroupNorm's group count is not stored; timm uses 32 (fewer only where a toy model is narrower than 32)
    norm_widths = [v.shape[0] for k, v in midas.items() if k.startswith(_BIT) and re.search(r"norm\d?\.weight$", k)]
    groups = min(MAX_GROUPS, math.gcd(*norm_widths))
    if hidden % HEAD_CHANNELS:
        raise _not_midas(f"ViT width {hidden} is not a multiple of {HEAD_CHANNELS}-channel heads")
    patch = 4 * 2 ** (stages - 1)            # stem /4, then every stage after the first halves
    grid = math.isqrt(shape(f"{_VIT}pos_embed")[1] - 1)
    if grid * grid != shape(f"{_VIT}pos_embed")[1] - 1:
        raise _not_midas("its position embeddings are not a square grid")
    shape("pretrained.act_postprocess3.0.project.0.weight")     # DPT-Hybrid reads the class token by projection
    # MiDaS taps ViT blocks 8 and 11 of 12 (hooks [0, 1, 8, 11]; 0 and 1 are the ResNet stages); smaller test
    # models keep the proportions
    taps = [layers * 3 // 4 - 1, layers - 1]
    backbone = BitConfig(
        global_padding="same", layer_type="bottleneck", embedding_dynamic_padding=True,
        embedding_size=shape(f"{_BIT}stem.conv.weight")[0], hidden_sizes=widths, depths=depths, num_groups=groups,
        out_features=[f"stage{i + 1}" for i in range(stages)])
    return DPTConfig(
        is_hybrid=True, backbone_config=backbone,
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=hidden // HEAD_CHANNELS,
        intermediate_size=shape(f"{_VIT}blocks.0.mlp.fc1.weight")[0], hidden_act="gelu",
        layer_norm_eps=VIT_LAYER_NORM_EPS, qkv_bias=f"{_VIT}blocks.0.attn.qkv.bias" in midas,
        image_size=grid * patch, patch_size=patch,
        backbone_featmap_shape=[1, shape(f"{_VIT}patch_embed.proj.weight")[1], grid, grid],
        backbone_out_indices=[0, 1, *taps], neck_ignore_stages=[0, 1],
        readout_type="project", reassemble_factors=[4, 2, 1, 0.5],
        neck_hidden_sizes=[shape(f"scratch.layer{i}_rn.weight")[1] for i in range(1, 5)],
        fusion_hidden_size=shape("scratch.layer1_rn.weight")[0],
        use_batch_norm_in_fusion_residual=False, use_bias_in_fusion_residual=True, add_projection=False,
    )


def convert_midas_weights(state_dict: dict) -> dict:
    """`depth_model.model.*` tensors -> transformers DPTForDepthEstimation names (q/k/v split from timm's fused qkv).
    Raises CheckpointError for a name no MiDaS DPT-Hybrid has."""
    converted, unknown = {}, []
    for key, tensor in _midas_weights(state_dict).items():
        if _UNUSED.fullmatch(key):
            continue
        if m := _QKV.fullmatch(key):
            if tensor.shape[0] % 3:
                raise _not_midas(f"{DEPTH_PREFIX}{key} has shape {tuple(tensor.shape)}, not three stacked q/k/v")
            for part, chunk in zip(("query", "key", "value"), tensor.chunk(3, dim=0)):
                converted[f"dpt.encoder.layer.{m[1]}.attention.attention.{part}.{m[2]}"] = chunk
            continue
        if (name := _to_hf(key)) is None:
            unknown.append(key)
        else:
            converted[name] = tensor
    if unknown:
        raise _not_midas(f"unknown weight {DEPTH_PREFIX}{min(unknown)}"
                         + (f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""))
    return converted


def _check_layout(model: nn.Module, weights: dict) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in weights]
    if missing:
        raise _incomplete([_to_midas(k) for k in missing])
    extra = [k for k in weights if k not in expected]
    if extra:
        raise _not_midas(f"{DEPTH_PREFIX}{_to_midas(extra[0])} has no place in a DPT-Hybrid of its sizes")
    for key, want in expected.items():
        if tuple(weights[key].shape) != want:
            raise _not_midas(f"{DEPTH_PREFIX}{_to_midas(key)} has shape {tuple(weights[key].shape)} where its other "
                             f"weights give {want}")


def load_depth_estimator_from_checkpoint(state_dict: dict, dtype: torch.dtype = torch.float32) -> DepthEstimator | None:
    """The MiDaS depth model of an SD 2 depth checkpoint (on the CPU, in `dtype`, eval mode); None when the state
    dict holds no `depth_model.model.*` weights. Tensors are used in place (no copy when dtype already matches)."""
    if not any(k.startswith(DEPTH_PREFIX) for k in state_dict):
        stray = next((k for k in state_dict if k.startswith("depth_model.")), None)
        if stray:
            raise _not_midas(f"its weights are not under '{DEPTH_PREFIX}' (found {stray})")
        return None
    config = depth_estimator_config(state_dict)
    weights = convert_midas_weights(state_dict)
    with init_empty_weights():
        dpt = DPTForDepthEstimation(config)
    _check_layout(dpt, weights)
    dpt.load_state_dict(weights, strict=True, assign=True)
    dpt = dpt.to(dtype).eval().requires_grad_(False)
    return DepthEstimator(dpt, net_size=config.image_size)


# ---------------------------------------------------------------------------------- loading from a folder
def load_depth_estimator_from_folder(path: str | Path, dtype: torch.dtype = torch.float32) -> DepthEstimator:
    """A transformers-format DPT depth model (config.json + weights, e.g. a copy of Intel/dpt-hybrid-midas) from a
    local folder such as models/depth/<name>. preprocessor_config.json, when present, gives the input mean/std."""
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"No depth model in {path}: a transformers DPT folder needs config.json beside its "
                              "weights (model.safetensors). Copy the whole model folder into models/depth/.")
    try:
        model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{config_file} is not readable JSON ({e}); re-copy the model folder.") from None
    if model_type != "dpt":
        raise CheckpointError(f"{path.name} holds a '{model_type}' model, not a DPT depth model (model_type 'dpt').")
    config = DPTConfig.from_pretrained(str(path), local_files_only=True)
    if not config.is_hybrid and config.backbone_config is not None:
        raise CheckpointError(f"{path.name} is a DPT with a separate {config.backbone_config.model_type} backbone; "
                              "only ViT and ViT-hybrid (MiDaS) DPT depth models are supported.")
    try:
        dpt = DPTForDepthEstimation.from_pretrained(str(path), local_files_only=True, dtype=dtype)
    except (OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"Cannot load the depth model in {path}: {e}. Re-copy the complete model folder "
                              "(config.json and model.safetensors).") from None
    mean, std = MIDAS_MEAN, MIDAS_STD
    processor_file = path / "preprocessor_config.json"
    if processor_file.is_file():
        processor = json.loads(processor_file.read_text(encoding="utf-8"))
        mean, std = processor.get("image_mean", mean), processor.get("image_std", std)
    return DepthEstimator(dpt.eval().requires_grad_(False), net_size=config.image_size, image_mean=mean, image_std=std)


# ---------------------------------------------------------------------------------- the UNet's depth channel
def net_input_size(height: int, width: int, net_size: int = 384) -> tuple[int, int]:
    """The size ldm's MiDaS transform resizes a height x width picture to (Resize 'minimal', keep_aspect_ratio,
    ensure_multiple_of=32): one scale for both sides, whichever of net_size/height, net_size/width is nearer 1;
    then each side rounded (half to even) to a multiple of 32. 512x512 -> 384x384, 512x768 -> 384x576."""
    scale_h, scale_w = net_size / height, net_size / width
    scale = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h

    def multiple(x: float) -> int:
        return max(NET_MULTIPLE, round(x / NET_MULTIPLE) * NET_MULTIPLE)
    return multiple(scale * height), multiple(scale * width)


def normalize_depth(depth: torch.Tensor, eps: float = DEPTH_EPS) -> torch.Tensor:
    """Each image's depth (N,1,h,w) min-max scaled to [-1, 1]: 2 * (d - min) / (max - min + eps) - 1."""
    low = depth.amin(dim=(1, 2, 3), keepdim=True)
    high = depth.amax(dim=(1, 2, 3), keepdim=True)
    span = (high - low + eps).clamp_min(1e-12)      # a flat map must not divide by zero
    return 2.0 * (depth - low) / span - 1.0


@torch.no_grad()
def estimate_depth(estimator: DepthEstimator, image: torch.Tensor, latent_hw: tuple[int, int]) -> torch.Tensor:
    """Depth conditioning for images (N,3,H,W) in [-1, 1]: (N,1,h,w) float32 in [-1, 1), on the image's device."""
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"expected images (N, 3, H, W), got shape {tuple(image.shape)}")
    param = next(estimator.parameters())
    size = net_input_size(image.shape[-2], image.shape[-1], estimator.net_size)
    # 1. ldm's MiDaS transform: bicubic resize (cv2 INTER_CUBIC: a=-0.75, half-pixel centres, no clamp), then
    #    (x01 - mean) / std, which for MiDaS' 0.5/0.5 is the [-1, 1] image itself
    x = F.interpolate(image.float(), size=size, mode="bicubic", align_corners=False)
    mean = x.new_tensor(estimator.image_mean).view(1, 3, 1, 1)
    std = x.new_tensor(estimator.image_std).view(1, 3, 1, 1)
    x = x * (0.5 / std) + (0.5 - mean) / std
    # 2. the network; MiDaSInference resizes its output to the input size (a DPT's output already is)
    depth = estimator(x.to(param.device, param.dtype)).unsqueeze(1).float()
    if tuple(depth.shape[-2:]) != size:
        depth = F.interpolate(depth, size=size, mode="bicubic", align_corners=False)
    # 3. LatentDepth2ImageDiffusion: to the latent grid, then per image to [-1, 1]
    depth = F.interpolate(depth, size=tuple(latent_hw), mode="bicubic", align_corners=False)
    return normalize_depth(depth).to(image.device)


def _grayscale(image: Image.Image) -> np.ndarray:
    if image.mode.startswith("I;16") or image.mode == "I":        # 16-bit depth PNGs
        return np.asarray(image, dtype=np.float32) / 65535.0
    if image.mode == "F":
        return np.asarray(image, dtype=np.float32)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def depth_from_image(depth_image: Image.Image, latent_hw: tuple[int, int]) -> torch.Tensor:
    """An uploaded depth map (brighter = nearer, as MiDaS and depth_to_pil draw it; RGB is read as luma) as depth
    conditioning (1,1,h,w) in [-1, 1): resized to the latent grid (bicubic) and normalised like estimate_depth."""
    depth = torch.from_numpy(_grayscale(depth_image).copy())[None, None]
    depth = F.interpolate(depth, size=tuple(latent_hw), mode="bicubic", align_corners=False)
    return normalize_depth(depth)


def depth_to_pil(depth: torch.Tensor) -> Image.Image:
    """One depth map as used ((h,w), (1,h,w) or (1,1,h,w) in [-1, 1]) as an 8-bit grayscale image: -1 black (far),
    1 white (near). Batches: call per image."""
    values = depth.detach().float().cpu().squeeze()
    if values.ndim != 2:
        raise ValueError(f"expected one depth map, got shape {tuple(depth.shape)}")
    pixels = ((values.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8).numpy()
    return Image.fromarray(pixels)
