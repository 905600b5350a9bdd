"""Shared pytest set-up: offline, a clean environment, temporary data folders, one tiny checkpoint per session.

Set at import, before any test module imports transformers/diffusers/gradio: nothing may reach the network.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.browser"]  # the `browser` and `page` fixtures

for _key, _value in (
    ("HF_HUB_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
    ("HF_HUB_DISABLE_TELEMETRY", "1"),
    ("GRADIO_ANALYTICS_ENABLED", "False"),
    ("DO_NOT_TRACK", "1"),
):
    os.environ[_key] = _value
# flags and folders from the user's shell must not leak into the tests
for _key in ("COMMANDLINE_ARGS", "IGNORE_CMD_ARGS_ERRORS", "SD_WEBUI_CACHE_DIR"):
    os.environ.pop(_key, None)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """An empty data folder (what --data-dir points at)."""
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def tiny_sd1_checkpoint(tmp_path_factory) -> Path:
    """A complete tiny SD1 single-file checkpoint (random weights, real LDM key names), built once per session.
    Copy it into a data folder with `install_checkpoint`; do not modify it."""
    from tests.fixtures.checkpoints import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("checkpoints") / "tiny-sd1.safetensors", arch="sd1")


@pytest.fixture
def ctx(tmp_path):
    """A real, small app context (as webui.py builds it) on a temp data dir, without a checkpoint."""
    from tests.helpers import make_ctx

    c = make_ctx(tmp_path / "data")
    yield c
    c.jobs.shutdown()
