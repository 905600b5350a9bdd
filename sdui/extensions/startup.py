"""The extensions' part of starting the program, in A1111's order:

    flags, early = flags_with_extensions(argv)   # extensions' preload.py add their flags before the parse
    runtime = start_extensions(ctx)              # install.py (once per commit), scripts/*.py, hooks for every job

Only the standard library and the light parts of this package are imported for the first step (launch.py calls
it before the virtual environment is complete).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from sdui.app.flags import Flags, build_parser, parse_args, parse_flags
from sdui.extensions import registry
from sdui.extensions.loader import Problem, load_scripts, preload, run_installers
from sdui.extensions.manager import Extension, list_extensions

log = logging.getLogger(__name__)
REPO_DIR = Path(__file__).resolve().parents[2]
INSTALLED_STATE = "extensions-installed.json"  # in the cache folder: which commit each install.py ran for


def _disable_all(flags_or_args, settings: dict) -> str:
    if getattr(flags_or_args, "disable_all_extensions", False):
        return "all"
    if getattr(flags_or_args, "disable_extra_extensions", False):
        return "extra"
    return str(settings.get("disable_all_extensions") or "none")


def _settings(config_file: Path) -> dict:
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def extensions_for(data_dir: Path, repo_dir: Path, flags_or_args, config_file: Path | None = None) -> list[Extension]:
    """The installed extensions and which are enabled (settings disabled_extensions / disable_all_extensions,
    flags --disable-all-extensions / --disable-extra-extensions)."""
    settings = _settings(config_file or data_dir / "config.json")
    disabled = settings.get("disabled_extensions") or []
    return list_extensions(
        data_dir / "extensions",
        repo_dir / "extensions-builtin",
        disabled if isinstance(disabled, list) else [],
        _disable_all(flags_or_args, settings),
    )


def installed_extensions(ctx) -> list[Extension]:
    """The extensions installed for the running app, and which are enabled."""
    paths = ctx.paths
    return extensions_for(paths.data_dir, paths.repo_dir, ctx.flags, paths.config_file)


def flags_with_extensions(
    argv: list[str] | None = None, *, environ: dict | None = None, repo_dir: Path = REPO_DIR
) -> tuple[Flags, list[Problem]]:
    """Parse the flags with the ones the enabled extensions' preload.py add (they appear in --help and in
    modules.shared.cmd_opts)."""
    early = parse_args(argv, environ=environ, allow_unknown=True)
    data_dir = Path(os.path.abspath(os.path.expanduser(early.data_dir))) if early.data_dir else repo_dir
    config = Path(early.ui_settings_file) if getattr(early, "ui_settings_file", None) else data_dir / "config.json"
    parser = build_parser()
    problems = []
    if not early.disable_all_extensions:
        problems = preload(extensions_for(data_dir, repo_dir, early, config), parser)
    return parse_flags(argv, parser, environ=environ), problems


def _tell_about_models(ctx) -> None:
    """on_model_loaded callbacks run whenever another checkpoint becomes the current one."""
    store, before = ctx.store, ctx.store.on_activate

    def activated(info) -> None:
        before(info)
        registry.call("model_loaded", store.current)

    store.on_activate = activated


@dataclass
class ExtensionRuntime:
    """What start_extensions found and loaded; the Extensions tab and /sdapi/v1/extensions read it."""

    extensions: list[Extension]
    scripts: object  # bridge.ScriptSets
    problems: list[Problem] = field(default_factory=list)


def start_extensions(ctx, *, preload_problems: list[Problem] = ()) -> ExtensionRuntime:
    """Install (once per commit) and load the enabled extensions; their always-on scripts and callbacks join
    every job's hooks. Called once the app context exists, before the routes and the UI are built."""
    from sdui.extensions.bridge import ExtensionHooks, ScriptSets  # late: gradio

    paths, flags = ctx.paths, ctx.flags
    extensions = installed_extensions(ctx)
    problems = list(preload_problems)
    if not flags.skip_install:
        problems += run_installers(extensions, paths.repo_dir, paths.cache_dir / INSTALLED_STATE)
    registry.REGISTRY.app = ctx
    problems += load_scripts(extensions)
    registry.call("ui_settings")  # settings extensions add: in config.json, the API and the Settings tab alike
    _tell_about_models(ctx)
    scripts = ScriptSets.from_registry()
    if scripts.scripts or registry.REGISTRY.callbacks:
        ctx.hooks.append(ExtensionHooks(scripts))
    registry.REGISTRY.problems[:] = problems
    loaded = [e.name for e in extensions if e.enabled]
    if loaded:
        log.info("Extensions loaded: %s", ", ".join(loaded))
    for problem in problems:
        log.warning("Extension problem: %s", problem.summary())
    return ExtensionRuntime(extensions, scripts, problems)
