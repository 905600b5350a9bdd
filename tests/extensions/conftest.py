"""Local git repositories for the extension tests (installed by path and by file:// URL: no network)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def commit_files(repo: Path, files: dict[str, str], message: str = "change") -> str:
    for name, text in files.items():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def make_repo(tmp_path):
    """make_repo(name, files) -> a git repository with those files committed on branch main."""

    def make(name: str, files: dict[str, str]) -> Path:
        repo = tmp_path / "sources" / name
        repo.mkdir(parents=True)
        git(repo, "init", "-q", "-b", "main")
        commit_files(repo, files, "first")
        return repo

    return make


@pytest.fixture(autouse=True)
def clean_registry():
    """Extensions register into one process-wide registry (A1111's surface is module-level): start and end empty."""
    from sdui.extensions import registry

    registry.reset()
    yield
    registry.reset()
