"""A1111's prompt language for time: prompt editing and alternation, and composable diffusion (AND).

    >>> prompt_schedules(["a [cat:dog:0.5] on a [red|blue] mat"], steps=4)
    [[(1, 'a cat on a red mat'), (2, 'a cat on a blue mat'), (3, 'a dog on a red mat'), (4, 'a dog on a blue mat')]]

Editing: `[from:to:when]` shows `from` up to step `when`, then `to`; `[to:when]` adds, `[from::when]` removes.
`when` is a step number, or a fraction of the steps when it has a decimal point. Alternation `[a|b|c]` changes
every step. Each schedule is a list of (last step, text) for steps counted from 1; brackets that are not editing
or alternation (emphasis) are left in the text for the attention parser. A prompt the grammar cannot read is
used as it is, as A1111 does.

For hires fix's second pass (`hires_steps` given), numbers count on from the first pass: with 20 steps and 10
hires steps, `[a:b:25]` switches at the fifth hires step and `[a:b:1.5]` half-way through it.

    >>> split_and("a cat AND a dog :0.5")
    [('a cat', 1.0), ('a dog', 0.5)]
"""

from __future__ import annotations

import functools
import re

import lark

# Written for this project from A1111's documented syntax. PLAIN is any run of characters that are not brackets,
# colons or pipes (a backslash escapes the next character); emphasis brackets are parsed only so that their
# contents can hold editing, and are given back as text; brackets that match nothing are STRAY text. Items are
# never empty and whitespace belongs to PLAIN, which keeps Earley's ambiguity (and time) small: ~0.1 s for a
# 3000-character prompt.
_GRAMMAR = r"""
start: (_item | STRAY)*
prompt: _item*
_item: emphasized | scheduled | alternate | PLAIN
emphasized: LPAR prompt RPAR
          | LPAR prompt COLON prompt RPAR
          | LSQB prompt RSQB
scheduled: "[" [prompt ":"] prompt ":" WHEN "]"
alternate: "[" prompt ("|" prompt)+ "]"
PLAIN: /([^\\\[\]():|]|\\.)+/
STRAY: /[\]\[():|]/
LPAR: "("
RPAR: ")"
LSQB: "["
RSQB: "]"
COLON: ":"
WHEN: /\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*/
"""


@functools.cache
def _parser() -> lark.Lark:
    return lark.Lark(_GRAMMAR)


Schedule = list[tuple[int, str]]


def prompt_schedules(
    prompts: list[str], steps: int, hires_steps: int | None = None, use_old_scheduling: bool = False
) -> list[Schedule]:
    """Per prompt, the texts it encodes to over the steps: [(last step, text), ...] (steps from 1)."""
    found: dict[str, Schedule] = {}
    for prompt in prompts:
        if prompt not in found:
            found[prompt] = _schedule(prompt, steps, hires_steps, use_old_scheduling)
    return [found[p] for p in prompts]


def _schedule(prompt: str, base_steps: int, hires_steps: int | None, use_old_scheduling: bool) -> Schedule:
    if hires_steps is None or use_old_scheduling:
        steps, int_offset, fraction_offset = base_steps, 0, 0.0
    else:
        steps, int_offset, fraction_offset = hires_steps, base_steps, 1.0
    if "[" not in prompt:  # no editing, no alternation: nothing to parse
        return [(steps, prompt)]
    try:
        tree = _parser().parse(prompt)
    except lark.exceptions.LarkError:
        return [(steps, prompt)]

    switches = {steps}
    for node in tree.find_data("scheduled"):
        text = str(node.children[-1]).strip()
        value = float(text)
        if use_old_scheduling:
            value = value * steps if value < 1 else value
        elif "." in text:
            value = (value - fraction_offset) * steps
        else:
            value = value - int_offset
        when = min(steps, int(value))
        node.children[-1] = when  # _text_at reads the resolved step
        if when >= 1:
            switches.add(when)
    if any(True for _ in tree.find_data("alternate")):
        switches.update(range(1, steps + 1))
    return [(step, _text_at(tree, step)) for step in sorted(switches)]


def _text_at(tree: lark.Tree, step: int) -> str:
    """The prompt's text at `step` (from 1)."""
    parts: list[str] = []

    def walk(node) -> None:
        if isinstance(node, lark.Token):
            parts.append(str(node))
            return
        if node is None:
            return
        if node.data == "scheduled":
            before, after, when = node.children
            walk(before if step <= when else after)
        elif node.data == "alternate":
            options = node.children
            walk(options[(step - 1) % len(options)])
        else:
            for child in node.children:
                walk(child)

    walk(tree)
    return "".join(parts)


# --- composable diffusion -----------------------------------------------------------------------------------

_AND = re.compile(r"\bAND\b")
_WEIGHT = re.compile(r"^((?:\s|.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$")


def split_and(prompt: str) -> list[tuple[str, float]]:
    """A prompt's parts joined by AND, each with its weight (`text :weight` at the end of a part, default 1)."""
    parts = []
    for part in _AND.split(prompt):
        match = _WEIGHT.search(part)
        text, weight = match.groups() if match is not None else (part, None)
        parts.append((text, float(weight) if weight is not None else 1.0))
    return parts


__all__ = ["prompt_schedules", "split_and"]
