"""A1111's "Prompts from file or textbox" script: one generation per line of text.

A line is a prompt, or command-line style options for that job (`--prompt "a cat" --negative_prompt "blur"
--steps 10 --seed 5 ...`, the names A1111 accepts). The line's prompt goes after the request's own (or before it,
with "start"); "Iterate seed every line" gives each line the next seeds, "Use same random seed for all lines" one
random seed for all. It runs in place of process() and calls it once per line, so hooks and extensions see each.
"""

from __future__ import annotations

import dataclasses
import random
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from sdui.core.processed import Processed
from sdui.core.processing import process
from sdui.errors import InvalidRequestError
from sdui.request import GenerationRequest

TITLE = "Prompts from file or textbox"
MAX_LINES = 1000

# A1111's option names -> (our request field, type)
_OPTIONS = {
    "prompt": ("prompt", str),
    "negative_prompt": ("negative_prompt", str),
    "styles": ("styles", list),
    "seed": ("seed", int),
    "subseed": ("subseed", int),
    "subseed_strength": ("subseed_strength", float),
    "seed_resize_from_h": ("seed_resize_from_h", int),
    "seed_resize_from_w": ("seed_resize_from_w", int),
    "sampler_name": ("sampler_name", str),
    "sampler_index": ("sampler_name", str),
    "scheduler": ("scheduler", str),
    "batch_size": ("batch_size", int),
    "n_iter": ("n_iter", int),
    "steps": ("steps", int),
    "cfg_scale": ("cfg_scale", float),
    "width": ("width", int),
    "height": ("height", int),
    "tiling": ("tiling", bool),
    "do_not_save_samples": ("do_not_save_samples", bool),
    "do_not_save_grid": ("do_not_save_grid", bool),
    "denoising_strength": ("denoising_strength", float),
}


@dataclass(frozen=True)
class PromptsArgs:
    iterate_seed: bool = False
    same_seed: bool = False
    position: str = "start"  # where a line's prompt goes relative to the request's: "start" or "end"
    text: str = ""

    @classmethod
    def from_script_args(cls, args: Sequence) -> PromptsArgs:
        """A1111's script_args: [iterate seed every line, same random seed for all lines, prompt position, text]."""
        values = list(args) + [None] * (4 - len(args))
        iterate, same, position, text = values[:4]
        position = str(position or "start").lower()
        if position not in ("start", "end"):
            raise InvalidRequestError(f"{TITLE}: prompt position must be 'start' or 'end', not {position!r}")
        return cls(bool(iterate), bool(same), position, str(text or ""))


def _line_fields(line: str) -> dict:
    """The request fields a line sets: a plain prompt, or --name value options (A1111's names)."""
    if not line.startswith("--"):
        return {"prompt": line}
    try:
        words = shlex.split(line)
    except ValueError as e:
        raise InvalidRequestError(f"{TITLE}: cannot read the line {line!r}: {e}") from e
    fields: dict = {}
    i = 0
    while i < len(words):
        word = words[i]
        name = word[2:] if word.startswith("--") else None
        if name not in _OPTIONS:
            raise InvalidRequestError(
                f"{TITLE}: unknown option {word!r} in line {line!r}; known: {', '.join('--' + n for n in _OPTIONS)}"
            )
        field, kind = _OPTIONS[name]
        values = []
        i += 1
        while i < len(words) and not words[i].startswith("--"):
            values.append(words[i])
            i += 1
        try:
            if kind is bool:
                fields[field] = (values[0].lower() == "true") if values else True
            elif kind is list:
                fields[field] = values
            else:
                fields[field] = kind(" ".join(values))
        except (ValueError, IndexError) as e:
            wanted = {int: "a whole number", float: "a number"}.get(kind, "a value")
            raise InvalidRequestError(f"{TITLE}: option {word} in line {line!r} needs {wanted}") from e
    return fields


def prompts_from_file(
    request: GenerationRequest, model, *, args: PromptsArgs, models=None, **process_kwargs
) -> Processed:
    lines = [line.strip() for line in args.text.splitlines() if line.strip()]
    if not lines:
        raise InvalidRequestError(f"{TITLE}: give one prompt (or line of options) per line")
    if len(lines) > MAX_LINES:
        raise InvalidRequestError(f"{TITLE}: {len(lines)} lines is more than {MAX_LINES}; split the list")
    jobs = [_line_fields(line) for line in lines]  # every line is checked before any work
    seed = request.seed
    if (args.iterate_seed or args.same_seed) and seed == -1:
        seed = random.randrange(4294967294)
    results: list[Processed] = []
    for fields in jobs:
        job = dict(fields)
        for key in ("prompt", "negative_prompt"):
            own, line = getattr(request, key), job.get(key)
            if line and own:
                job[key] = f"{line} {own}" if args.position == "start" else f"{own} {line}"
        job_request = dataclasses.replace(request, **{"seed": seed, "do_not_save_grid": True, **job})
        processed = process(job_request, model, **process_kwargs)
        results.append(processed)
        if args.iterate_seed:
            seed += job_request.batch_size * job_request.n_iter
        if processed.interrupted:
            break
    return _combined(request, results)


def _combined(request: GenerationRequest, results: list[Processed]) -> Processed:
    first = results[0]
    images, infotexts = [], []
    for processed in results:  # each job's own images (its grid is not made: do_not_save_grid)
        start = processed.index_of_first_image
        images += processed.images[start:]
        infotexts += processed.infotexts[start:]
    return dataclasses.replace(
        first,
        images=images,
        infotexts=infotexts,
        index_of_first_image=0,
        all_prompts=[p for r in results for p in r.all_prompts],
        all_negative_prompts=[p for r in results for p in r.all_negative_prompts],
        all_seeds=[s for r in results for s in r.all_seeds],
        all_subseeds=[s for r in results for s in r.all_subseeds],
        saved_paths=[p for r in results for p in r.saved_paths],
        interrupted=any(r.interrupted for r in results),
        notes=[n for r in results for n in r.notes],
    )
