"""A1111's `modules.sd_models`, `modules.sd_samplers` and `modules.devices` for extensions, over the running app's
model store, sampler table and device policy. Lists are read when asked, so a refresh is seen."""

from __future__ import annotations

import contextlib
from collections import namedtuple
from types import SimpleNamespace
from typing import Any

import torch

from sdui.core.samplers import SAMPLERS, find_sampler
from sdui.devices import release_memory
from sdui.extensions import registry


def _app():
    app = registry.REGISTRY.app
    if app is None:
        raise AttributeError("available once the app has started")
    return app


# ----------------------------------------------------------------------------------------------- modules.sd_models


def sd_models_attribute(name: str) -> Any:
    """`sd_models.checkpoints_list` ({title: CheckpointInfo}), `checkpoint_aliases`, `model_data.sd_model`."""
    app = _app()
    if name == "checkpoints_list":
        return {info.title: info for info in app.store.checkpoints}
    if name == "checkpoint_aliases":
        return {alias: info for info in app.store.checkpoints for alias in info.ids}
    if name == "model_data":
        return SimpleNamespace(sd_model=app.store.current)
    raise AttributeError(f"modules.sd_models has no {name!r} here")


def list_models() -> None:
    _app().store.refresh()


def get_closet_checkpoint_match(search_string: str):
    """The checkpoint `search_string` names (A1111's lookup, the name's misspelling included), or None."""
    from sdui.models.discovery import find_checkpoint

    return find_checkpoint(_app().store.checkpoints, search_string)


def select_checkpoint():
    return _app().store.select()


def reload_model_weights(sd_model=None, info=None, forced_reload: bool = False):
    """Load `info` (a CheckpointInfo; default: the one the settings select) and make it current."""
    store = _app().store
    return store.get(info.title if info is not None else None)


def model_hash(filename: str) -> str:
    from sdui.models.hashes import legacy_short_hash

    return legacy_short_hash(filename)


# --------------------------------------------------------------------------------------------- modules.sd_samplers

SamplerData = namedtuple("SamplerData", ["name", "constructor", "aliases", "options"])


def _sampler_data(info) -> SamplerData:
    return SamplerData(info.name, None, list(info.aliases), dict(info.options))


def sd_samplers_attribute(name: str) -> Any:
    """`sd_samplers.all_samplers`, `samplers`, `samplers_for_img2img` (lists of SamplerData), `all_samplers_map`."""
    if name in ("all_samplers", "samplers", "samplers_for_img2img"):
        return [_sampler_data(s) for s in SAMPLERS]
    if name == "all_samplers_map":
        return {s.name: _sampler_data(s) for s in SAMPLERS}
    raise AttributeError(f"modules.sd_samplers has no {name!r} here")


def visible_sampler_names() -> list[str]:
    app = registry.REGISTRY.app
    hidden = set(app.options.get("hide_samplers") or []) if app is not None else set()
    return [s.name for s in SAMPLERS if s.name not in hidden]


def find_sampler_config(name: str) -> SamplerData | None:
    info = find_sampler(name) if name else SAMPLERS[0]
    return None if info is None else _sampler_data(info)


# ------------------------------------------------------------------------------------------------- modules.devices

cpu = torch.device("cpu")


def device_attribute(name: str) -> Any:
    """`devices.device`, `devices.dtype`, ...: the app's policy (CPU float32 before the app has started)."""
    app = registry.REGISTRY.app
    policy = app.policy if app is not None else None
    values = {
        "device": policy.device if policy else cpu,
        "dtype": policy.dtype if policy else torch.float32,
        "dtype_vae": policy.vae_dtype if policy else torch.float32,
        "dtype_unet": policy.dtype if policy else torch.float32,
        "device_interrogate": policy.device if policy else cpu,
        "device_gfpgan": policy.device if policy else cpu,
        "device_esrgan": policy.device if policy else cpu,
        "device_codeformer": policy.device if policy else cpu,
    }
    if name not in values:
        raise AttributeError(f"modules.devices has no {name!r} here")
    return values[name]


def torch_gc() -> None:
    release_memory()


def get_optimal_device():
    return device_attribute("device")


def get_optimal_device_name() -> str:
    return device_attribute("device").type


def has_mps() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def autocast(disable: bool = False):
    """A1111 ran its models under autocast; ours set their dtypes once, so this is a no-op context."""
    return contextlib.nullcontext()


def without_autocast(disable: bool = False):
    return contextlib.nullcontext()
