"""The VAE a job decodes and encodes with: A1111's `sd_vae` setting.

"Automatic": a VAE file named after the checkpoint (`<checkpoint>.vae.pt` / `.vae.ckpt` / `.vae.safetensors`,
beside it or in the VAE folder), else the checkpoint's own; "None": the checkpoint's own; a file name of the VAE
folder: that file. The choice swaps the model's VAE without reloading the checkpoint, and stays until a job wants
another (the checkpoint's own VAE is kept to go back to). An external VAE is named in the infotext ("VAE hash":
sha256[:10], "VAE": its file name), as A1111 writes it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from sdui.core.hooks import ProcessingHooks
from sdui.devices import conv_memory_format
from sdui.errors import InvalidRequestError
from sdui.models.files import list_files
from sdui.models.hashes import HashCache, sha256

log = logging.getLogger(__name__)
AUTOMATIC, NONE = "Automatic", "None"
SUFFIXES = (".safetensors", ".pt", ".ckpt")
NEAR_CHECKPOINT = (".vae.safetensors", ".vae.pt", ".vae.ckpt")


def vae_files(vae_dir: Path, ckpt_dirs=()) -> dict[str, Path]:
    """Name -> file: everything in the VAE folder (named by its path there), and `*.vae.*` files beside the
    checkpoints (by file name)."""
    found = {p.relative_to(vae_dir).as_posix(): p for p in list_files(vae_dir, SUFFIXES)}
    for folder in ckpt_dirs:
        for p in list_files(Path(folder), SUFFIXES):
            if p.name.lower().endswith(NEAR_CHECKPOINT):
                found.setdefault(p.name, p)
    return found


def resolve(choice: str, checkpoint_path: str | None, files: dict[str, Path]) -> Path | None:
    """The VAE file `choice` means for a checkpoint, None for the checkpoint's own."""
    choice = (choice or AUTOMATIC).strip()
    if choice == NONE:
        return None
    if choice == AUTOMATIC:
        if not checkpoint_path:
            return None
        stem = Path(checkpoint_path).stem
        beside = [Path(checkpoint_path).with_name(stem + suffix) for suffix in NEAR_CHECKPOINT]
        near = next((p for p in beside if p.is_file()), None)
        return near or next((files[stem + s] for s in NEAR_CHECKPOINT if stem + s in files), None)
    found = files.get(choice) or next(
        (p for name, p in files.items() if choice in (Path(name).name, Path(name).stem)), None
    )
    if found is None:
        known = ", ".join(sorted(files)) or "none (put .safetensors VAE files into models/VAE)"
        raise InvalidRequestError(f"VAE {choice!r} not found; use Automatic, None or one of: {known}")
    return found


def use_vae(model, path: Path | None) -> None:
    """Make `path` (None: the checkpoint's own) the model's VAE, loading it when it is not the current one."""
    state = model.applied.setdefault("vae", {"path": None, "own": model.vae})
    if state["path"] == path:
        return
    if path is None:
        model.vae = state["own"]
    else:
        model.vae = load_vae_file(path, model.arch, state["own"])
        model.on_undo("vae", lambda: use_vae(model, None))
    state["path"] = path


def load_vae_file(path: Path, arch: str, like) -> torch.nn.Module:
    """A VAE file (LDM key names, with or without `first_stage_model.`) as the model's VAE class, on the device
    and in the dtype of the checkpoint's own VAE `like`."""
    from sdui.models.loading import read_state_dict
    from sdui.models.unet_vae_loading import VAE_PREFIX, load_vae

    sd = read_state_dict(path)
    if not any(k.startswith(VAE_PREFIX) for k in sd):
        sd = {VAE_PREFIX + k: v for k, v in sd.items()}
    if f"{VAE_PREFIX}decoder.conv_in.weight" not in sd:
        raise InvalidRequestError(f"{path.name} is not a VAE in the original (LDM) layout; use another VAE file")
    parameter = next(like.parameters())
    vae = load_vae(sd, arch, parameter.dtype).to(parameter.device)
    return vae.to(memory_format=conv_memory_format(parameter.device, parameter.dtype))


class VaeChoice(ProcessingHooks):
    def __init__(self, vae_dir: Path, ckpt_dirs=(), hash_cache: HashCache | None = None):
        self.vae_dir, self.ckpt_dirs, self.hash_cache = Path(vae_dir), tuple(ckpt_dirs), hash_cache

    def before_process(self, run) -> None:
        model = run.model
        checkpoint = model.checkpoint.filename if model.checkpoint is not None else None
        path = resolve(run.settings.sd_vae, checkpoint, vae_files(self.vae_dir, self.ckpt_dirs))
        use_vae(model, path)
        if path is not None:
            run.extra_generation_params["VAE hash"] = sha256(path, self.hash_cache, f"vae/{path.name}")[:10]
            run.extra_generation_params["VAE"] = path.name
