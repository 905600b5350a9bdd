"""Prepare the Python environment, then start the web UI (what webui.sh / webui.bat run inside the venv).

  1. torch + torchvision (TORCH_COMMAND), only when missing or not the pinned versions
  2. requirements.txt, only when an installed version differs from a pin (checked without calling pip)
  3. xformers, only with --xformers on a machine with CUDA
  4. a warning when CUDA is not available (the CPU is used; --skip-torch-cuda-test silences it)
  5. --run-tests: test requirements, then pytest; --exit: stop here; otherwise webui.start(args)

Only the standard library is imported before the installs. Extensions' install.py files do `import launch` and
call is_installed(), run_pip(), run(): those names (and python, git, index_url) are kept as module-level names.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

repo_dir = Path(__file__).resolve().parent
if str(repo_dir) not in sys.path:
    sys.path.insert(0, str(repo_dir))

from sdui.app.flags import Flags  # noqa: E402 - standard library only
from sdui.extensions.startup import flags_with_extensions  # noqa: E402 - standard library only

log = logging.getLogger("launch")

python = sys.executable
git = os.environ.get("GIT", "git")
index_url = os.environ.get("INDEX_URL", "")
dir_repos = "repositories"

TORCH_PINS = "torch==2.14.1 torchvision==0.29.1"
torch_index_url = os.environ.get("TORCH_INDEX_URL", "")
torch_command = os.environ.get(
    "TORCH_COMMAND", f"pip install {TORCH_PINS}" + (f" --extra-index-url {torch_index_url}" if torch_index_url else "")
)
xformers_package = os.environ.get("XFORMERS_PACKAGE", "xformers==0.0.35")
requirements_file = os.environ.get("REQS_FILE", str(repo_dir / "requirements.txt"))
test_requirements_file = str(repo_dir / "requirements-test.txt")
restart_file = repo_dir / "tmp" / "restart"

# set from the flags in main(): run_pip() does nothing with --skip-install, as in A1111
skip_install = False

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)")


# ---------------------------------------------------------------------------------------- helpers for install.py


def run(
    command,
    desc: str | None = None,
    errdesc: str | None = None,
    custom_env: dict | None = None,
    live: bool | None = None,
) -> str:
    """Run a shell command (string) or argv (list); return its output. On failure raise RuntimeError with the
    command, its exit code and output."""
    if desc:
        print(desc, flush=True)
    if live is None:
        live = bool(os.environ.get("WEBUI_LAUNCH_LIVE_OUTPUT"))
    shell = isinstance(command, str)
    result = subprocess.run(
        command,
        shell=shell,
        env=os.environ if custom_env is None else custom_env,
        cwd=repo_dir,
        **({} if live else {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}),
    )
    if result.returncode != 0:
        shown = command if shell else shlex.join(command)
        message = [f"{errdesc or 'Error running command'}.", f"Command: {shown}", f"Error code: {result.returncode}"]
        if not live:
            out = (result.stdout or b"").decode("utf8", errors="ignore").strip()
            err = (result.stderr or b"").decode("utf8", errors="ignore").strip()
            if out:
                message.append(f"stdout: {out}")
            if err:
                message.append(f"stderr: {err}")
        raise RuntimeError("\n".join(message))
    return "" if live else (result.stdout or b"").decode("utf8", errors="ignore")


def is_installed(package: str) -> bool:
    """Is a distribution (pip name) or an importable module of that name installed?"""
    try:
        importlib.metadata.distribution(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        return importlib.util.find_spec(package) is not None
    except (ModuleNotFoundError, ValueError):
        return False


def run_pip(command: str, desc: str | None = None, live: bool | None = None) -> str:
    """`python -m pip <command> --prefer-binary` (a no-op with --skip-install)."""
    if skip_install:
        return ""
    extra = f" --index-url {index_url}" if index_url else ""
    return run(
        f'"{python}" -m pip {command} --prefer-binary{extra}',
        desc=f"Installing {desc}" if desc else None,
        errdesc=f"Couldn't install {desc or command}",
        live=live,
    )


def check_run_python(code: str) -> bool:
    return subprocess.run([python, "-c", code], capture_output=True).returncode == 0


# ------------------------------------------------------------------------------------------ requirement checks


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _base_version(version: str) -> str:
    return version.split("+", 1)[0]  # torch "2.14.1+cu128" satisfies a "2.14.1" pin


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def read_pins(text: str) -> list[tuple[str, str, str]]:
    """(name, version, line) for each `name==version` line; other lines are left to pip."""
    pins = []
    for line in text.splitlines():
        match = _PIN.match(line)
        if match:
            pins.append((match.group(1), match.group(2), line.split("#", 1)[0].strip()))
    return pins


def unmet(pins: list[tuple[str, str, str]]) -> list[str]:
    """The requirement lines whose installed version is missing or different."""
    missing = []
    for name, version, line in pins:
        have = installed_version(name)
        if have is None or _base_version(have) != _base_version(version):
            missing.append(line)
    return missing


def torch_needs_install() -> bool:
    """torch/torchvision missing, or not the versions TORCH_COMMAND pins (a command without pins: missing only)."""
    pins = [
        (n, v, f"{n}=={v}")
        for n, v, _ in read_pins("\n".join(shlex.split(torch_command)))
        if _normalize(n) in ("torch", "torchvision")
    ]
    if not pins:
        return any(installed_version(name) is None for name in ("torch", "torchvision"))
    return bool(unmet(pins)) or any(installed_version(name) is None for name in ("torch", "torchvision"))


# ------------------------------------------------------------------------------------------ prepare_environment


def prepare_environment(args: Flags) -> None:
    """Install what is missing; warn about the device. Fast when everything is in place: no pip call at all."""
    if not args.skip_python_version_check and not ((3, 10) <= sys.version_info[:2] <= (3, 12)):
        log.warning("Python %d.%d is untested; use Python 3.10 to 3.12 (3.11 recommended).", *sys.version_info[:2])

    if not args.skip_install:
        if args.reinstall_torch or torch_needs_install():
            run(
                f'"{python}" -m {torch_command}',
                "Installing torch and torchvision",
                "Couldn't install torch",
                live=True,
            )

        pins = [
            p
            for p in read_pins(Path(requirements_file).read_text(encoding="utf-8"))
            if _normalize(p[0]) not in ("torch", "torchvision")
        ]  # TORCH_COMMAND owns those two
        missing = unmet(pins)
        if missing:
            print(f"Installing requirements: {', '.join(missing)}", flush=True)
            run(
                [python, "-m", "pip", "install", "--prefer-binary", *_index_args(), *(line for _, _, line in pins)],
                errdesc="Couldn't install requirements",
                live=True,
            )

    wants_xformers = args.xformers or args.reinstall_xformers
    if wants_xformers or not args.skip_torch_cuda_test:
        import torch  # installed by now; webui imports it next anyway, so this costs nothing extra

        has_cuda = torch.cuda.is_available()
        if not has_cuda and not args.skip_torch_cuda_test:
            log.warning(
                "CUDA is not available: generating on the %s (slow). Pass --skip-torch-cuda-test to hide this message.",
                "Apple GPU (MPS)" if _has_mps(torch) else "CPU",
            )
        if wants_xformers and not args.skip_install:
            if not has_cuda:
                log.warning("--xformers: not installing xformers, it needs CUDA.")
            elif args.reinstall_xformers or not is_installed("xformers"):
                run(
                    [python, "-m", "pip", "install", "--prefer-binary", *_index_args(), xformers_package],
                    "Installing xformers",
                    "Couldn't install xformers",
                    live=True,
                )


def _has_mps(torch) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def _index_args() -> list[str]:
    return ["--index-url", index_url] if index_url else []


# ------------------------------------------------------------------------------------------------------- tests


def install_test_requirements() -> None:
    """requirements-test.txt: lines marked `# --no-deps` are installed without their dependencies (open-clip-torch
    is there only as a data source for the tokenizer test, never imported)."""
    with_deps, without_deps = [], []
    for line in Path(test_requirements_file).read_text(encoding="utf-8").splitlines():
        pins = read_pins(line)
        if pins:
            (without_deps if "--no-deps" in line.partition("#")[2] else with_deps).extend(pins)
    for group, extra in ((with_deps, []), (without_deps, ["--no-deps"])):
        missing = unmet(group)
        if missing:
            run(
                [python, "-m", "pip", "install", "--prefer-binary", *extra, *_index_args(), *missing],
                f"Installing test requirements: {', '.join(missing)}",
                "Couldn't install test requirements",
                live=True,
            )


def run_tests(extra_args: list[str] | None = None) -> int:
    """pytest over tests/, offline; its exit status (5, "no tests collected", counts as a failure too)."""
    if not skip_install:
        install_test_requirements()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    env.pop("COMMANDLINE_ARGS", None)  # the server the tests start must see only the flags the tests give it
    # --durations: the slowest tests named in every run, so a CI that grows slow says where
    command = [python, "-m", "pytest", "tests", "-q", "--durations=25", *(extra_args or [])]
    print(f"Running tests: {shlex.join(command)}", flush=True)
    code = subprocess.run(command, cwd=repo_dir, env=env).returncode
    if code == 5:
        print("pytest collected no tests: that is a failure.", flush=True)
    return code


# ---------------------------------------------------------------------------------------------------------- main


def start(args: Flags, extension_problems: list | None = None) -> None:
    import webui

    webui.start(args, extension_problems)


def main(argv: list[str] | None = None) -> None:
    global skip_install
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s", datefmt="%H:%M:%S"
    )
    args, extension_problems = flags_with_extensions(argv)
    skip_install = bool(args.skip_install)
    restart_file.unlink(missing_ok=True)  # webui.sh loops while it exists: a restart request is used up here

    if not args.skip_prepare_environment:
        prepare_environment(args)
    if args.run_tests:
        sys.exit(run_tests())
    if args.exit:
        print("Exiting because of --exit.", flush=True)
        sys.exit(0)
    start(args, extension_problems)


if __name__ == "__main__":
    main()
