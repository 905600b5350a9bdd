"""Extensions on disk: what is installed (`extensions/` and the program's `extensions-builtin/`), installing one
from a git URL or a local folder, checking for and pulling updates, removing one. The git command line does the
work; its error text is what the user sees.

Installing clones into a temporary folder next to `extensions/` and renames it into place, so a failed or
interrupted install leaves nothing behind. When the server is reachable from other machines, every change is
refused unless --enable-insecure-extension-access (an extension is arbitrary code: installing one from the web
page would let anyone on the network run code here).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from sdui.errors import UserError

log = logging.getLogger(__name__)

GIT_TIMEOUT_S = 600
ACCESS_FLAG = "--enable-insecure-extension-access"
_URL_SCHEMES = ("http://", "https://", "ssh://", "git://", "file://")
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:[^\s]+$")  # git@github.com:user/repo.git
_BAD_NAME = re.compile(r"[\\/:*?\"<>|\x00-\x1f]")


class ExtensionError(UserError):
    """What went wrong with an extension operation, in words for the Extensions tab and the API (HTTP 400)."""


class ExtensionAccessError(ExtensionError):
    status_code = 403


@dataclass
class Extension:
    name: str  # the folder name (A1111's canonical name is its lower case)
    path: Path
    builtin: bool
    enabled: bool
    remote: str = ""
    branch: str = ""
    commit: str = ""
    commit_date: int = 0  # unix time of the commit

    @property
    def canonical_name(self) -> str:
        return self.name.lower()

    @property
    def version(self) -> str:
        return self.commit[:8]

    def to_api(self) -> dict:
        """A1111's ExtensionItem."""
        return {
            "name": self.name,
            "remote": self.remote,
            "branch": self.branch,
            "commit_hash": self.commit,
            "version": self.version,
            "commit_date": self.commit_date,
            "enabled": self.enabled,
        }


# ------------------------------------------------------------------------------------------------------------ git


def git(*args: str, cwd: Path | None = None, timeout: float = GIT_TIMEOUT_S) -> str:
    """Run git without prompts (a private repository fails instead of waiting for a password) and with the
    `ext::` transport (which runs commands) off; ExtensionError with git's own message on failure."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "echo", "LC_ALL": "C"}
    command = ["git", "-c", "protocol.ext.allow=never", *args]
    try:
        result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as e:
        raise ExtensionError("git is not installed: install git, then try again") from e
    except subprocess.TimeoutExpired as e:
        raise ExtensionError(f"git {args[0]} took longer than {timeout:.0f} s and was stopped") from e
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip() or f"exit code {result.returncode}"
        raise ExtensionError(f"git {args[0]} failed: {message}")
    return result.stdout.strip()


def _git_info(path: Path) -> tuple[str, str, str, int]:
    """(remote URL, branch, commit, commit time) of a checkout; empty when it is not one."""
    if not (path / ".git").exists():
        return "", "", "", 0
    try:
        commit, date = git("log", "-1", "--format=%H %ct", cwd=path).split()
        branch = git("rev-parse", "--abbrev-ref", "HEAD", cwd=path)
        try:
            remote = git("config", "--get", "remote.origin.url", cwd=path)
        except ExtensionError:
            remote = ""
        return remote, "" if branch == "HEAD" else branch, commit, int(date)
    except (ExtensionError, ValueError) as e:
        log.warning("Extension %s: cannot read its git state: %s", path.name, e)
        return "", "", "", 0


# ---------------------------------------------------------------------------------------------------------- listing


def list_extensions(
    extensions_dir: Path, builtin_dir: Path | None, disabled: list[str] | None = None, disable_all: str = "none"
) -> list[Extension]:
    """Built-in extensions first, then the user's, each sorted by name; `disabled` (names, any case) and
    `disable_all` ("none", "extra": only built-in ones load, "all") decide what is enabled (A1111's settings)."""
    off = {name.lower() for name in disabled or []}
    found: list[Extension] = []
    seen: set[str] = set()
    for folder, builtin in ((builtin_dir, True), (extensions_dir, False)):
        if folder is None or not folder.is_dir():
            continue
        for path in sorted(folder.iterdir(), key=lambda p: p.name.lower()):
            if not path.is_dir() or path.name.startswith(".") or path.name.lower() in seen:
                continue  # a second folder of the same canonical name is ignored, as in A1111
            seen.add(path.name.lower())
            enabled = (
                path.name.lower() not in off and disable_all != "all" and not (disable_all == "extra" and not builtin)
            )
            remote, branch, commit, date = _git_info(path)
            found.append(Extension(path.name, path, builtin, enabled, remote, branch, commit, date))
    return found


# ------------------------------------------------------------------------------------------------------- installing


def check_access(allowed: bool) -> None:
    if not allowed:
        raise ExtensionAccessError(
            "Extensions cannot be installed, updated or removed while the server is reachable from other machines "
            f"(--listen, --share or --server-name). Restart with {ACCESS_FLAG} to allow it."
        )


def normalized_url(url: str) -> str:
    """A remote URL compared loosely: no scheme, no trailing slash or `.git`, lower case."""
    text = url.strip().lower().rstrip("/")
    text = re.sub(r"^[a-z+]+://", "", text)
    text = re.sub(r"^[^@/]+@", "", text).replace(":", "/")
    return text[:-4] if text.endswith(".git") else text


def folder_name_for(url: str, given: str | None = None) -> str:
    """The folder an extension installs into: the given name, else the URL's last part without `.git`."""
    name = (given or "").strip()
    if not name:
        name = url.strip().rstrip("/").replace("\\", "/").split("/")[-1].split(":")[-1].replace(".git", "")
    if not name or name in (".", "..") or _BAD_NAME.search(name) or name.startswith(("-", ".")):
        raise ExtensionError(
            f"{name!r} cannot be an extension folder name: give a plain name (letters, digits, '-', '_'), "
            "without path separators"
        )
    return name


def _check_url(url: str) -> str:
    url = url.strip()
    if not url:
        raise ExtensionError("Give the git URL of the extension (https://..., git@host:user/repo or a local folder)")
    if url.startswith("-") or "::" in url.split("/")[0]:
        raise ExtensionError(f"{url!r} is not a git URL this program accepts")
    if url.lower().startswith(_URL_SCHEMES) or _SCP_LIKE.match(url):
        return url
    if Path(url).expanduser().is_dir():
        return str(Path(url).expanduser().resolve())
    raise ExtensionError(f"{url!r} is neither a git URL (http, https, ssh, git, file) nor an existing local folder")


def install(
    extensions_dir: Path,
    tmp_dir: Path,
    url: str,
    *,
    branch: str | None = None,
    folder_name: str | None = None,
    installed: list[Extension] = (),
    access_allowed: bool,
) -> Path:
    """Clone `url` (its `branch`) into extensions/<folder>; returns the new folder."""
    check_access(access_allowed)
    url = _check_url(url)
    name = folder_name_for(url, folder_name)
    target = extensions_dir / name
    if target.exists():
        raise ExtensionError(
            f"Extension folder {name!r} already exists: remove it first, or install under another name"
        )
    wanted = normalized_url(url)
    for ext in installed:
        if ext.remote and normalized_url(ext.remote) == wanted:
            raise ExtensionError(f"This extension is already installed, as {ext.name!r}")
    if branch is not None and (branch.strip().startswith("-") or not re.fullmatch(r"[\w./-]*", branch.strip())):
        raise ExtensionError(f"{branch!r} is not a branch name")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    staging = tmp_dir / f"extension-{uuid.uuid4().hex[:12]}"
    try:
        command = ["clone", "--recurse-submodules"]
        if branch and branch.strip():
            command += ["--branch", branch.strip()]
        git(*command, "--", url, str(staging))
        extensions_dir.mkdir(parents=True, exist_ok=True)
        try:
            staging.rename(target)
        except OSError:  # another file system
            shutil.move(str(staging), str(target))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("Installed extension %s from %s", name, url)
    return target


def check_for_updates(ext: Extension) -> bool:
    """Whether the remote branch has commits this checkout does not (after `git fetch`)."""
    if not ext.remote:
        raise ExtensionError(f"{ext.name} is not a git checkout with a remote: nothing to compare with")
    git("fetch", "--quiet", cwd=ext.path)
    behind = git("rev-list", "--count", "HEAD..@{upstream}", cwd=ext.path)
    return int(behind or 0) > 0


def update(ext: Extension, *, access_allowed: bool) -> str:
    """Pull the remote branch, fast-forward only (local changes are never overwritten); git's summary."""
    check_access(access_allowed)
    if not ext.remote:
        raise ExtensionError(f"{ext.name} is not a git checkout with a remote: it cannot be updated")
    return git("pull", "--ff-only", cwd=ext.path)


def remove(ext: Extension, *, access_allowed: bool) -> None:
    check_access(access_allowed)
    if ext.builtin:
        raise ExtensionError(f"{ext.name} is built in: disable it instead")
    shutil.rmtree(ext.path)
    log.info("Removed extension %s", ext.name)
