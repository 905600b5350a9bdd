"""ControlNet model files: found in the folders the caller names, titled as the extension titles them, loaded into
diffusers' ControlNetModel, and kept in a small LRU cache.

- Files: .safetensors/.pth/.ckpt/.pt anywhere below the folders, and diffusers folders (config.json +
  diffusion_pytorch_model.safetensors). The title is `name [hash]`: the file's stem (a folder's name) and A1111's
  legacy short hash (sha256 of the 64 KiB at 1 MiB), which the extension shows via sd_models.model_hash. An
  earlier folder wins a title; "None" means no model.
- Layouts: lllyasviel's original one (`input_blocks.*`, `middle_block.*`, `input_hint_block.*`, `zero_convs.*`,
  `middle_block_out.*`, with or without `control_model.`) and diffusers' key names in one file. The architecture
  (widths, blocks, transformer depths, context width, SDXL's added embeddings) is read from the weights; the
  renaming is diffusers' own single-file converter. Nothing is downloaded; .ckpt/.pth/.pt are read only through
  torch.load(weights_only=True) (sdui.models.loading.read_state_dict).
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import ControlNetModel
from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint
from safetensors.torch import load_file

from sdui.devices import DevicePolicy
from sdui.errors import CheckpointError, InvalidRequestError
from sdui.models.files import list_files
from sdui.models.hashes import legacy_short_hash
from sdui.models.loading import read_state_dict
from sdui.models.unet_vae_loading import HEAD_CHANNELS, SD1_NUM_HEADS, SDXL_TIME_EMBED_DIM, _instantiate

SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors")  # the extension's CN_MODEL_EXTS
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
NONE = "None"
PREFIX = "control_model."
HINT_CONV_OUT = 14  # lllyasviel's hint encoder ends with conv 14 (diffusers' converter expects it there)
_TITLE = re.compile(r"^(.*?)\s*\[[0-9a-fA-F]+\]$")


class ControlNetModelError(CheckpointError):
    """A ControlNet file that cannot be used: unreadable, or not a ControlNet we can build."""


class UnknownControlNetError(InvalidRequestError):
    """A unit names a ControlNet model that is not in the folders."""


@dataclass(frozen=True)
class ControlNetFile:
    name: str  # the file's stem, or the diffusers folder's name
    path: Path  # the file, or the diffusers folder
    short_hash: str

    @property
    def title(self) -> str:
        return f"{self.name} [{self.short_hash}]"

    @property
    def is_folder(self) -> bool:
        return self.path.is_dir()


# ---------------------------------------------------------------------------------------------------------------
# The catalog
# ---------------------------------------------------------------------------------------------------------------
def _diffusers_folders(folder: Path) -> list[Path]:
    return sorted(p.parent for p in folder.rglob("config.json") if (p.parent / DIFFUSERS_WEIGHTS).is_file())


def scan(folders: Sequence[Path]) -> list[ControlNetFile]:
    """Every ControlNet in `folders`, each folder's sorted by relative path; an earlier title wins."""
    found: dict[str, ControlNetFile] = {}
    for folder in (Path(f) for f in folders):
        if not folder.is_dir():
            continue
        model_dirs = _diffusers_folders(folder)
        entries = [ControlNetFile(d.name, d, legacy_short_hash(d / DIFFUSERS_WEIGHTS)) for d in model_dirs]
        for path in list_files(folder, SUFFIXES):
            if path.parent in model_dirs:  # the weights of a diffusers folder, listed as the folder
                continue
            entries.append(ControlNetFile(path.stem, path, legacy_short_hash(path)))
        for entry in sorted(entries, key=lambda e: str(e.path.relative_to(folder)).lower()):
            if entry.name != NONE:  # a file called None.pth would shadow "no model"
                found.setdefault(entry.title, entry)
    return list(found.values())


class ControlNetCatalog:
    """The ControlNet models in `folders` (e.g. models/ControlNet, then extensions/*/models); `refresh()` rescans."""

    def __init__(self, folders: Sequence[Path]):
        self.folders = [Path(f) for f in folders]
        self._entries: list[ControlNetFile] = []
        self._lock = threading.Lock()
        self.refresh()

    def refresh(self) -> None:
        entries = scan(self.folders)
        with self._lock:
            self._entries = entries

    def entries(self) -> list[ControlNetFile]:
        with self._lock:
            return list(self._entries)

    def titles(self, *, include_none: bool = True) -> list[str]:
        """The titles the extension's model list shows: "None" first."""
        return ([NONE] if include_none else []) + [e.title for e in self.entries()]

    def find(self, name: str | None) -> ControlNetFile | None:
        """The model a unit names: its title, its bare name, its name with another hash (case-insensitive), or the
        shortest name containing it, as the extension looks models up. None for "None" or empty."""
        if name is None or not str(name).strip() or str(name).strip() == NONE:
            return None
        name = str(name).strip()
        entries = self.entries()
        for entry in entries:
            if entry.title == name:
                return entry
        match = _TITLE.match(name)
        wanted = (match[1] if match else name).lower()
        by_name: dict[str, ControlNetFile] = {}
        for entry in entries:
            by_name.setdefault(entry.name.lower(), entry)
        if wanted in by_name:
            return by_name[wanted]
        containing = sorted((n for n in by_name if wanted in n), key=len)
        if containing:
            return by_name[containing[0]]
        known = ", ".join(self.titles(include_none=False)) or "none"
        error = UnknownControlNetError(
            f"ControlNet model '{name}' not found. Known models: {known}. Put the model file into "
            f"{self.folders[0] if self.folders else 'models/ControlNet'} and refresh the model list."
        )
        error.api_extra = {"models": self.titles()}
        raise error


# ---------------------------------------------------------------------------------------------------------------
# Reading the weights and their architecture
# ---------------------------------------------------------------------------------------------------------------
def _refuse(name: str, why: str) -> ControlNetModelError:
    return ControlNetModelError(f"ControlNet model {name}: {why}")


def _indices(keys, prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in keys if (m := pattern.match(k))})


def _strip_prefix(sd: dict, name: str) -> dict:
    """The ControlNet's own tensors, without `control_model.`; foreign layouts refused with what they are."""
    if any(k.startswith(PREFIX) for k in sd):
        sd = {k[len(PREFIX) :]: v for k, v in sd.items() if k.startswith(PREFIX)}
    keys = set(sd)
    if any(k.startswith("body.") for k in keys) or "style_embedding" in keys:
        raise _refuse(name, "this is a T2I-Adapter, which is not supported; use a ControlNet model.")
    if "lora_controlnet" in keys:
        raise _refuse(name, "this is a Control-LoRA, which is not supported; use a full ControlNet model.")
    if "difference" in keys:
        raise _refuse(name, "this is a 'difference' ControlNet (weights relative to SD 1.5); use the full model.")
    if "time_embedding.linear_1.weight" in keys and "controlnet_cond_embedding.conv_in.weight" in keys:
        return sd  # diffusers' key names in one file
    if (
        "time_embed.0.weight" not in keys
        or "input_hint_block.0.weight" not in keys
        or "zero_convs.0.0.weight" not in keys
    ):
        raise _refuse(
            name,
            "not a ControlNet in a known layout (expected input_hint_block.*, zero_convs.* and the UNet encoder's "
            "weights, with or without 'control_model.'). Is it a Stable Diffusion checkpoint or another model type?",
        )
    return sd


@dataclass
class _Shape:
    """What the config needs, read from either naming."""

    in_channels: int
    hint_channels: int
    hint_widths: list[int]
    levels: list[tuple[int, int, int]]  # per level: (width, ResBlocks, transformer depth)
    mid_depth: int
    context_dim: int
    linear: bool
    pooled_dim: int | None


def _shape_original(sd: dict, name: str) -> _Shape:
    hint = _indices(sd, "input_hint_block.")
    if not hint or hint[-1] != HINT_CONV_OUT:
        raise _refuse(name, f"its hint encoder ends at conv {hint[-1] if hint else '?'}, not {HINT_CONV_OUT}.")
    levels: list[list[tuple[int, int]]] = [[]]
    for i in _indices(sd, "input_blocks.")[1:]:
        if f"input_blocks.{i}.0.op.weight" in sd:
            levels.append([])
            continue
        width = sd[f"input_blocks.{i}.0.out_layers.3.weight"].shape[0]
        levels[-1].append((width, len(_indices(sd, f"input_blocks.{i}.1.transformer_blocks."))))
    return _Shape(
        in_channels=sd["input_blocks.0.0.weight"].shape[1],
        hint_channels=sd["input_hint_block.0.weight"].shape[1],
        hint_widths=[sd[f"input_hint_block.{j}.weight"].shape[0] for j in range(0, HINT_CONV_OUT, 4)],
        levels=[_level(level, n, name) for n, level in enumerate(levels)],
        mid_depth=len(_indices(sd, "middle_block.1.transformer_blocks.")),
        **_attention(sd, name),
        pooled_dim=sd["label_emb.0.0.weight"].shape[1] if "label_emb.0.0.weight" in sd else None,
    )


def _shape_diffusers(sd: dict, name: str) -> _Shape:
    blocks = _indices(sd, "controlnet_cond_embedding.blocks.")
    levels = []
    for n in _indices(sd, "down_blocks."):
        resnets = _indices(sd, f"down_blocks.{n}.resnets.")
        width = sd[f"down_blocks.{n}.resnets.0.conv2.weight"].shape[0]
        depth = len(_indices(sd, f"down_blocks.{n}.attentions.0.transformer_blocks."))
        levels.append((width, len(resnets), depth))
    return _Shape(
        in_channels=sd["conv_in.weight"].shape[1],
        hint_channels=sd["controlnet_cond_embedding.conv_in.weight"].shape[1],
        hint_widths=[sd["controlnet_cond_embedding.conv_in.weight"].shape[0]]
        + [sd[f"controlnet_cond_embedding.blocks.{j}.weight"].shape[0] for j in blocks[1::2]],
        levels=levels,
        mid_depth=len(_indices(sd, "mid_block.attentions.0.transformer_blocks.")),
        **_attention(sd, name),
        pooled_dim=sd["add_embedding.linear_1.weight"].shape[1] if "add_embedding.linear_1.weight" in sd else None,
    )


def _level(level: list[tuple[int, int]], n: int, name: str) -> tuple[int, int, int]:
    if not level or len({w for w, _ in level}) != 1 or len({d for _, d in level}) != 1:
        raise _refuse(name, f"encoder level {n} has an irregular layout ({level}); not a Stable Diffusion ControlNet.")
    return level[0][0], len(level), level[0][1]


def _attention(sd: dict, name: str) -> dict:
    to_k = next((k for k in sd if k.endswith("attn2.to_k.weight")), None)
    proj_in = next((k for k in sd if k.endswith(".proj_in.weight")), None)
    if to_k is None or proj_in is None:
        raise _refuse(name, "it has no cross-attention layers; not a Stable Diffusion ControlNet.")
    return {"context_dim": sd[to_k].shape[1], "linear": sd[proj_in].ndim == 2}


def config_from_shape(shape: _Shape) -> dict:
    """A diffusers ControlNetModel config for `shape`: SD1's 8 heads with conv projections, SD2/SDXL's 64-channel
    heads with linear ones (as sdui.models.unet_vae_loading decides for the UNet)."""
    widths = [w for w, _, _ in shape.levels]
    depths = [d for _, _, d in shape.levels]
    layers = {n for _, n, _ in shape.levels}
    if len(layers) != 1:
        raise CheckpointError(f"ControlNet levels have different ResBlock counts ({shape.levels}).")
    if len({d for d in depths if d} | {shape.mid_depth}) == 1:
        transformer_layers: int | list[int] = shape.mid_depth
    else:  # per level, as SDXL's; diffusers takes the middle's depth from the last level
        transformer_layers = [d or 1 for d in depths]
        transformer_layers[-1] = shape.mid_depth if depths[-1] == 0 else depths[-1]
    config = {
        "in_channels": shape.in_channels,
        "conditioning_channels": shape.hint_channels,
        "conditioning_embedding_out_channels": shape.hint_widths,
        "block_out_channels": widths,
        "layers_per_block": layers.pop(),
        "down_block_types": ["CrossAttnDownBlock2D" if d else "DownBlock2D" for d in depths],
        "cross_attention_dim": shape.context_dim,
        "attention_head_dim": [max(1, w // HEAD_CHANNELS) for w in widths] if shape.linear else SD1_NUM_HEADS,
        "use_linear_projection": shape.linear,
        "transformer_layers_per_block": transformer_layers,
        "upcast_attention": shape.context_dim == 1024,  # SD2's attention overflows in half precision otherwise
    }
    if shape.pooled_dim is not None:
        config.update(
            addition_embed_type="text_time",
            addition_time_embed_dim=SDXL_TIME_EMBED_DIM,
            projection_class_embeddings_input_dim=shape.pooled_dim,
        )
    return config


def _convert_original(sd: dict, config: dict) -> dict:
    converted = convert_controlnet_checkpoint(sd, config)
    # the converter leaves SDXL's added embedding (label_emb) out
    for ours, theirs in (("linear_1", "label_emb.0.0"), ("linear_2", "label_emb.0.2")):
        for part in ("weight", "bias"):
            if f"{theirs}.{part}" in sd:
                converted[f"add_embedding.{ours}.{part}"] = sd[f"{theirs}.{part}"]
    return converted


def global_pooling(entry: ControlNetFile) -> bool:
    """Shuffle models average their residuals over the image (the extension reads it from their .yaml config,
    which the weights do not tell): a same-name .yaml with global_average_pooling, else 'shuffle' in the name."""
    yaml_file = entry.path.with_suffix(".yaml")
    if entry.path.is_file() and yaml_file.is_file():
        return "global_average_pooling: true" in yaml_file.read_text(encoding="utf-8", errors="replace").lower()
    return "shuffle" in entry.name.lower()


def load_controlnet(entry: ControlNetFile, dtype: torch.dtype = torch.float32) -> ControlNetModel:
    """The ControlNet of `entry` as a diffusers ControlNetModel (CPU, eval mode, `dtype`)."""
    name = entry.title
    if entry.is_folder:
        config = json.loads((entry.path / "config.json").read_text(encoding="utf-8"))
        config = {k: v for k, v in config.items() if not k.startswith("_")}
        try:
            weights = load_file(str(entry.path / DIFFUSERS_WEIGHTS))
        except Exception as e:  # noqa: BLE001 - safetensors reports damage with its own error types
            raise _refuse(name, f"cannot read {DIFFUSERS_WEIGHTS} ({type(e).__name__}); re-download it.") from None
    else:
        try:
            sd = _strip_prefix(read_state_dict(entry.path), name)
        except ControlNetModelError:
            raise
        except CheckpointError as e:
            raise _refuse(name, e.message) from None
        diffusers_names = "time_embedding.linear_1.weight" in sd
        try:
            shape = _shape_diffusers(sd, name) if diffusers_names else _shape_original(sd, name)
        except KeyError as e:
            raise _refuse(name, f"the weight {e} is missing; the file is damaged or of an unknown layout.") from None
        config = config_from_shape(shape)
        config["global_pool_conditions"] = global_pooling(entry)
        weights = sd if diffusers_names else _convert_original(sd, config)
    try:
        return _instantiate(ControlNetModel, config, weights, f"ControlNet {name}", dtype)
    except CheckpointError as e:
        raise _refuse(name, e.message) from None


# ---------------------------------------------------------------------------------------------------------------
# The cache of loaded models
# ---------------------------------------------------------------------------------------------------------------
class ControlNetCache:
    """Loaded ControlNets, the `size` most recently used kept (the extension's control_net_model_cache_size);
    size 0 keeps none. Keyed by file, its modification time, device and dtype."""

    def __init__(self, size: int = 2):
        self.size = max(0, int(size))
        self._models: OrderedDict[tuple, ControlNetModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, entry: ControlNetFile, policy: DevicePolicy) -> ControlNetModel:
        weights = entry.path / DIFFUSERS_WEIGHTS if entry.is_folder else entry.path
        key = (str(entry.path), weights.stat().st_mtime_ns, str(policy.device), policy.dtype)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            if self.size and len(self._models) >= self.size:  # free one before building another
                self._models.popitem(last=False)
        model = load_controlnet(entry, policy.dtype).to(policy.device)
        with self._lock:
            if self.size:
                self._models[key] = model
                while len(self._models) > self.size:
                    self._models.popitem(last=False)
        return model

    def clear(self) -> None:
        with self._lock:
            self._models.clear()

    def __len__(self) -> int:
        return len(self._models)
