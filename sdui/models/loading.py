"""Single-file checkpoint -> SDModel: read the weights, detect what they are, build the diffusers components.

1. read the state dict (.safetensors memory-mapped; .ckpt/.pt only through torch.load(weights_only=True))
2. detect architecture and variant (or take them from a same-name .yaml beside the file)
3. UNet (its weights also answer SD2's v-prediction question), then VAE, then text encoders,
   each taking its tensors out of the state dict so the raw copy is released as we go
4. move to the policy's device/dtypes, eval mode, attach the training noise schedule from configs/<arch>/
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load_file

from sdui.devices import DevicePolicy, conv_memory_format
from sdui.errors import CheckpointError
from sdui.models.detection import detect_arch, detect_prediction_type, detect_variant, spec_from_yaml, yaml_beside
from sdui.models.depth_estimator import load_depth_estimator_from_checkpoint, load_depth_estimator_from_folder
from sdui.models.sd_model import SDModel
from sdui.models.text_encoder_loading import load_text_encoders
from sdui.models.unet_vae_loading import UNET_PREFIX, VAE_PREFIX, load_unet, load_vae

log = logging.getLogger(__name__)

CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs"
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth")


def _unreadable(path: Path, why: str) -> CheckpointError:
    hint = "" if path.suffix.lower() == ".safetensors" else " (prefer .safetensors where the model offers it)"
    return CheckpointError(f"Cannot read the checkpoint {path.name}: {why}. The file is damaged or incomplete; "
                           f"re-download it{hint}.")


def _read_ahead(path: Path) -> None:
    """Ask the kernel to start reading the whole file into the page cache now, in the background: the memory-mapped
    tensors are then converted while the disk streams, instead of each page fault waiting for its own small read."""
    if hasattr(os, "posix_fadvise"):  # not on Windows or macOS, where the mapped reads simply stay on demand
        try:
            with open(path, "rb") as f:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass


def _read_safetensors(path: Path) -> dict:
    _read_ahead(path)
    try:
        return load_file(str(path))         # memory-mapped: tensors are paged in as they are used
    except Exception as e:  # noqa: BLE001 - safetensors reports bad headers/offsets with its own error types
        raise _unreadable(path, f"not a valid safetensors file ({_describe(e)})") from None


class _Discarded:
    """Stands in for bookkeeping objects that training checkpoints carry beside the weights. Nothing of the named
    class is imported or run: the safe unpickler builds this empty object instead, and we drop it."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


# found outside 'state_dict' in lightning-era files (the original sd-v1-4.ckpt among them): the checkpoint callback
# and numpy counters. A1111's restricted unpickler allows them too; we only allow a harmless stand-in.
_TRAINING_LEFTOVERS = ("pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint", "numpy.core.multiarray.scalar",
                       "numpy._core.multiarray.scalar", "numpy.dtype")


def _read_pickle(path: Path):
    def load(mmap: bool):
        with torch.serialization.safe_globals([(_Discarded, name) for name in _TRAINING_LEFTOVERS]):
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    try:
        try:
            return load(mmap=zipfile.is_zipfile(path))     # mmap needs the zip format of torch >= 1.6
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            return load(mmap=False)
    except pickle.UnpicklingError as e:
        # torch's safe unpickler names the class or function a pickle asked for ("... GLOBAL posix.system ...");
        # anything else it rejects is a damaged or foreign file
        if "GLOBAL" in str(e):
            raise CheckpointError(
                f"Refused to load {path.name}: besides weights it contains Python objects that would run code when "
                "unpickled, which can be malware. Use a .safetensors version of this model instead (prefer "
                ".safetensors downloads).") from None
        raise _unreadable(path, "not a valid PyTorch checkpoint (corrupt pickle)") from None
    except Exception as e:  # noqa: BLE001 - a damaged pickle fails with any error (EOFError, KeyError, zip errors...)
        raise _unreadable(path, _describe(e)) from None


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint file, keyed by their original names (a top-level 'state_dict' nesting removed)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: {path}. Refresh the checkpoint list and pick an existing file.")
    if path.stat().st_size == 0:
        raise _unreadable(path, "it is empty (0 bytes), so the download or copy did not finish")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        sd = _read_safetensors(path)
    elif suffix in PICKLE_SUFFIXES:
        sd = _read_pickle(path)
        if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
            sd = sd["state_dict"]
    else:
        raise CheckpointError(f"{path.name}: unknown checkpoint format '{suffix}'; use .safetensors or .ckpt.")
    if not isinstance(sd, dict):
        raise _unreadable(path, f"it holds a {type(sd).__name__}, not a dictionary of weights")
    # lightning checkpoints carry counters (global_step, epoch) beside the weights
    tensors = {k: v for k, v in sd.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise _unreadable(path, "it contains no weights")
    return tensors


def scheduler_config_for(arch: str, prediction_type: str) -> dict:
    """The training noise schedule of `arch` as a diffusers scheduler config, with the detected prediction type."""
    name = "sd2-v" if arch == "sd2" and prediction_type == "v_prediction" else arch
    config = json.loads((CONFIGS_DIR / name / "scheduler_config.json").read_text(encoding="utf-8"))
    config["prediction_type"] = prediction_type
    return config


def _take(sd: dict, prefix: str) -> dict:
    """Remove and return the entries under `prefix`, so each component's tensors are dropped once it is built."""
    return {k: sd.pop(k) for k in [k for k in sd if k.startswith(prefix)]}


def _estimator_from_folder(depth_dir: Path):
    """A depth checkpoint without MiDaS weights: the first transformers DPT folder under models/depth/, if any."""
    folders = sorted(p.parent for p in depth_dir.glob("*/config.json")) if depth_dir.is_dir() else []
    if not folders:
        return None
    log.info("Depth estimator for this depth checkpoint: %s", folders[0])
    return load_depth_estimator_from_folder(folders[0], torch.float32)


def load_sd_model(path: str | Path, policy: DevicePolicy, depth_dir: str | Path | None = None) -> SDModel:
    path = Path(path)
    sd = read_state_dict(path)

    yaml_path = yaml_beside(path)
    spec = spec_from_yaml(yaml_path, sd) if yaml_path else None
    arch = spec.arch if spec else detect_arch(sd)
    variant = spec.variant if spec else detect_variant(sd, arch)

    unet = load_unet(_take(sd, UNET_PREFIX), arch, policy.dtype).to(policy.device)
    unet = unet.to(memory_format=conv_memory_format(policy.device, policy.dtype))
    prediction_type = spec.prediction_type if spec else detect_prediction_type(sd, arch, variant, unet)
    vae = load_vae(_take(sd, VAE_PREFIX), arch, policy.vae_dtype).to(policy.device)
    vae = vae.to(memory_format=conv_memory_format(policy.device, policy.vae_dtype))
    text_encoders, tokenizers = load_text_encoders(sd, arch, policy.dtype)
    # fp32: the estimator runs once per image, and fp16 MiDaS is where depth maps go wrong
    depth_estimator = load_depth_estimator_from_checkpoint(_take(sd, "depth_model."), torch.float32)
    if depth_estimator is None and variant == "depth" and depth_dir is not None:
        depth_estimator = _estimator_from_folder(Path(depth_dir))
    if depth_estimator is not None:
        depth_estimator = depth_estimator.to(policy.device).eval()
    del sd
    text_encoders = [encoder.to(policy.device).eval() for encoder in text_encoders]
    if policy.attention == "xformers":      # diffusers' public switch; SDPA is its default otherwise
        unet.enable_xformers_memory_efficient_attention()
        vae.enable_xformers_memory_efficient_attention()

    log.info("Loaded %s: %s %s, %s%s", path.name, arch, variant, prediction_type,
             f" (config {yaml_path.name})" if yaml_path else "")
    return SDModel(arch=arch, variant=variant, prediction_type=prediction_type, unet=unet, vae=vae,
                   text_encoders=text_encoders, tokenizers=tokenizers, depth_estimator=depth_estimator,
                   scheduler_config=scheduler_config_for(arch, prediction_type),
                   config_source=str(yaml_path) if yaml_path else "detected")
