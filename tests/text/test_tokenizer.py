"""The committed CLIP tokenizer files and our tokenize path, checked against the original algorithm re-done here."""

from __future__ import annotations

import gzip
import html
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import ftfy
import pytest
import regex

from sdui.text import tokenizer as tk

ROOT = Path(__file__).resolve().parents[2]
BPE_GZ = ROOT / "venv" / "lib" / "python3.11" / "site-packages" / "open_clip" / "bpe_simple_vocab_16e6.txt.gz"
TOK_DIR = ROOT / "configs" / "tokenizer"

pytestmark = pytest.mark.skipif(not BPE_GZ.exists(), reason="open_clip's bpe vocab file is not installed")


def _load_derive_script():
    spec = importlib.util.spec_from_file_location("derive_tokenizer", ROOT / "tools" / "derive_tokenizer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_files_equal_a_fresh_derivation():
    derived = _load_derive_script().derive(BPE_GZ)
    for name in ("vocab.json", "merges.txt"):
        assert (TOK_DIR / name).read_text(encoding="utf-8") == derived[name], name
    vocab = json.loads((TOK_DIR / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 49408
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert vocab["!"] == 0 and vocab[",</w>"] == 267


# ---- an independent re-implementation of the original CLIP tokenizer (reads the gz directly) ----


class ReferenceClipBPE:
    def __init__(self, gz_path: Path):
        # byte -> printable character: keep visible latin-1 characters, move the others above U+00FF in byte order
        keep = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
        moved = [b for b in range(256) if b not in keep]
        self.byte_char = {b: chr(b) for b in keep} | {b: chr(256 + i) for i, b in enumerate(moved)}
        ordered = [self.byte_char[b] for b in keep + moved]

        rows = gzip.open(gz_path, "rt", encoding="utf-8").read().split("\n")[1:48895]
        pairs = [tuple(r.split()) for r in rows]
        self.rank = {p: i for i, p in enumerate(pairs)}
        self.pair_of_rank = pairs
        names = ordered + [c + "</w>" for c in ordered] + [a + b for a, b in pairs]
        names += ["<|startoftext|>", "<|endoftext|>"]
        self.ids = {n: i for i, n in enumerate(names)}
        self.pattern = regex.compile(
            r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
            regex.IGNORECASE,
        )

    def merge_word(self, word: str) -> list[str]:
        if word in ("<|startoftext|>", "<|endoftext|>"):
            return [word]
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            candidates = [(self.rank.get((parts[i], parts[i + 1]), None), i) for i in range(len(parts) - 1)]
            candidates = [(r, i) for r, i in candidates if r is not None]
            if not candidates:
                break
            best = min(candidates)[0]
            first, second = self.pair_of_rank[best]
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts

    def encode(self, text: str) -> list[int]:
        text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
        text = re.sub(r"\s+", " ", text).strip().lower()
        out = []
        for piece in self.pattern.findall(text):
            chars = "".join(self.byte_char[b] for b in piece.encode("utf-8"))
            out += [self.ids[p] for p in self.merge_word(chars)]
        return out


@pytest.fixture(scope="module")
def reference():
    return ReferenceClipBPE(BPE_GZ)


TRICKY_PROMPTS = [
    "a photo of an astronaut riding a horse on mars",
    "",
    "    ",
    "Café crème brûlée, naïve résumé, Ångström, Straße",
    "emoji 🐱🚀 test 👍🏽 ❤️ 🏳️‍🌈",
    "日本語のテキスト 中文提示词 한국어 Ελληνικά русский العربية",
    "fish &amp; chips &lt;b&gt;bold&lt;/b&gt; &amp;amp; &quot;q&quot; &#39;s &nbsp;x",
    "<b>salt &amp; pepper</b> a < b &amp;amp; c",  # looks like HTML: ftfy leaves the entities alone
    "The Mona Lisa doesnâ€™t have eyebrows. Ã©tÃ© Ã  Paris",
    "multiple   spaces\n\nand\ttabs\r\n end  \u00a0nbsp\u2003em\u200bzero-width",
    "!!!???...,,,;;;:::---***~~~###@@@$$$%%%^^^&&&|||",
    "supercalifragilisticexpialidocious" * 3 + " " + "a" * 200 + " " + "xyzzy" * 30,
    "numbers 1234567890 3.14159 1e10 1,000,000 0x1F 2nd 42nd",
    "<lora:my_lora-v2:0.8> <hypernet:Some Net:1> <lyco:x:1:0.5:dyn=4>",
    "UPPER CASE Mixed CaSe ÀÉÎÕÜ ẞ İstanbul ΣΊΣΥΦΟΣ",
    "it's they're we've I'm you'll he'd don't IT'S O'Neil's",
    "(masterpiece:1.2), [bad hands], ((best quality)), \\(escaped\\)",
    "“curly quotes” ‘single’ – en dash — em dash … ellipsis",
    "ﬁne ligature ＡＢＣ full width ｶﾀｶﾅ half width",
    "control \x00\x07 chars \x1b[31mred\x1b[0m \x1c\x1d\x1e\x1f\x85 end",
    "<|startoftext|>hello<|endoftext|> world",
    "a\u0301 combining e\u0308 accents, ﬀ ﬃ ligatures, ½ ² ⅷ",
]


@pytest.mark.parametrize("pad", ["eot", "zero"])
@pytest.mark.parametrize("prompt", TRICKY_PROMPTS)
def test_ids_equal_original_algorithm(reference, pad, prompt):
    ours = tk.tokenize(tk.load_clip_tokenizer(pad), prompt)
    assert ours == reference.encode(prompt)


def test_known_ids(reference):
    tok = tk.load_clip_tokenizer("eot")
    assert tk.tokenize(tok, "a photo of a cat") == [320, 1125, 539, 320, 2368]
    assert tk.tokenize(tok, "A   Photo\nof a CAT") == [320, 1125, 539, 320, 2368]
    assert tk.tokenize(tok, "fish &amp;amp; chips") == tk.tokenize(tok, "fish & chips")
    assert tk.tokenize(tok, "<i>fish &amp;amp; chips</i>") == tk.tokenize(tok, "<i>fish & chips</i>")
    assert tk.tokenize_batch(tok, ["a", "cat"]) == [[320], [2368]]
    assert tk.tokenize_batch(tok, []) == []


def test_pad_kinds():
    eot, zero = tk.load_clip_tokenizer("eot"), tk.load_clip_tokenizer("zero")
    assert tk.load_clip_tokenizer("eot") is eot  # cached
    assert (eot.bos_token_id, eot.eos_token_id, eot.pad_token_id) == (49406, 49407, 49407)
    assert (zero.bos_token_id, zero.eos_token_id, zero.pad_token_id) == (49406, 49407, 0)
    assert eot.model_max_length == zero.model_max_length == 77
    padded = zero("a cat", padding="max_length", max_length=8)["input_ids"]
    assert padded == [49406, 320, 2368, 49407, 0, 0, 0, 0]
    padded = eot("a cat", padding="max_length", max_length=8)["input_ids"]
    assert padded == [49406, 320, 2368, 49407, 49407, 49407, 49407, 49407]
    with pytest.raises(ValueError, match="pad must be one of"):
        tk.load_clip_tokenizer("left")


def test_long_prompt_is_not_truncated():
    ids = tk.tokenize(tk.load_clip_tokenizer("eot"), "cat " * 300)
    assert ids == [2368] * 300


def test_loads_offline_from_local_files():
    code = (
        "from sdui.text.tokenizer import load_clip_tokenizer, tokenize\n"
        "print(tokenize(load_clip_tokenizer('zero'), 'a photo of a cat'))\n"
    )
    # offline, an empty HF cache and a dead proxy: any hub access would fail
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(ROOT / "tests" / "_nonexistent_hf_home"),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[320, 1125, 539, 320, 2368]"
    assert not (ROOT / "tests" / "_nonexistent_hf_home").exists()
