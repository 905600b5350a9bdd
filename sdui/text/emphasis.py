"""Attention weights in prompt text: `(x)`, `[x]`, `(x:1.5)`, escapes and BREAK, with A1111's results.

    >>> parse_prompt_attention("a (b:1.5) c")
    [['a ', 1.0], ['b', 1.5], [' c', 1.0]]

Weights multiply as brackets close (inner first), and brackets still open at the end are closed there (round ones
first, then square ones), so float results equal A1111's digit for digit.
"""

from __future__ import annotations

import re

ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1
BREAK_WEIGHT = -1.0

# One alternative per kind of token; plain text is everything that is not a bracket, colon or backslash.
_TOKEN = re.compile(
    r"""
    (?P<escaped>\\[()\[\]\\]) |
    (?P<backslash>\\) |
    (?P<weight>:\s*(?P<number>[+-]?[.\d]+)\s*\)) |
    (?P<bracket>[()\[\]]) |
    (?P<text>[^\\()\[\]:]+) |
    (?P<colon>:)
""",
    re.VERBOSE,
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*")


def parse_prompt_attention(text: str) -> list[list]:
    """Split `text` into [text, weight] runs; a BREAK keyword becomes ["BREAK", -1.0]."""
    runs: list[list] = []
    open_round: list[int] = []  # index into runs where each open bracket started
    open_square: list[int] = []

    def weigh_from(start: int, factor: float) -> None:
        for run in runs[start:]:
            if not _is_break(run):  # A1111 would weigh the marker too and lose the BREAK; we keep it
                run[1] *= factor

    def add_text(chunk: str) -> None:
        for i, piece in enumerate(_BREAK.split(chunk)):
            if i:
                runs.append(["BREAK", BREAK_WEIGHT])
            runs.append([piece, 1.0])

    for m in _TOKEN.finditer(text):
        kind = m.lastgroup if m.lastgroup != "number" else "weight"
        token = m.group(0)
        if kind == "escaped":
            runs.append([token[1], 1.0])
        elif kind == "backslash":
            continue  # a lone backslash escapes nothing and is dropped (as in A1111)
        elif kind == "weight":
            factor = _to_float(m.group("number"))
            if open_round and factor is not None:
                weigh_from(open_round.pop(), factor)
            else:
                add_text(token)
        elif token == "(":
            open_round.append(len(runs))
        elif token == "[":
            open_square.append(len(runs))
        elif token == ")" and open_round:
            weigh_from(open_round.pop(), ROUND_MULTIPLIER)
        elif token == "]" and open_square:
            weigh_from(open_square.pop(), SQUARE_MULTIPLIER)
        else:  # text, a colon, or a closing bracket with nothing open
            add_text(token)

    for start in open_round:
        weigh_from(start, ROUND_MULTIPLIER)
    for start in open_square:
        weigh_from(start, SQUARE_MULTIPLIER)

    return _merge_equal_neighbours(runs) or [["", 1.0]]


def _to_float(number: str) -> float | None:
    try:
        return float(number)
    except ValueError:  # "(x:1.2.3)": A1111 fails on this; we keep the text literally
        return None


def _merge_equal_neighbours(runs: list[list]) -> list[list]:
    merged: list[list] = []
    for run in runs:
        if merged and merged[-1][1] == run[1] and not _is_break(run) and not _is_break(merged[-1]):
            merged[-1][0] += run[0]
        else:
            merged.append(run)
    return merged


def _is_break(run: list) -> bool:
    return run[0] == "BREAK" and run[1] == BREAK_WEIGHT
