"""A1111's extra network tags in prompts: `<kind:arg1:arg2:name=value>` (`<lora:style:0.8>`, `<hypernet:x:1>`).

The tags are taken out of the text before it is encoded (they are not words); the networks they name are applied
by their handlers. As in A1111, the arguments are split at ":", those with "=" are named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TAG = re.compile(r"<(\w+):([^>]+)>")


@dataclass(frozen=True)
class NetworkUse:
    kind: str  # "lora", "hypernet", ...
    positional: tuple[str, ...]
    named: dict = field(default_factory=dict, hash=False, compare=True)

    @property
    def name(self) -> str:
        return self.positional[0] if self.positional else ""


def parse_tags(prompt: str) -> tuple[str, list[NetworkUse]]:
    """(the prompt without its tags, the tags in order)."""
    found: list[NetworkUse] = []

    def take(match: re.Match) -> str:
        positional, named = [], {}
        for arg in match[2].split(":"):
            key, sep, value = arg.partition("=")
            if sep:
                named[key.strip()] = value.strip()
            else:
                positional.append(arg.strip())
        found.append(NetworkUse(match[1].lower(), tuple(positional), named))
        return ""

    return _TAG.sub(take, prompt), found


def strip_tags(prompt: str) -> str:
    return _TAG.sub("", prompt)
