"""Prompt encodings kept with the model from job to job (A1111's "Persistent cond cache" setting).

Nearly every job encodes the same negative prompt (most often the empty one), and "Generate" again encodes the
same prompt again. A kept encoding is used again only when everything it was made from is the same:

1. the text and the encoding options: the job's own cache key (prompt, steps, schedule, clip skip, emphasis,
   the LoRA set of the text encoders);
2. the tokens the text became: token ids, emphasis weights and the content of every embedding placed, so an
   embedding added, removed or replaced under the same name (or another comma backtrack) makes another key;
3. the text encoders' weights: every Parameter the same object (held weakly, so a freed one is never mistaken
   for a new one at the same id), at the same version (torch counts in-place changes), address, dtype and
   device. A LoRA merged into a text encoder swaps its Parameters; moving the model changes their device.

When the weights differ, every kept encoding is dropped (they were made with the old ones), and the store goes
when the model's kept changes are undone (before it moves between devices). A text encoder with a forward hook on
it (an extension changing what it computes; transformers' own hooks that record hidden states excepted) bypasses
the store: what a hook does cannot be keyed. Weights rewritten through `.data`, which torch does not count, are
not seen (nor are they by A1111's cache); the setting turns the store off.
"""

from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch

KEPT = 32  # encodings per model: a few MB at most (77 x 2048 floats each for SDXL)


def tokens_key(encoder, texts: list[str], emphasis: str) -> tuple:
    """What the encoder makes of `texts`: per text, per chunk, the token ids, the weights and the embeddings placed
    (offset, name, digest of the vectors). Tokenizing also notes the embeddings used (the infotext's TI hashes)."""
    key = []
    for text in texts:
        chunks, _ = encoder.tokenize_prompt(text, emphasis)
        key.append(
            tuple(
                (tuple(c.tokens), tuple(c.weights), tuple((at, e.name, _digest(e.vectors)) for at, e in c.fixes))
                for c in chunks
            )
        )
    return tuple(key)


def _digest(vectors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(vectors):
        t = vectors[name].detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _foreign_hook(module: torch.nn.Module) -> bool:
    """A forward hook on `module` that is not transformers' own (those only record hidden states for
    output_hidden_states, and stay once a model has been asked for them)."""
    hooks = [*module._forward_hooks.values(), *module._forward_pre_hooks.values()]
    return any(not getattr(hook, "__module__", "").startswith("transformers.") for hook in hooks)


def weights_state(text_encoders: list) -> tuple[tuple, list] | None:
    """(key, parameters) of the text encoders as they are now; None when that cannot be told: a forward hook of
    someone else's sits on one of them, or a weight made in inference mode (which keeps no version count)."""
    key, parameters = [], []
    for encoder in text_encoders:
        if any(_foreign_hook(m) for m in encoder.modules()):
            return None
        key.append(encoder.training)
        for p in encoder.parameters():
            if p.is_inference():
                return None
            key.append((id(p), p._version, p.data_ptr(), p.dtype, p.device, tuple(p.shape)))
            parameters.append(p)
    return tuple(key), parameters


class KeptEncodings:
    """The encodings kept for one model, the most recently used `limit`, all made with one state of the text
    encoders' weights."""

    def __init__(self, limit: int = KEPT):
        self.limit = limit
        self._entries: OrderedDict[tuple, Any] = OrderedDict()
        self._weights_key: tuple | None = None
        self._weights: list[weakref.ref] = []

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, text_encoders: list, key: tuple, encoder, texts: list[str], emphasis: str, make: Callable):
        """make() (the encoding of `texts` under the job's `key`), or the same encoding made by an earlier job."""
        tokens = tokens_key(encoder, texts, emphasis)
        state = weights_state(text_encoders)
        if state is None:
            return make()
        weights_key, parameters = state
        if weights_key != self._weights_key or any(ref() is None for ref in self._weights):
            self._entries.clear()
            self._weights_key, self._weights = weights_key, [weakref.ref(p) for p in parameters]
        full = (key, tokens)
        if full in self._entries:
            self._entries.move_to_end(full)
            return self._entries[full]
        value = self._entries[full] = make()
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)
        return value


def kept_encodings(model) -> KeptEncodings:
    """The store of `model` (an SDModel), made on first use; dropped when the model's kept changes are undone."""
    kept = model.applied.get("kept_encodings")
    if kept is None:
        kept = model.applied["kept_encodings"] = KeptEncodings()
        model.on_undo("kept_encodings", lambda: model.applied.pop("kept_encodings", None))
    return kept
