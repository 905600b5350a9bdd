"""Derive the CLIP BPE tokenizer files under configs/tokenizer/ from OpenAI's merge list.

Run once (the outputs are committed):  venv/bin/python tools/derive_tokenizer.py
The source is open_clip's copy of `bpe_simple_vocab_16e6.txt.gz`, the same merge list original SD, OpenAI CLIP
and OpenCLIP use. Ids follow the original tokenizer's construction, so no download of a hub tokenizer is needed:
  0..255      the 256 byte symbols (GPT-2 byte-to-unicode order)
  256..511    the same symbols with the end-of-word marker "</w>"
  512..49405  one token per merge, in merge order (48894 merges)
  49406       <|startoftext|>    49407  <|endoftext|>
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "configs" / "tokenizer"
N_MERGES = 49152 - 256 - 2  # the original tokenizer keeps this many merges of the file
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def default_bpe_source() -> Path:
    site = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    return site / "open_clip" / "bpe_simple_vocab_16e6.txt.gz"


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins for bytes, in id order: printable latin-1 bytes map to themselves,
    the rest are shifted to code points 256+ in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + shifted)
            shifted += 1
    return [symbols[b] for b in printable] + [symbols[b] for b in range(256) if b not in printable]


def read_merges(source: Path) -> list[tuple[str, str]]:
    lines = gzip.decompress(source.read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 1 + N_MERGES]]  # line 0 is a version header
    if len(merges) != N_MERGES or any(len(m) != 2 for m in merges):
        raise ValueError(f"{source} is not the expected CLIP merge list")
    return merges


def derive(source: Path) -> dict[str, str]:
    """Return {file name: text} for everything under configs/tokenizer/."""
    merges = read_merges(source)
    base = byte_symbols()
    tokens = base + [s + "</w>" for s in base] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    if len(vocab) != 49408:
        raise ValueError(f"expected 49408 distinct tokens, got {len(vocab)}")
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "clean_up_tokenization_spaces": False,
        **special,
    }
    return {
        "vocab.json": json.dumps(vocab, ensure_ascii=False) + "\n",
        "merges.txt": "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
        "special_tokens_map.json": json.dumps(special, indent=2) + "\n",
        "tokenizer_config.json": json.dumps(config, indent=2) + "\n",
    }


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else default_bpe_source()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in derive(source).items():
        (OUT_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT_DIR / name}")


if __name__ == "__main__":
    main()
