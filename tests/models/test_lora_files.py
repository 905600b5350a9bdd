"""LoRA files by name and alias, their A1111 short hash (sha256 of the tensor data), and pasted infotexts whose tags
are relinked by hash to a file renamed on this machine (also through the txt2img ↙️ button)."""

from __future__ import annotations

import hashlib

import torch
from safetensors.torch import save_file

from sdui.models.hashes import HashCache
from sdui.core.extra_networks import relink_lora_tags
from sdui.models.lora_files import find_lora, list_loras


def test_names_aliases_hashes_and_relinking(tmp_path):
    folder = tmp_path / "Lora"
    (folder / "sub").mkdir(parents=True)
    save_file(
        {"x.alpha": torch.tensor(1.0)}, str(folder / "sub" / "renamed.safetensors"), metadata={"ss_output_name": "orig"}
    )
    files = list_loras(folder)
    assert find_lora(files, "renamed").alias == "orig" and find_lora(files, "orig").name == "renamed"
    data = (folder / "sub" / "renamed.safetensors").read_bytes()
    expected = hashlib.sha256(data[8 + int.from_bytes(data[:8], "little") :]).hexdigest()[:12]
    cache = HashCache(tmp_path / "cache")
    text = f'a <lora:style_v2:0.8> cat\nSteps: 2, Seed: 1, Lora hashes: "style_v2: {expected}"'
    assert relink_lora_tags(text, files, cache) == text  # not hashed yet: left as it is
    assert files[0].shorthash(cache) == expected
    assert relink_lora_tags(text, files, cache).startswith("a <lora:orig:0.8> cat\n")
    other = text.replace(expected, "0123456789ab")
    assert relink_lora_tags(other, files, cache) == other


def test_the_paste_button_relinks(tmp_path, tiny_sd1_checkpoint):
    from sdui.ui.app import create_ui
    from tests.helpers import call, handler, install_checkpoint, make_ctx, outputs_by_id

    data = tmp_path / "data"
    install_checkpoint(tiny_sd1_checkpoint, data, "tiny.safetensors")
    ctx = make_ctx(data)
    try:
        save_file({"x.alpha": torch.tensor(1.0)}, str(data / "models" / "Lora" / "mine.safetensors"))
        shorthash = list_loras(data / "models" / "Lora")[0].shorthash(ctx.store.hash_cache)
        fn = handler(create_ui(ctx), "txt2img_paste", "click")
        text = f'<lora:theirs:1> a cat\nSteps: 3, Seed: 5, Lora hashes: "theirs: {shorthash}"'
        pasted = outputs_by_id(fn, call(fn, text, ""))
        assert pasted["txt2img_prompt"] == "<lora:mine:1> a cat" and pasted["txt2img_steps"] == 3
    finally:
        ctx.jobs.shutdown()
