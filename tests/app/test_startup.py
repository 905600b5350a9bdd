"""Start-up survives what a crash or a careless edit leaves behind: broken config.json files and temp files of
interrupted saves."""

from __future__ import annotations

import json

import pytest

from tests.helpers import make_ctx

BROKEN = {
    "invalid UTF-8": b'{"samples_format": "jpg\xff\xfe"}',
    "random bytes": bytes(range(256)) * 4,
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "not an object": b"[1, 2, 3]",
    "truncated": b'{"samples_format": "jp',
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_config_file_is_kept_aside_and_defaults_are_used(tmp_path, kind, caplog):
    data = tmp_path / "data"
    data.mkdir()
    (data / "config.json").write_bytes(BROKEN[kind])
    ctx = make_ctx(data)
    try:
        assert ctx.options.samples_format == "png"
        assert (data / "config.json.bak").read_bytes() == BROKEN[kind]
        assert "is corrupt" in caplog.text
        ctx.options.set("samples_format", "webp")
        ctx.options.save()
        assert json.loads((data / "config.json").read_text())["samples_format"] == "webp"
    finally:
        ctx.jobs.shutdown()


def test_temp_files_of_interrupted_saves_are_removed_at_start(tmp_path):
    data = tmp_path / "data"
    day = data / "outputs" / "txt2img-images" / "2026-12-01"
    day.mkdir(parents=True)
    leftovers = [day / ".0123456789abcdef.tmp", data / ".config.json-abc123.tmp"]
    for path in leftovers:
        path.write_bytes(b"half")
    kept = [day / "00000-1.png", day / ".hidden-but-ours-not", data / "notes.tmp"]
    for path in kept:
        path.write_bytes(b"x")
    ctx = make_ctx(data)
    try:
        assert not any(p.exists() for p in leftovers)
        assert all(p.exists() for p in kept)
    finally:
        ctx.jobs.shutdown()
