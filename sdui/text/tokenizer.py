"""The CLIP BPE tokenizer, loaded from the files under configs/tokenizer/ (never from the hub).

SD1/SDXL's CLIP-L and SD2/SDXL's OpenCLIP share one vocabulary; they differ only in what fills a 77-token window after
the end token: CLIP-L repeats <|endoftext|> ("eot"), OpenCLIP pads with id 0, the token "!" ("zero").

Text cleaning follows original SD's tokenizer (ftfy, HTML entities unescaped twice, whitespace collapsed, lower case).
transformers' CLIPTokenizer only collapses whitespace and lowercases, so prompts go through `clean_text` first.
"""

from __future__ import annotations

import functools
import html
import re
from pathlib import Path

import ftfy
from transformers import CLIPTokenizer

TOKENIZER_DIR = Path(__file__).resolve().parents[2] / "configs" / "tokenizer"
PAD_IDS = {"eot": 49407, "zero": 0}
_WHITESPACE = re.compile(r"\s+")


@functools.cache
def load_clip_tokenizer(pad: str) -> CLIPTokenizer:
    """One shared tokenizer per pad kind ("eot" or "zero"); treat it as read-only."""
    if pad not in PAD_IDS:
        raise ValueError(f"pad must be one of {sorted(PAD_IDS)}, got {pad!r}")
    tokenizer = CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR), local_files_only=True)
    # Set the id, not pad_token="!": that would register "!" as a special token and stop "!!!" from merging into
    # one BPE token as the original tokenizer does.
    tokenizer.pad_token_id = PAD_IDS[pad]
    return tokenizer


def clean_text(text: str) -> str:
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))  # twice: entities are often double-escaped ("&amp;amp;")
    return _WHITESPACE.sub(" ", text.strip()).strip().lower()


def tokenize(tokenizer: CLIPTokenizer, text: str) -> list[int]:
    """Token ids of `text` without the start/end tokens and without truncation."""
    return tokenize_batch(tokenizer, [text])[0]


def tokenize_batch(tokenizer: CLIPTokenizer, texts: list[str]) -> list[list[int]]:
    if not texts:
        return []
    # verbose=False: prompts longer than 77 tokens are expected here (they are chunked later)
    encoded = tokenizer(
        [clean_text(t) for t in texts], add_special_tokens=False, truncation=False, padding=False, verbose=False
    )
    return [list(ids) for ids in encoded["input_ids"]]
