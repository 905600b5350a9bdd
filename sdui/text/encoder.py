"""Prompt text -> UNet conditioning, with A1111's 75-token chunks, emphasis weights, BREAK and clip skip.

1. Parse emphasis: "a (b:1.5)" -> runs of (text, weight); BREAK markers end a chunk.
2. Tokenize each run and pack the tokens into chunks of 75 (word-wrapping at a recent comma).
3. Pad every prompt of the batch to the same number of chunks; wrap each chunk as BOS + 75 + EOS/padding = 77.
4. Encode chunk i of all prompts in one forward pass per text encoder; pick the layer (clip skip / penultimate).
5. Apply the weights (emphasis mode), concatenate chunks along the sequence and encoders along the features.

Per architecture (as A1111 does it):
  sd1   CLIP-L: last layer, or with clip skip N the N-th hidden state from the end + final layer norm.
  sd2   OpenCLIP-H: penultimate layer + final norm (the loaded model has that layer last); clip skip is ignored.
  sdxl  CLIP-L and bigG penultimate hidden states without final norm, concatenated; pooled = bigG text_embeds of
        the first chunk. Clip skip is ignored unless `sdxl_clip_l_skip` (A1111's option) applies it to CLIP-L.
        A negative batch of only empty prompts gives zeros (embeds and pooled).
  sdxl-refiner  bigG alone, same rules.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from sdui.errors import InvalidRequestError
from sdui.text.emphasis import parse_prompt_attention
from sdui.text.tokenizer import tokenize_batch

CHUNK_LENGTH = 75  # prompt tokens per chunk; + BOS + EOS = 77, CLIP's context
COMMA_BACKTRACK = 20  # A1111 option comma_padding_backtrack
COMMA_ID = 267  # ",</w>"
BOS_ID, EOS_ID = 49406, 49407
EMPHASIS_MODES = ("Original", "No norm", "Ignore", "None")


@dataclass
class Conditioning:
    embeds: torch.Tensor  # (B, 77 * chunks, D)
    pooled: torch.Tensor | None = None  # (B, P) for SDXL, else None

    @property
    def chunks(self) -> int:
        return self.embeds.shape[1] // (CHUNK_LENGTH + 2)


@dataclass
class PromptChunk:
    tokens: list[int] = field(default_factory=list)  # at most 75 prompt token ids, no BOS/EOS/padding
    weights: list[float] = field(default_factory=list)  # one per token
    # textual inversion: (offset in tokens, embedding) whose vectors replace the placeholders there
    fixes: list = field(default_factory=list)


def chunk_tokens(
    runs: list[tuple[list[int] | None, float]], *, comma_id: int = COMMA_ID, backtrack: int = COMMA_BACKTRACK
) -> tuple[list[PromptChunk], int]:
    """Pack weighted token runs into chunks; a run with ids None is a BREAK. Returns (chunks, token count).

    Word wrap: when a chunk is full and a comma lies within `backtrack` tokens of its end, the tokens after that comma
    move to the next chunk. The token count is what A1111's counter shows: 75 per finished chunk plus the last one's.
    An item of a run that is not an int is a textual inversion embedding: its vectors take `count` places (token 0
    as a placeholder), all in one chunk (a new one when they do not fit), as A1111 places them.
    """
    chunks: list[PromptChunk] = []
    current = PromptChunk()
    last_comma = -1  # index in current.tokens of its latest comma
    counted = 0

    def finish(final: bool = False) -> None:
        nonlocal current, last_comma, counted
        counted += len(current.tokens) if final else CHUNK_LENGTH
        chunks.append(current)
        current, last_comma = PromptChunk(), -1

    for ids, weight in runs:
        if ids is None:
            finish()
            continue
        for token in ids:
            if not isinstance(token, int):  # an embedding
                count = min(token.count, CHUNK_LENGTH)
                if len(current.tokens) + count > CHUNK_LENGTH:
                    finish()
                current.fixes.append((len(current.tokens), token))
                current.tokens += [0] * count
                current.weights += [weight] * count
                continue
            full = len(current.tokens) == CHUNK_LENGTH
            if token == comma_id:
                last_comma = len(current.tokens)  # where it will land (a comma arriving at a full chunk is forgotten)
            elif full and backtrack and last_comma >= 0 and CHUNK_LENGTH - last_comma <= backtrack:
                cut = last_comma + 1
                moved = [(at - cut, e) for at, e in current.fixes if at >= cut]
                carried = PromptChunk(current.tokens[cut:], current.weights[cut:], moved)
                current.fixes = [(at, e) for at, e in current.fixes if at < cut]
                del current.tokens[cut:], current.weights[cut:]
                finish()
                current = carried
            if len(current.tokens) == CHUNK_LENGTH:
                finish()
            current.tokens.append(token)
            current.weights.append(weight)

    if current.tokens or not chunks:
        finish(final=True)
    return chunks, counted


def apply_emphasis(z: torch.Tensor, weights: torch.Tensor, mode: str) -> torch.Tensor:
    """Scale token vectors z (B, T, D) by weights (B, T). "Original" restores the mean of the whole batch chunk, as
    A1111 does (so a prompt's result can depend on the others encoded with it, exactly as there)."""
    if mode in ("Ignore", "None") or bool((weights == 1).all()):
        return z
    # in float32 like A1111 (its multipliers are float32 and promote a half-precision z)
    weighted = z.float() * weights.float().unsqueeze(-1)
    if mode == "No norm":
        return weighted.to(z.dtype)
    return (weighted * (z.float().mean() / weighted.mean())).to(z.dtype)


@dataclass(frozen=True)
class _EncoderUse:
    model: object
    pad_id: int
    layer: str  # "last" | "skip" (clip skip + final norm) | "penultimate" (no final norm)
    pooled: bool = False
    vectors_key: str = ""  # which vectors of an SDXL embedding this encoder takes: "clip_l" / "clip_g"


class PromptEncoder:
    """Encodes prompts for one loaded model (anything with .arch, .text_encoders, .tokenizers, e.g. SDModel)."""

    def __init__(self, model, *, comma_backtrack: int = COMMA_BACKTRACK, embeddings=None):
        self.arch = model.arch
        self.tokenizer = model.tokenizers[0]  # all share one vocabulary; only padding differs
        self.comma_backtrack = comma_backtrack
        self.used_embeddings: dict = {}  # name -> Embedding, of what this encoder has tokenized
        self._triggers = _trigger_index(self.tokenizer, embeddings)
        te = model.text_encoders
        wanted = {"sd1": 1, "sd2": 1, "sdxl": 2, "sdxl-refiner": 1}.get(self.arch)
        if wanted is None:
            raise ValueError(f"unknown architecture {self.arch!r}")
        if len(te) != wanted:
            raise ValueError(f"{self.arch} needs {wanted} text encoders, got {len(te)}")
        if self.arch == "sd1":
            self.uses = [_EncoderUse(te[0], EOS_ID, "skip")]
        elif self.arch == "sd2":
            self.uses = [_EncoderUse(te[0], 0, "last")]
        elif self.arch == "sdxl":
            self.uses = [
                _EncoderUse(te[0], EOS_ID, "penultimate", vectors_key="clip_l"),
                _EncoderUse(te[1], 0, "penultimate", pooled=True, vectors_key="clip_g"),
            ]
        else:
            self.uses = [_EncoderUse(te[0], 0, "penultimate", pooled=True, vectors_key="clip_g")]

    # ---- text -> chunks ----

    def tokenize_prompt(self, prompt: str, emphasis: str = "Original") -> tuple[list[PromptChunk], int]:
        """Chunks of one prompt and its token count (for the UI's n/75 counter)."""
        _check_mode(emphasis)
        runs = parse_prompt_attention(prompt) if emphasis != "None" else [[prompt, 1.0]]
        ids = tokenize_batch(self.tokenizer, [text for text, _ in runs])
        if self._triggers:
            ids = [self._with_embeddings(tokens) for tokens in ids]
        weighted = [(None if _is_break(text, w) else tok, w) for tok, (text, w) in zip(ids, runs, strict=False)]
        return chunk_tokens(weighted, backtrack=self.comma_backtrack)

    def _with_embeddings(self, tokens: list[int]) -> list:
        """The tokens with each embedding's trigger word replaced by the embedding (longest name first)."""
        out, i = [], 0
        while i < len(tokens):
            for ids, embedding in self._triggers.get(tokens[i], ()):
                if tuple(tokens[i : i + len(ids)]) == ids:
                    out.append(embedding)
                    self.used_embeddings[embedding.name] = embedding
                    i += len(ids)
                    break
            else:
                out.append(tokens[i])
                i += 1
        return out

    # ---- chunks -> tensors ----

    def encode(
        self,
        prompts: list[str],
        *,
        clip_skip: int = 1,
        emphasis: str = "Original",
        is_negative: bool = False,
        sdxl_clip_l_skip: bool = False,
        min_chunks: int = 1,
    ) -> Conditioning:
        """Conditioning for a batch of prompts.

        `min_chunks` pads every prompt with empty chunks, encoded in the same batch, up to that count. To line up cond
        and uncond of different lengths the way A1111's "Pad conds" does, use `pad_to_chunks` instead.
        """
        _check_mode(emphasis)
        if not prompts:
            raise ValueError("encode() needs at least one prompt")
        if is_negative and self.arch in ("sdxl", "sdxl-refiner") and all(p == "" for p in prompts):
            zeros = self._zeros(len(prompts))
            if min_chunks > 1:
                zeros = pad_to_chunks(
                    zeros, self.encode([""], clip_skip=clip_skip, sdxl_clip_l_skip=sdxl_clip_l_skip), min_chunks
                )
            return zeros

        chunked: dict[str, list[PromptChunk]] = {}
        for prompt in prompts:
            if prompt not in chunked:
                chunked[prompt] = self.tokenize_prompt(prompt, emphasis)[0]
        per_prompt = [chunked[p] for p in prompts]
        n_chunks = max(min_chunks, *(len(c) for c in per_prompt))
        layouts = [_chunk_slots(chunks, n_chunks) for chunks in per_prompt]

        embeds, pooled = [], None
        for use in self.uses:
            pieces = []
            for i in range(n_chunks):
                batch = [slots[i] for slots in layouts]
                ids = torch.tensor([_window(c.tokens, use.pad_id) for c in batch])
                weights = torch.tensor([[1.0] + c.weights + [1.0] * (CHUNK_LENGTH + 1 - len(c.tokens)) for c in batch])
                fixes = [c.fixes for c in batch]
                z, pool = self._run(use, ids, fixes, clip_skip=clip_skip, sdxl_clip_l_skip=sdxl_clip_l_skip)
                pieces.append(apply_emphasis(z, weights.to(z.device), emphasis))
                if use.pooled and i == 0:
                    pooled = pool
            embeds.append(torch.cat(pieces, dim=1))
        return Conditioning(torch.cat(embeds, dim=-1), pooled)

    @torch.no_grad()
    def _run(self, use: _EncoderUse, ids: torch.Tensor, fixes: list, *, clip_skip: int, sdxl_clip_l_skip: bool):
        model = use.model
        wants_hidden = use.layer == "penultimate" or (use.layer == "skip" and clip_skip > 1)
        with _embeddings_placed(model, fixes, use.vectors_key):
            out = model(ids.to(model.device), output_hidden_states=wants_hidden)
        pooled = out.text_embeds if use.pooled else None
        if use.layer == "last":
            return out.last_hidden_state, pooled
        if use.layer == "penultimate":
            if sdxl_clip_l_skip and not use.pooled:  # A1111's "clip skip for SDXL's CLIP-L" option
                return out.hidden_states[-_checked_skip(clip_skip, model)], pooled
            return out.hidden_states[-2], pooled
        skip = _checked_skip(clip_skip, model)
        if skip == 1:
            return out.last_hidden_state, pooled
        return _body(model).final_layer_norm(out.hidden_states[-skip]), pooled

    def _zeros(self, batch: int) -> Conditioning:
        models = [u.model for u in self.uses]
        width = sum(m.config.hidden_size for m in models)
        ref = next(models[0].parameters())
        embeds = torch.zeros(batch, CHUNK_LENGTH + 2, width, dtype=ref.dtype, device=ref.device)
        pooled = torch.zeros(batch, models[-1].config.projection_dim, dtype=ref.dtype, device=ref.device)
        return Conditioning(embeds, pooled)


def _trigger_index(tokenizer, embeddings) -> dict[int, list]:
    """{first token id of a name: [(the name's token ids, embedding), ...] longest first}."""
    index: dict[int, list] = {}
    for name, embedding in embeddings.loaded.items() if embeddings is not None else ():
        ids = tuple(tokenize_batch(tokenizer, [name])[0])
        if ids:
            index.setdefault(ids[0], []).append((ids, embedding))
    for candidates in index.values():
        candidates.sort(key=lambda c: -len(c[0]))
    return index


@contextlib.contextmanager
def _embeddings_placed(model, fixes: list, vectors_key: str):
    """While `model` runs: its token embedding output carries each row's embedding vectors at their places
    (after BOS), through a forward hook on the embedding layer (nothing of the library is changed)."""
    if not any(fixes):
        yield
        return
    layer = _body(model).embeddings.token_embedding

    def place(module, inputs, output):
        output = output.clone()
        width = output.shape[-1]
        for row, row_fixes in enumerate(fixes):
            for offset, embedding in row_fixes:
                vectors = embedding.for_width(width, vectors_key).to(output.device, output.dtype)
                n = min(vectors.shape[0], output.shape[1] - offset - 1)
                output[row, offset + 1 : offset + 1 + n] = vectors[:n]
        return output

    handle = layer.register_forward_hook(place)
    try:
        yield
    finally:
        handle.remove()


def pad_to_chunks(cond: Conditioning, empty: Conditioning, chunks: int) -> Conditioning:
    """Append `empty` (the one-chunk encoding of [""]) until `cond` has `chunks` chunks, as A1111's "Pad conds"."""
    missing = chunks - cond.chunks
    if missing <= 0:
        return cond
    filler = empty.embeds[:1].expand(cond.embeds.shape[0], -1, -1).repeat(1, missing, 1)
    return Conditioning(torch.cat([cond.embeds, filler.to(cond.embeds)], dim=1), cond.pooled)


def _check_mode(emphasis: str) -> None:
    if emphasis not in EMPHASIS_MODES:
        raise InvalidRequestError(f"Unknown emphasis mode {emphasis!r}; use one of: {', '.join(EMPHASIS_MODES)}.")


def _is_break(text: str, weight: float) -> bool:
    return text == "BREAK" and weight == -1


def _chunk_slots(chunks: list[PromptChunk], n: int) -> list[PromptChunk]:
    return chunks + [PromptChunk() for _ in range(n - len(chunks))]


def _window(tokens: list[int], pad_id: int) -> list[int]:
    return [BOS_ID, *tokens, EOS_ID] + [pad_id] * (CHUNK_LENGTH - len(tokens))


def _body(model):
    """The CLIPTextModel inside (CLIPTextModelWithProjection wraps one; CLIPTextModel itself since transformers 5.6)."""
    return getattr(model, "text_model", model)


def _checked_skip(clip_skip: int, model) -> int:
    layers = model.config.num_hidden_layers
    if clip_skip > layers:
        raise InvalidRequestError(
            f"Clip skip {clip_skip} is more than the text encoder's {layers} layers; use a value from 1 to {layers}."
        )
    return max(1, int(clip_skip))
