"""The model store: which checkpoints exist, which one is loaded, and a small RAM cache of recently used ones.

One store per app, built in webui.py and handed to whoever needs a model (no global). Loading goes through one
lock, so two requests for the same checkpoint load it once and two different checkpoints never load at the same
time (that would need the memory of both). On a GPU the cached, not-current models are moved to the CPU.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from sdui.devices import DevicePolicy, release_memory
from sdui.errors import CheckpointError, NoCheckpointError, UserError
from sdui.models.discovery import CheckpointInfo, calculate_shorthash, find_checkpoint, list_checkpoints
from sdui.models.hashes import HashCache
from sdui.models.sd_model import SDModel

log = logging.getLogger(__name__)


class CheckpointFolders(Protocol):
    """Where checkpoints are looked for (sdui.app.paths.DataPaths is one)."""
    ckpt_dirs: tuple[Path, ...]
    ckpt_file: Path


class ModelStore:
    def __init__(self, folders: CheckpointFolders, policy: DevicePolicy, loader: Callable[[str, DevicePolicy], SDModel],
                 *, hash_cache: HashCache | None = None, cache_size: int = 1, no_hashing: bool = False,
                 preferred: Callable[[], str | None] = lambda: None,
                 on_activate: Callable[[CheckpointInfo], None] = lambda info: None):
        """loader(path, policy) -> SDModel. cache_size: models kept in RAM, the loaded one included (values
        below 1 count as 1). preferred(): the checkpoint to use when none is named (the user's setting);
        on_activate(info): told whenever another checkpoint becomes the current one."""
        self.folders = folders
        self.policy = policy
        self.loader = loader
        self.hash_cache = hash_cache
        self.no_hashing = no_hashing
        self.preferred = preferred
        self.on_activate = on_activate
        self._cache_size = cache_size
        self._infos: list[CheckpointInfo] | None = None
        self._cache: OrderedDict[str, SDModel] = OrderedDict()   # filename -> model, least recently used first
        self._current: SDModel | None = None
        self._lock = threading.RLock()       # guards the list, the cache and `current`
        self._load_lock = threading.Lock()   # one load at a time
        self.background_error: BaseException | None = None
        self.loading: CheckpointInfo | None = None  # the checkpoint being read from disk right now

    # ---- listing -------------------------------------------------------------------------------------------------
    def refresh(self) -> list[CheckpointInfo]:
        """Rescan the checkpoint folders (the refresh button, POST /sdapi/v1/refresh-checkpoints)."""
        infos = list_checkpoints(self.folders.ckpt_dirs, extra_ckpt=self.folders.ckpt_file,
                                 hash_cache=self.hash_cache)
        with self._lock:
            # keep the objects loaded models point to, so their titles and hashes stay one truth
            loaded = {m.checkpoint.filename: m.checkpoint for m in self._cache.values() if m.checkpoint is not None}
            infos = [loaded[i.filename] if i.filename in loaded and loaded[i.filename].name == i.name else i
                     for i in infos]
            self._infos = infos
        return list(infos)

    @property
    def checkpoints(self) -> list[CheckpointInfo]:
        with self._lock:
            if self._infos is None:
                self.refresh()
            return list(self._infos)

    def titles(self) -> list[str]:
        return [info.title for info in self.checkpoints]

    def api_list(self) -> list[dict]:
        """GET /sdapi/v1/sd-models."""
        return [info.api_dict() for info in self.checkpoints]

    def _no_checkpoint_error(self) -> NoCheckpointError:
        folders = " or ".join(str(d) for d in self.folders.ckpt_dirs)
        return NoCheckpointError(f"No checkpoint found. Put a .safetensors or .ckpt file into {folders}, "
                                 "then press refresh.")

    def select(self, name: str | None = None) -> CheckpointInfo:
        """The checkpoint `name` refers to (A1111 lookup rules); with no name: the preferred one (the
        sd_model_checkpoint setting), else the loaded one, else the first listed."""
        infos = self.checkpoints or self.refresh()   # a file dropped in since the last scan is found without refresh
        if not infos:
            raise self._no_checkpoint_error()
        if name:
            info = find_checkpoint(infos, name)
            if info is None:
                known = ", ".join(i.title for i in infos[:10]) + (", ..." if len(infos) > 10 else "")
                raise CheckpointError(f"Checkpoint {name!r} not found. Known checkpoints: {known}. If you just added "
                                      "it, press refresh (POST /sdapi/v1/refresh-checkpoints).")
            return info
        wanted = self.preferred()
        info = find_checkpoint(infos, wanted) if wanted else None
        if info is None:
            info = self.current_info or infos[0]
            if wanted:
                log.warning("Checkpoint %r from settings not found; using %s instead.", wanted, info.title)
        return info

    # ---- loading -------------------------------------------------------------------------------------------------
    @property
    def cache_size(self) -> int:
        return max(1, int(self._cache_size))

    @cache_size.setter
    def cache_size(self, size: int) -> None:
        """Models kept in RAM, the loaded one included; shrinking evicts the least recently used now."""
        self._cache_size = size
        with self._lock:
            evicted = self._evict()
        if evicted:
            del evicted
            release_memory()

    @property
    def current(self) -> SDModel | None:
        return self._current

    @property
    def current_info(self) -> CheckpointInfo | None:
        return self._current.checkpoint if self._current is not None else None

    def get(self, name: str | None = None) -> SDModel:
        """The loaded model for `name` (see select), loading it through the RAM cache when needed."""
        info = self.select(name)
        with self._lock:
            model = self._cache.get(info.filename)
            if model is not None:
                self._activate(info.filename, model)
                return model
        with self._load_lock:
            with self._lock:   # another thread may have loaded it while we waited
                model = self._cache.get(info.filename)
                if model is not None:
                    self._activate(info.filename, model)
                    return model
            if not self.no_hashing:
                calculate_shorthash(info, self.hash_cache)   # A1111 hashes at load: the title gains [shorthash]
            # make room first, so peak memory is one model more than the cache, not two (a failed load
            # then leaves no model loaded; the next get() loads again)
            with self._lock:
                evicted = self._evict(keep=self.cache_size - 1)
                if self._current is not None and all(m is not self._current for m in self._cache.values()):
                    self._current = None
                elif self._current is not None:
                    _move(self._current, "cpu", self.policy)
            del evicted
            release_memory()
            log.info("Loading weights from %s", info.filename)
            self.loading = info
            try:
                model = self.loader(info.filename, self.policy)
            finally:
                self.loading = None
            model.checkpoint = info
            with self._lock:
                self._cache[info.filename] = model
                self._activate(info.filename, model)
            log.info("Model loaded: %s", info.title)
            return model

    def load_in_background(self, name: str | None = None,
                           then: Callable[[SDModel], None] | None = None) -> threading.Thread:
        """Start loading in a thread (at start-up, so the port opens first), then call `then(model)`; errors are
        logged and kept in `background_error`; the next get() tries again."""
        def run():
            try:
                model = self.get(name)
                if then is not None:
                    then(model)
            except UserError as e:
                self.background_error = e
                log.warning("%s", e.message)
            except Exception as e:  # noqa: BLE001 - a background thread must report, not die silently
                self.background_error = e
                log.exception("Loading the checkpoint failed")
        thread = threading.Thread(target=run, name="model-load", daemon=True)
        thread.start()
        return thread

    def unload(self) -> None:
        """Drop every loaded model (POST /sdapi/v1/unload-checkpoint); the next get() loads again."""
        with self._load_lock, self._lock:
            self._cache.clear()
            self._current = None
        release_memory()

    # ---- cache internals (call with self._lock held) -------------------------------------------------------------
    def _activate(self, key: str, model: SDModel) -> None:
        self._cache.move_to_end(key)
        changed = self._current is not model
        if self._current is not None and changed:
            _move(self._current, "cpu", self.policy)
        _move(model, self.policy.device, self.policy)
        self._current = model
        if changed:
            self.on_activate(model.checkpoint)

    def _evict(self, keep: int | None = None) -> list:
        """Drop least recently used models until `keep` (default: cache_size) remain."""
        keep = self.cache_size if keep is None else keep
        evicted = []
        while len(self._cache) > keep:
            key, model = self._cache.popitem(last=False)
            log.info("Removed %s from the checkpoint cache", key)
            evicted.append(model)
        return evicted


def _move(model: SDModel, device, policy: DevicePolicy) -> None:
    """Move a model's components between the GPU and the CPU; nothing to do when we run on the CPU."""
    if policy.device.type == "cpu":
        return
    model.undo_applied()  # kept per-job changes hold tensors on the old device: the next job makes them again
    for part in (model.unet, model.vae, *model.text_encoders, model.depth_estimator):
        if part is not None:
            part.to(device)
