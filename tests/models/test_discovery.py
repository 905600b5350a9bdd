"""Checkpoint discovery, A1111 naming and hashes (checked against hashlib over the same bytes), lookup rules,
and the hash cache."""
import hashlib
import json
import os
import random
import threading
import time

import numpy as np
import pytest
from safetensors.numpy import save_file

from sdui.models import hashes
from sdui.models.discovery import (CheckpointInfo, calculate_shorthash, find_checkpoint, list_checkpoints,
                                      natural_key, read_safetensors_metadata)
from sdui.models.hashes import HashCache, cached_sha256, legacy_short_hash

SIZE = 0x100000 + 0x10000 + 123   # past the 1 MiB offset so the legacy hash sees real bytes


def write(path, seed, size=SIZE) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


def legacy(data: bytes) -> str:
    return hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]


def full(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def tree(tmp_path):
    sd = tmp_path / "models" / "Stable-diffusion"
    extra = tmp_path / "extra"
    files = {
        "b10": write(sd / "b10.safetensors", 1),
        "b2": write(sd / "b2.safetensors", 2),
        "sub": write(sd / "sub" / "model.safetensors", 3),
        "deep": write(sd / "sub" / "deeper" / "x.ckpt", 4),
        "upper": write(sd / "Upper.SAFETENSORS", 5),
        "first": write(extra / "first.safetensors", 6),
    }
    write(sd / "model.vae.safetensors", 7)
    write(sd / "sub" / "other.vae.ckpt", 8)
    (sd / "notes.txt").write_text("not a checkpoint")
    write(sd / ".hidden" / "h.safetensors", 9)
    os.symlink(sd / "missing.safetensors", sd / "broken.safetensors")
    return sd, extra, files


def test_listing_order_and_exclusions(tree):
    sd, extra, files = tree
    infos = list_checkpoints([extra, sd])
    assert [i.name for i in infos] == ["first.safetensors", "b2.safetensors", "b10.safetensors",
                                       "sub/deeper/x.ckpt", "sub/model.safetensors", "Upper.SAFETENSORS"]
    assert [i.name for i in list_checkpoints([sd, extra])][-1] == "first.safetensors"   # folder order is kept


def test_naming_and_legacy_hash(tree):
    sd, extra, files = tree
    info = find_checkpoint(list_checkpoints([sd]), "sub/model.safetensors")
    assert info.filename == str(sd / "sub" / "model.safetensors")
    assert info.name == "sub/model.safetensors"
    assert info.model_name == "sub_model"
    assert info.name_for_extra == "model"
    assert info.is_safetensors
    assert info.hash == legacy(files["sub"])
    assert info.sha256 is None and info.shorthash is None       # not hashed yet, nothing cached
    assert info.title == "sub/model.safetensors" and info.short_title == "model"
    assert info.ids == [info.hash, "sub_model", "sub/model.safetensors", "sub/model.safetensors", "model",
                        f"sub/model.safetensors [{info.hash}]"]
    ckpt = find_checkpoint(list_checkpoints([sd]), "sub/deeper/x.ckpt")
    assert not ckpt.is_safetensors and ckpt.model_name == "sub_deeper_x" and ckpt.hash == legacy(files["deep"])


def test_calculate_shorthash_renames_title_and_adds_aliases(tree, tmp_path):
    sd, extra, files = tree
    cache = HashCache(tmp_path / "cache")
    info = find_checkpoint(list_checkpoints([sd], hash_cache=cache), "sub/model.safetensors")
    sha = full(files["sub"])
    assert calculate_shorthash(info, cache) == sha[:10]
    assert info.sha256 == sha and info.shorthash == sha[:10]
    assert info.title == f"sub/model.safetensors [{sha[:10]}]"
    assert info.short_title == f"model [{sha[:10]}]"
    for alias in (sha[:10], sha, info.title, info.short_title, info.hash, "sub_model"):
        assert alias in info.ids
    assert info.api_dict() == {"title": info.title, "model_name": "sub_model", "hash": sha[:10], "sha256": sha,
                               "filename": str(sd / "sub" / "model.safetensors"), "config": None}
    # A1111 cache key, and a later listing knows the hash without reading the file
    stored = json.loads((tmp_path / "cache" / "hashes.json").read_text())
    assert stored["checkpoint/sub/model.safetensors"]["sha256"] == sha
    again = {i.name: i for i in list_checkpoints([sd], hash_cache=HashCache(tmp_path / "cache"))}
    assert again["sub/model.safetensors"].title == f"sub/model.safetensors [{sha[:10]}]"
    assert again["b2.safetensors"].sha256 is None


def test_hash_cache_is_used_until_the_file_changes(tmp_path):
    path = tmp_path / "m.safetensors"
    data = write(path, 11)
    cache = HashCache(tmp_path / "cache")
    assert hashes.sha256(path, cache, "checkpoint/m") == full(data)
    # prove the cache is read: a planted value comes back while the file's mtime is unchanged
    cache.set("checkpoint/m", os.path.getmtime(path), "f" * 64)
    assert hashes.sha256(path, HashCache(tmp_path / "cache"), "checkpoint/m") == "f" * 64
    # the file changes (newer mtime): recomputed from the new bytes
    new = write(path, 12)
    later = time.time() + 10
    os.utime(path, (later, later))
    fresh = HashCache(tmp_path / "cache")
    assert cached_sha256(path, fresh, "checkpoint/m") is None
    assert hashes.sha256(path, fresh, "checkpoint/m") == full(new)
    assert cached_sha256(path, HashCache(tmp_path / "cache"), "checkpoint/m") == full(new)


def test_hash_cache_file_is_written_atomically_by_many_threads(tmp_path):
    cache = HashCache(tmp_path / "cache")

    def worker(t):
        for i in range(25):
            cache.set(f"k{t}/{i}", 1.0, hashlib.sha256(f"{t}-{i}".encode()).hexdigest())
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["hashes.json"]   # no temp files left
    stored = json.loads((tmp_path / "cache" / "hashes.json").read_text())
    assert len(stored) == 100
    assert stored["k3/24"] == {"mtime": 1.0, "sha256": hashlib.sha256(b"3-24").hexdigest()}


def test_corrupt_hash_cache_is_ignored_and_rewritten(tmp_path, caplog):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "hashes.json").write_text("{garbage")
    path = tmp_path / "m.ckpt"
    data = write(path, 13)
    cache = HashCache(tmp_path / "cache")
    assert hashes.sha256(path, cache, "checkpoint/m.ckpt") == full(data)
    assert "unreadable hash cache" in caplog.text
    assert json.loads((tmp_path / "cache" / "hashes.json").read_text())["checkpoint/m.ckpt"]["sha256"] == full(data)


def test_legacy_hash_edge_cases(tmp_path):
    assert legacy_short_hash(tmp_path / "nope.safetensors") == "NOFILE"
    small = tmp_path / "small.ckpt"
    small.write_bytes(b"x" * 1000)        # shorter than 1 MiB: hash of the empty read, as A1111
    assert legacy_short_hash(small) == hashlib.sha256(b"").hexdigest()[:8]


def test_find_checkpoint_rules(tmp_path):
    sd = tmp_path / "sd"
    write(sd / "anime.safetensors", 21)
    write(sd / "anime_v2.safetensors", 22)
    write(sd / "photo" / "real.safetensors", 23)
    infos = list_checkpoints([sd])
    by = {i.name: i for i in infos}
    anime, v2, real = by["anime.safetensors"], by["anime_v2.safetensors"], by["photo/real.safetensors"]
    # exact aliases
    assert find_checkpoint(infos, "photo_real") is real
    assert find_checkpoint(infos, "real") is real
    assert find_checkpoint(infos, real.hash) is real
    assert find_checkpoint(infos, f"photo/real.safetensors [{real.hash}]") is real
    # substring of the title: the shortest title wins
    assert find_checkpoint(infos, "nim") is anime
    assert find_checkpoint(infos, "_v2") is v2
    # a stale "[hash]" suffix is ignored
    assert find_checkpoint(infos, "anime_v2.safetensors [0000000000]") is v2
    calculate_shorthash(v2, None)
    assert find_checkpoint(infos, v2.shorthash) is v2
    assert find_checkpoint(infos, f"anime_v2.safetensors [{v2.shorthash}]") is v2
    assert find_checkpoint(infos, v2.sha256) is v2
    assert find_checkpoint(infos, "nothing like it") is None
    assert find_checkpoint(infos, "") is None and find_checkpoint(infos, None) is None


def test_extra_ckpt_is_listed_first(tmp_path):
    sd = tmp_path / "sd"
    write(sd / "a.safetensors", 31)
    outside = tmp_path / "elsewhere" / "z.ckpt"
    write(outside, 32)
    infos = list_checkpoints([sd], extra_ckpt=outside)
    assert [i.name for i in infos] == ["z.ckpt", "a.safetensors"]
    inside = list_checkpoints([sd], extra_ckpt=sd / "a.safetensors")
    assert [i.name for i in inside] == ["a.safetensors"]              # not listed twice
    assert [i.name for i in list_checkpoints([sd], extra_ckpt=tmp_path / "missing.ckpt")] == ["a.safetensors"]
    assert list_checkpoints([tmp_path / "no-such-dir"]) == []


def test_symlinked_folder_loop_does_not_hang(tmp_path):
    sd = tmp_path / "sd"
    write(sd / "sub" / "m.safetensors", 41)
    os.symlink(sd, sd / "sub" / "loop")
    assert [i.name for i in list_checkpoints([sd])] == ["sub/m.safetensors"]


def test_safetensors_metadata_and_config_yaml(tmp_path):
    path = tmp_path / "meta.safetensors"
    save_file({"w": np.zeros(4, dtype=np.float32)}, str(path),
              metadata={"ss_tag_frequency": '{"tags": {"cat": 3}}', "plain": "text", "brace_text": "{not json",
                        "modelspec.thumbnail": "data:image/png;base64,AAAA"})
    (tmp_path / "meta.yaml").write_text("model: {}\n")
    write(tmp_path / "plain.ckpt", 42)
    (tmp_path / "broken.safetensors").write_bytes(b"\xff" * 64)
    infos = {i.name: i for i in list_checkpoints([tmp_path])}
    meta = infos["meta.safetensors"]
    assert meta.metadata == {"ss_tag_frequency": {"tags": {"cat": 3}}, "plain": "text", "brace_text": "{not json"}
    assert meta.config_yaml == str(tmp_path / "meta.yaml")
    assert meta.api_dict()["config"] == str(tmp_path / "meta.yaml") and meta.api_dict()["hash"] is None
    assert infos["plain.ckpt"].metadata == {} and infos["plain.ckpt"].config_yaml is None
    assert infos["broken.safetensors"].metadata == {}
    assert read_safetensors_metadata(tmp_path / "broken.safetensors") == {}


def test_natural_key():
    names = ["v10.safetensors", "V2.safetensors", "v1.safetensors", "a.safetensors"]
    assert sorted(names, key=natural_key) == ["a.safetensors", "v1.safetensors", "V2.safetensors", "v10.safetensors"]


def test_from_file_outside_root_uses_basename(tmp_path):
    write(tmp_path / "x" / "m.safetensors", 51)
    info = CheckpointInfo.from_file(tmp_path / "x" / "m.safetensors", tmp_path / "other")
    assert info.name == "m.safetensors" and info.title == "m.safetensors"
