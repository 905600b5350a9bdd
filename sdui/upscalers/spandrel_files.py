"""Weight files of the networks spandrel knows (upscalers, face restorers): read without unpickling code
(safetensors, or `torch.load(weights_only=True)`), recognised by spandrel from their keys."""

from __future__ import annotations

from pathlib import Path

import torch

SUFFIXES = (".pth", ".pt", ".safetensors")  # what read_state_dict reads


def read_state_dict(path: Path) -> dict:
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict):
        raise ValueError("it holds no state dict (TorchScript and pickled models are not loaded)")
    return data


def load_descriptor(path: Path, error: type[Exception], kind: str, unknown: str):
    """spandrel's descriptor of the network in `path`. `error(message)` is raised when the file cannot be read
    ("cannot read <kind> file ...") or holds no architecture spandrel knows ("<file name> <unknown>")."""
    import spandrel  # imported on first use: it registers ~40 architectures

    try:
        state_dict = read_state_dict(path)
    except Exception as e:
        raise error(f"cannot read {kind} file {path.name}: {e}; replace the file") from e
    try:
        return spandrel.ModelLoader().load_from_state_dict(spandrel.canonicalize_state_dict(state_dict))
    except spandrel.UnsupportedModelError as e:
        raise error(f"{path.name} {unknown}") from e
