"""Loading the enabled extensions, in A1111's order and with A1111's conventions:

  1. install.py: run as `python install.py` in the extension's folder with the program folder on PYTHONPATH (so
     it can `import launch`), once per commit of the extension (A1111 runs it at every start; the result is the
     same and starts are faster), unless --skip-install;
  2. preload.py: imported before the flags are parsed; its `preload(parser)` adds flags;
  3. scripts/*.py: imported in name order with the extension's folder first on sys.path (so modules beside
     `scripts/` import), `modules.scripts.basedir()` answering that folder meanwhile. What they register
     (Script subclasses, callbacks) lands in `sdui.extensions.registry`.

An extension that fails at any stage is reported (its name, the file, the traceback: in the log and in
`problems`) and the rest carries on; the app never fails to start because of one.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from sdui.atomic import write_text_atomic
from sdui.extensions import registry
from sdui.extensions.manager import Extension

log = logging.getLogger(__name__)

INSTALL_TIMEOUT_S = 1800


@dataclass
class Problem:
    """One extension's failure at one stage: shown in the Extensions tab and the log."""

    extension: str
    stage: str  # "install", "preload" or "scripts"
    file: str
    error: str  # the traceback or the installer's output

    def summary(self) -> str:
        last = self.error.strip().splitlines()[-1] if self.error.strip() else ""
        return f"{self.extension}: {self.stage} failed in {self.file}: {last}"


def _report(problems: list[Problem], problem: Problem) -> None:
    problems.append(problem)
    log.error("Extension %s: %s failed (%s):\n%s", problem.extension, problem.stage, problem.file, problem.error)


# ------------------------------------------------------------------------------------------------- 1. install.py


def run_installers(
    extensions: Iterable[Extension], repo_dir: Path, state_file: Path, *, python: str = sys.executable
) -> list[Problem]:
    """Run each enabled extension's install.py that has not run for its current commit (or, outside git, for
    this version of the file)."""
    problems: list[Problem] = []
    try:
        done = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        done = {}
    changed = False
    for ext in extensions:
        script = ext.path / "install.py"
        if not ext.enabled or not script.is_file():
            continue
        key = ext.commit or f"mtime:{script.stat().st_mtime_ns}"
        if done.get(ext.canonical_name) == key:
            continue
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo_dir), os.environ.get("PYTHONPATH", "")])}
        log.info("Extension %s: running install.py", ext.name)
        try:
            result = subprocess.run(
                [python, str(script)], cwd=ext.path, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            _report(problems, Problem(ext.name, "install", "install.py", f"stopped after {INSTALL_TIMEOUT_S} s"))
            continue
        if result.stdout.strip():
            log.info("Extension %s install.py: %s", ext.name, result.stdout.strip())
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip() or f"exit code {result.returncode}"
            _report(problems, Problem(ext.name, "install", "install.py", output))
            continue
        done[ext.canonical_name] = key
        changed = True
    if changed:
        state_file.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(state_file, json.dumps(done, indent=2))
    return problems


# ------------------------------------------------------------------------------------------------- 2. preload.py


def _import_file(path: Path, name: str) -> ModuleType:
    """Import one file as a module of its own (not put into sys.modules, as A1111's script loader does)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def preload(extensions: Iterable[Extension], parser) -> list[Problem]:
    """Let each enabled extension's preload.py add its flags to `parser` (before the flags are parsed)."""
    problems: list[Problem] = []
    for ext in extensions:
        path = ext.path / "preload.py"
        if not ext.enabled or not path.is_file():
            continue
        try:
            module = _import_file(path, f"preload_{ext.canonical_name}")
            if hasattr(module, "preload"):
                module.preload(parser)
        except Exception:  # noqa: BLE001 - an extension's failure is reported, never the app's
            _report(problems, Problem(ext.name, "preload", "preload.py", traceback.format_exc()))
    return problems


# ------------------------------------------------------------------------------------------------- 3. scripts/*.py


def load_scripts(extensions: Iterable[Extension]) -> list[Problem]:
    """Import every enabled extension's scripts/*.py; what they register goes to the registry."""
    problems: list[Problem] = []
    for ext in extensions:
        folder = ext.path / "scripts"
        if not ext.enabled or not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.py"), key=lambda p: p.name.lower()):
            sys.path.insert(0, str(ext.path))
            try:
                with registry.loading(ext, path):
                    module = _import_file(path, path.stem)
                    registry.add_script_classes(module, ext, path)
            except Exception:  # noqa: BLE001 - an extension's failure is reported, never the app's
                _report(problems, Problem(ext.name, "scripts", f"scripts/{path.name}", traceback.format_exc()))
            finally:
                if sys.path and sys.path[0] == str(ext.path):
                    sys.path.pop(0)
    return problems
