"""What extension code has registered, for the whole process.

A1111's extension surface is module-level: an extension calls `script_callbacks.on_app_started(fn)` or defines a
`scripts.Script` subclass at import time, with no app in hand. Those registrations are kept here, the one
process-wide store of this program, confined to the extension bridge: our core never reads it; the bridge turns
it into ProcessingHooks and routes that it hands to the app explicitly.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

# A1111's callback categories (script_callbacks.on_<category>); others are accepted and logged
CATEGORIES = (
    "app_started",
    "before_reload",
    "model_loaded",
    "ui_tabs",
    "ui_train_tabs",
    "ui_settings",
    "before_image_saved",
    "image_saved",
    "extra_noise",
    "cfg_denoiser",
    "cfg_denoised",
    "cfg_after_cfg",
    "before_component",
    "after_component",
    "image_grid",
    "infotext_pasted",
    "script_unloaded",
    "before_ui",
    "list_optimizers",
    "list_unets",
    "before_token_counter",
)


@dataclass
class ScriptClass:
    cls: type
    extension: str  # the extension's folder name ("" for scripts of the program)
    path: Path


@dataclass
class Callback:
    category: str
    fn: Any
    name: str  # A1111's "<extension>/<file>/<category>[/<name>]"


@dataclass
class Registry:
    scripts: list[ScriptClass] = field(default_factory=list)
    callbacks: dict[str, list[Callback]] = field(default_factory=dict)
    loading_extension: str = ""
    loading_path: Path | None = None
    basedir: Path | None = None  # what modules.scripts.basedir() answers while a script file loads
    app: Any = None  # the AppContext, once webui.py has built it (modules.shared reads it)
    problems: list = field(default_factory=list)  # loader.Problem of every failure, for the Extensions tab


REGISTRY = Registry()


def reset() -> None:
    """Forget every registration (tests; A1111's "reload UI" reloads scripts the same way)."""
    global REGISTRY
    REGISTRY.scripts.clear()
    REGISTRY.callbacks.clear()
    REGISTRY.problems.clear()
    REGISTRY.app = None


@contextlib.contextmanager
def loading(extension, path: Path):
    """While one script file of `extension` imports: basedir() is the extension's folder, callbacks are named
    after it."""
    REGISTRY.loading_extension, REGISTRY.loading_path, REGISTRY.basedir = extension.name, path, extension.path
    try:
        yield
    finally:
        REGISTRY.loading_extension, REGISTRY.loading_path, REGISTRY.basedir = "", None, None


def add_script_classes(module: ModuleType, extension, path: Path) -> None:
    from sdui.extensions.script_api import Script

    for obj in list(vars(module).values()):
        if isinstance(obj, type) and issubclass(obj, Script) and obj.__module__ == module.__name__:
            REGISTRY.scripts.append(ScriptClass(obj, extension.name, path))


def add_callback(category: str, fn, name: str | None = None) -> None:
    if category not in CATEGORIES:
        log.warning("Unknown callback category %r (from %s): kept, never called", category, _origin())
    label = f"{_origin()}/{category}" + (f"/{name}" if name else "")
    REGISTRY.callbacks.setdefault(category, []).append(Callback(category, fn, label))


def _origin() -> str:
    if REGISTRY.loading_path is not None:
        return f"{REGISTRY.loading_extension.lower()}/{REGISTRY.loading_path.name}"
    return "unknown"


def callbacks(category: str) -> list[Callback]:
    return list(REGISTRY.callbacks.get(category, ()))


def call(category: str, *args, **kwargs) -> list:
    """Call every callback of `category`; one that raises is reported and the others still run (A1111)."""
    results = []
    for callback in callbacks(category):
        try:
            results.append(callback.fn(*args, **kwargs))
        except Exception:  # noqa: BLE001 - one extension's error must not stop the others
            log.error("Error in extension callback %s:\n%s", callback.name, traceback.format_exc())
    return results
