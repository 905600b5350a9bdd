"""The prompt token counter of the generation tabs (A1111's "12/75"): the most tokens any step's text of the
prompt uses (prompt editing can change it), counted as the encoder chunks them, extra network tags left out."""

from __future__ import annotations

import functools

from sdui.text.emphasis import parse_prompt_attention
from sdui.text.encoder import CHUNK_LENGTH, chunk_tokens
from sdui.text.extra_networks import strip_tags
from sdui.text.prompt_schedule import prompt_schedules, split_and
from sdui.text.tokenizer import load_clip_tokenizer, tokenize_batch

STEPS_FOR_COUNTING = 150  # enough steps that every edit of a schedule shows


@functools.lru_cache(maxsize=1)
def _tokenizer():
    return load_clip_tokenizer("eot")


def token_count(prompt: str, steps: int = STEPS_FOR_COUNTING) -> tuple[int, int]:
    """(tokens, the limit they fit in: 75 per chunk) of the longest text `prompt` encodes to."""
    longest = 0
    texts = [part for part, _ in split_and(strip_tags(prompt or ""))]
    try:
        schedules = prompt_schedules(texts, steps)
    except Exception:  # noqa: BLE001 - a half-typed prompt may not parse yet: count it as plain text
        schedules = [[(steps, t)] for t in texts]
    for schedule in schedules:
        for _, text in schedule:
            runs = parse_prompt_attention(text)
            ids = tokenize_batch(_tokenizer(), [t for t, _ in runs])
            weighted = [(None if t == "BREAK" and w == -1 else i, w) for i, (t, w) in zip(ids, runs, strict=False)]
            longest = max(longest, chunk_tokens(weighted)[1])
    chunks = max(1, -(-longest // CHUNK_LENGTH))
    return longest, chunks * CHUNK_LENGTH
