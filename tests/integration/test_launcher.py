"""The launchers: webui.sh and launch.py, run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import launch
from tests.helpers import REPO_DIR

pytestmark = pytest.mark.slow  # starts real processes


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("COMMANDLINE_ARGS", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def run_launch(*argv, timeout=120):
    return subprocess.run(
        [sys.executable, "launch.py", *argv],
        cwd=REPO_DIR,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_skip_install_exit_exits_zero_quickly():
    started = time.perf_counter()
    result = run_launch("--skip-install", "--exit")
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert "Exiting because of --exit" in result.stdout
    assert elapsed < 60, f"launch.py --skip-install --exit took {elapsed:.1f} s"
    # no CUDA here: a warning that names the flag to silence it, not a failure
    if "CUDA is not available" in result.stderr:
        assert "--skip-torch-cuda-test" in result.stderr


def test_unknown_flag_exits_2_with_a_suggestion():
    result = run_launch("--prot", "7000")
    assert result.returncode == 2
    assert "unknown flag --prot" in result.stderr and "did you mean --port" in result.stderr


def test_commandline_args_env_is_read():
    result = subprocess.run(
        [sys.executable, "launch.py", "--skip-install", "--exit"],
        cwd=REPO_DIR,
        env=clean_env(COMMANDLINE_ARGS="--skip-torch-cuda-test --listne"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "did you mean --listen" in result.stderr


def test_webui_sh_syntax():
    for script in ("webui.sh", "webui-user.sh", ".ci/run"):
        result = subprocess.run(["bash", "-n", script], cwd=REPO_DIR, capture_output=True, text=True)
        assert result.returncode == 0, (script, result.stderr)


def test_webui_sh_builds_a_venv_and_runs_launch_py_with_the_stdlib_only(tmp_path):
    """A fresh venv has nothing installed: launch.py must get as far as --exit on the standard library alone."""
    venv = tmp_path / "fresh venv"
    result = subprocess.run(
        ["bash", "webui.sh", "--skip-install", "--skip-torch-cuda-test", "--exit"],
        cwd=REPO_DIR,
        env=clean_env(venv_dir=str(venv)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (venv / "bin" / "python").exists()
    assert "Creating a virtual environment" in result.stdout and "Exiting because of --exit" in result.stdout
    # the second run reuses it
    again = subprocess.run(
        ["bash", "webui.sh", "--skip-install", "--skip-torch-cuda-test", "--exit"],
        cwd=REPO_DIR,
        env=clean_env(venv_dir=str(venv)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0 and "Creating a virtual environment" not in again.stdout


def test_webui_sh_passes_the_exit_status_through(tmp_path):
    result = subprocess.run(
        ["bash", "webui.sh", "--no-such-flag"],
        cwd=REPO_DIR,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "unknown flag --no-such-flag" in result.stderr


def test_requirements_are_met_in_this_venv_so_no_pip_runs():
    """What makes a normal start fast: every pin of requirements.txt is what is installed (checked without pip)."""
    pins = launch.read_pins((REPO_DIR / "requirements.txt").read_text())
    assert {"torch", "diffusers", "gradio", "fastapi"} <= {name for name, _, _ in pins}
    assert launch.unmet(pins) == []
    assert not launch.torch_needs_install()


def test_pin_checks_see_missing_and_different_versions():
    import importlib.metadata

    have = importlib.metadata.version("pytest")
    text = f"pytest=={have}\n# a comment\nPyTest==0.0.1  # wrong version\nno-such-package-xyz==1.0\n"
    pins = launch.read_pins(text)
    assert [p[0] for p in pins] == ["pytest", "PyTest", "no-such-package-xyz"]
    assert launch.unmet(pins) == ["PyTest==0.0.1", "no-such-package-xyz==1.0"]
    # a local build tag (+cu128) still satisfies a plain pin
    assert launch._base_version("2.14.1+cu128") == "2.14.1"


def test_launch_helpers_for_extensions():
    assert launch.is_installed("pytest") and launch.is_installed("PIL")
    assert not launch.is_installed("no_such_package_xyz")
    assert launch.python == sys.executable and isinstance(launch.git, str)
    assert launch.run([sys.executable, "-c", "print('hi')"]).strip() == "hi"
    try:
        launch.run([sys.executable, "-c", "import sys; sys.exit(3)"], errdesc="Thing failed")
    except RuntimeError as e:
        assert "Thing failed" in str(e) and "Error code: 3" in str(e)
    else:
        raise AssertionError("run() must raise on a failing command")


def test_readme_quick_start_lists_the_two_commands_in_order():
    text = (REPO_DIR / "README.md").read_text()
    assert text.startswith("## Quick start")
    section = text.split("\n## ", 2)[0]
    commands = [line.strip() for line in section.splitlines() if line.strip().startswith("./webui.sh")]
    assert commands == ["./webui.sh", "./webui.sh --run-tests"]
