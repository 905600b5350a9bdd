"""The live settings: config.json on disk, the registry of known options, change callbacks, job snapshots.

`opts.key` and `opts.get(key)` read a setting (its default when unset); `opts.set(key, value)` validates it against
its registry entry, then runs the key's onchange callbacks (a failing callback puts the old value back and
re-raises); `opts.save()` writes config.json atomically. A corrupt config.json is kept as config.json.bak and the
program starts on defaults. Keys we do not know (old A1111 configs, extensions not installed, clients) are kept and
saved as they are. `null` for a known key resets it to its default.

A job never reads this object: it gets `snapshot(overrides)`, a frozen copy taken when it starts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sdui.atomic import write_text_atomic
from sdui.errors import UserError
from sdui.settings.definitions import builtin_registry
from sdui.settings.registry import OptionInfo, Registry, copy_value
from sdui.settings.snapshot import Settings

log = logging.getLogger(__name__)


class Options:
    _INTERNAL = frozenset({"data", "registry", "config_file", "frozen"})

    def __init__(
        self, config_file: str | os.PathLike | None = None, *, frozen: bool = False, registry: Registry | None = None
    ):
        self.config_file = Path(config_file) if config_file is not None else None
        self.frozen = frozen  # --freeze-settings
        self.registry = registry if registry is not None else builtin_registry()
        self.data: dict[str, Any] = self.registry.defaults()
        self._explicit: set[str] = set()  # keys loaded from the file or set since: always saved
        self._callbacks: dict[str, list[Callable[[], Any]]] = {}
        self._lock = threading.RLock()
        for key, info in self.registry.items():
            if info.onchange is not None:
                self.onchange(key, info.onchange)
        if self.config_file is not None:
            self.load(self.config_file)

    # ---- reading -------------------------------------------------------------------------------------------------
    @property
    def data_labels(self) -> dict[str, OptionInfo]:
        """A1111's name for the registry entries (extensions read it)."""
        return self.registry.entries

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        data = self.__dict__.get("data")
        if data is not None and name in data:
            return data[name]
        raise AttributeError(f"no setting named {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        # `opts.key = value` (A1111 style) stores a validated value without callbacks
        if name.startswith("_") or name in self._INTERNAL:
            object.__setattr__(self, name, value)
        elif name in self.data or name in self.registry:
            self.set(name, value, run_callbacks=False)
        else:
            raise AttributeError(f"no setting named {name!r}; use opts.add_option() to add one")

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def get_default(self, key: str) -> Any:
        info = self.registry.get(key)
        return info.default if info is not None else None

    def cast_value(self, key: str, value: Any) -> Any:
        """The value `set` would store for `key` (validated for known keys), without storing it."""
        info = self.registry.get(key)
        if value is None and info is not None:
            return copy_value(info.default)
        return info.validate(key, value) if info is not None else value

    def snapshot(self, overrides: Mapping[str, Any] | None = None) -> Settings:
        """The frozen settings of one job: the current values with `overrides` (validated) on top.

        The shared settings stay as they are: a request's override_settings live only in its snapshot."""
        changes = {key: self.cast_value(key, value) for key, value in (overrides or {}).items()}
        with self._lock:
            return Settings({**self.data, **changes})

    # ---- writing -------------------------------------------------------------------------------------------------
    def set(self, key: str, value: Any, *, run_callbacks: bool = True, is_api: bool = False) -> bool:
        """Store a setting; True when it changed. Raises InvalidRequestError (a UserError) for a bad value."""
        if self.frozen:
            raise UserError(
                f"Settings are frozen (--freeze-settings); {key!r} was not changed. "
                "Restart without --freeze-settings to change settings."
            )
        info = self.registry.get(key)
        if is_api and info is not None and info.restrict_api:  # A1111 ignores these silently; we say so in the log
            log.warning("Setting %s cannot be changed through the API; the value sent was ignored.", key)
            return False
        with self._lock:
            value = self.cast_value(key, value)
            missing = object()
            old = self.data.get(key, missing)
            self._explicit.add(key)
            if old is not missing and old == value:
                return False
            self.data[key] = value
            if not run_callbacks:
                return True
            try:
                for fn in self._callbacks.get(key, ()):
                    fn()
            except BaseException:
                if old is missing:
                    self.data.pop(key, None)
                else:
                    self.data[key] = old
                raise
            return True

    def onchange(self, key: str, fn: Callable[[], Any], call: bool = False) -> None:
        """Run fn() after `key` changes through set(); `call=True` also runs it now (A1111's default)."""
        self._callbacks.setdefault(key, []).append(fn)
        if call:
            fn()

    def add_option(self, key: str, info: OptionInfo | Any) -> None:
        """Register a setting (A1111's opts.add_option): an OptionInfo, or a bare default value."""
        with self._lock:
            info = self.registry.add(key, info)
            if key not in self.data:
                self.data[key] = copy_value(info.default)
            elif key in self._explicit:
                try:  # a value loaded before the option existed is validated now
                    self.data[key] = info.validate(key, self.data[key])
                except UserError as e:
                    log.warning("Setting %s: %s Using the default.", key, e.message)
                    self.data[key] = copy_value(info.default)
        if info.onchange is not None:
            self.onchange(key, info.onchange)

    # ---- file ----------------------------------------------------------------------------------------------------
    def load(self, path: str | os.PathLike) -> None:
        """Read settings from path; never raises: problems are logged and defaults used."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as e:
            log.error("Cannot read settings file %s (%s); starting with default settings.", path, e)
            return
        try:
            loaded = json.loads(raw.decode("utf-8"))  # invalid UTF-8 is a ValueError too
            if not isinstance(loaded, dict):
                raise ValueError(f"expected a JSON object, found {type(loaded).__name__}")
        except (ValueError, RecursionError) as e:  # RecursionError: JSON nested deeper than Python's stack
            backup = path.with_name(path.name + ".bak")
            try:
                shutil.copy2(path, backup)
                kept = f"the broken file was kept as {backup}"
            except OSError as copy_error:
                kept = f"it could not be backed up ({copy_error})"
            log.error("Settings file %s is corrupt (%s); %s. Starting with default settings.", path, e, kept)
            return
        with self._lock:
            for key, value in loaded.items():
                if key in self.registry:
                    try:
                        value = self.cast_value(key, value)
                    except UserError as e:
                        log.warning("Settings file %s: %s Using the default.", path, e.message)
                        continue
                self.data[key] = value
                self._explicit.add(key)

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write set and non-default settings to config.json atomically (temp file + rename)."""
        path = Path(path) if path is not None else self.config_file
        if path is None:
            raise ValueError("Options.save() needs a path: this Options object has no config_file")
        with self._lock:
            out = {
                k: v
                for k, v in self.data.items()
                if (k in self._explicit or k not in self.registry or v != self.registry[k].default)
                and not (k in self.registry and self.registry[k].do_not_save)
            }
            text = json.dumps(
                out, indent=4, ensure_ascii=False, default=str
            )  # an odd extension value must not stop the save
            # still under the lock: an older snapshot must never replace a newer one
            write_text_atomic(path, text)
        return path
