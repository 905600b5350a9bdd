"""A1111's "Prompt matrix" script: every combination of the `|`-separated parts of the prompt (or the negative
prompt), the first part always kept, in one job, with a grid labelled by the parts each row and column uses.

    "a cat | in a hat | on a mat" -> "a cat", "a cat, in a hat", "a cat, on a mat", "a cat, in a hat, on a mat"

Combination k uses part i+1 when bit i of k is set (A1111's order). The job makes ceil(N / batch size) batches; the
images get the request's seed, or consecutive seeds with "different seeds". The per-image prompts are set through
a hook at the point where A1111's script has set p.prompt to the list.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from sdui.core.hooks import ProcessingHooks
from sdui.core.outputs import save_script_grid
from sdui.core.processed import Processed
from sdui.core.processing import process
from sdui.errors import InvalidRequestError
from sdui.imaging.grids import draw_grid
from sdui.request import GenerationRequest

TITLE = "Prompt matrix"
MAX_PARTS = 9  # 256 combinations: a bigger matrix is a mistake, not a plan
INACTIVE = "#999999"  # A1111's grid_text_inactive_color


@dataclass(frozen=True)
class MatrixArgs:
    put_at_start: bool = False
    different_seeds: bool = False
    prompt_type: str = "positive"  # which prompt holds the | parts: "positive" or "negative"
    delimiter: str = "comma"  # how chosen parts are joined: "comma" (", ") or "space" (" ")
    margin_size: int = 0

    @classmethod
    def from_script_args(cls, args: Sequence) -> MatrixArgs:
        """A1111's script_args: [put variable parts at start, use different seed for each picture, select prompt
        ("positive"/"negative"), select joining char ("comma"/"space"), grid margins (px)]."""
        values = list(args) + [None] * (5 - len(args))
        at_start, different, kind, delimiter, margin = values[:5]
        kind, delimiter = str(kind or "positive").lower(), str(delimiter or "comma").lower()
        if kind not in ("positive", "negative"):
            raise InvalidRequestError(f"{TITLE}: the prompt type must be 'positive' or 'negative', not {kind!r}")
        if delimiter not in ("comma", "space"):
            raise InvalidRequestError(f"{TITLE}: the joining character must be 'comma' or 'space', not {delimiter!r}")
        try:
            margin = int(margin or 0)
        except (TypeError, ValueError) as e:
            raise InvalidRequestError(f"{TITLE}: grid margins must be a whole number of pixels") from e
        if not 0 <= margin <= 500:
            raise InvalidRequestError(f"{TITLE}: grid margins must be between 0 and 500 pixels")
        return cls(bool(at_start), bool(different), kind, delimiter, margin)


def combinations(prompt: str, args: MatrixArgs) -> tuple[list[str], list[str]]:
    """(the prompt's parts, the prompt of every combination in A1111's order)."""
    parts = prompt.split("|")
    if len(parts) - 1 > MAX_PARTS:
        raise InvalidRequestError(
            f"{TITLE}: {len(parts) - 1} variable parts make {2 ** (len(parts) - 1)} images; use at most {MAX_PARTS}"
        )
    joiner = ", " if args.delimiter == "comma" else " "
    prompts = []
    for k in range(2 ** (len(parts) - 1)):
        chosen = [text.strip().strip(",") for i, text in enumerate(parts[1:]) if k & (1 << i)]
        prompts.append(joiner.join([*chosen, parts[0]] if args.put_at_start else [parts[0], *chosen]))
    return parts, prompts


class _SetPrompts(ProcessingHooks):
    def __init__(self, prompts: list[str], seeds: list[int], negative: bool):
        self.prompts, self.seeds, self.negative = prompts, seeds, negative

    def process(self, run) -> None:
        n = len(self.prompts)
        if self.negative:
            run.all_negative_prompts = list(self.prompts)
            run.all_prompts = run.all_prompts[:n]
        else:
            run.all_prompts = list(self.prompts)
            run.all_negative_prompts = run.all_negative_prompts[:n]
        run.all_seeds = list(self.seeds)
        run.all_subseeds = run.all_subseeds[:n]


def prompt_matrix(
    request: GenerationRequest, model, *, args: MatrixArgs, data_dir=None, hooks=(), models=None, **process_kwargs
) -> Processed:
    # 1. the combinations and their seeds
    source = request.prompt if args.prompt_type == "positive" else request.negative_prompt
    parts, prompts = combinations(source, args)
    seed = request.seed if request.seed != -1 else random.randrange(4294967294)
    seeds = [seed + (i if args.different_seeds else 0) for i in range(len(prompts))]

    # 2. one job: enough batches for every combination, the prompts set per image
    job = dataclasses.replace(
        request, seed=seed, n_iter=math.ceil(len(prompts) / request.batch_size), do_not_save_grid=True
    )
    hook = _SetPrompts(prompts, seeds, negative=args.prompt_type == "negative")
    processed = process(job, model, data_dir=data_dir, hooks=[*hooks, hook], **process_kwargs)
    images = processed.images[processed.index_of_first_image :]
    if not images:
        return processed

    # 3. the labelled grid first, with the first image's parameters (A1111)
    rows = 1 << ((len(parts) - 1) // 2)
    grid = draw_grid(images, rows, math.ceil(len(images) / rows))
    grid = _draw_matrix_labels(grid, images[0].width, images[0].height, parts, args.margin_size)
    text = processed.infotexts[processed.index_of_first_image]
    grid.info["parameters"] = text
    result = dataclasses.replace(
        processed,
        images=[grid, *images],
        infotexts=[text, *processed.infotexts[processed.index_of_first_image :]],
        index_of_first_image=1,
    )
    saved = save_script_grid(
        grid,
        dataclasses.replace(result, request=request),
        model,
        data_dir=data_dir,
        hooks=hooks,
        basename="prompt_matrix",
        prompt=source,
    )
    return dataclasses.replace(result, saved_paths=[*result.saved_paths, *([saved] if saved else [])])


def _draw_matrix_labels(grid: Image.Image, width: int, height: int, parts: list[str], margin: int) -> Image.Image:
    """A1111's draw_prompt_matrix: above each column the first half of the variable parts, left of each row the
    second half, each part black where the cell uses it and grey where it does not."""
    variable = [p.strip() for p in parts[1:]]
    boundary = math.ceil(len(variable) / 2)
    horizontal, vertical = variable[:boundary], variable[boundary:]
    columns = [
        [(text, bool(pos & (1 << i))) for i, text in enumerate(horizontal)] for pos in range(1 << len(horizontal))
    ]
    rows = [[(text, bool(pos & (1 << i))) for i, text in enumerate(vertical)] for pos in range(1 << len(vertical))]
    if margin:
        grid = _with_margins(grid, width, height, margin)
    size = max(12, min(width, height) // 16)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow without the scalable default font
        font = ImageFont.load_default()
    line_h = size + size // 4
    top = line_h * max((len(c) for c in columns), default=0) + (size if horizontal else 0)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    widest = max((probe.textlength(t, font=font) for r in rows for t, _ in r), default=0)
    left = int(widest) + size if vertical else 0
    out = Image.new("RGB", (grid.width + left, grid.height + top), "white")
    out.paste(grid, (left, top))
    draw = ImageDraw.Draw(out)
    for i, lines in enumerate(columns):
        for n, (text, active) in enumerate(lines):
            x = left + i * (width + margin) + (width - probe.textlength(text, font=font)) / 2
            draw.text((x, size // 2 + n * line_h), text, fill="black" if active else INACTIVE, font=font)
    for j, lines in enumerate(rows):
        y0 = top + j * (height + margin) + (height - line_h * len(lines)) / 2
        for n, (text, active) in enumerate(lines):
            x = (left - probe.textlength(text, font=font)) / 2
            draw.text((x, y0 + n * line_h), text, fill="black" if active else INACTIVE, font=font)
    return out


def _with_margins(grid: Image.Image, width: int, height: int, margin: int) -> Image.Image:
    cols, rows = grid.width // width, grid.height // height
    out = Image.new("RGB", (grid.width + (cols - 1) * margin, grid.height + (rows - 1) * margin), "white")
    for r in range(rows):
        for c in range(cols):
            cell = grid.crop((c * width, r * height, (c + 1) * width, (r + 1) * height))
            out.paste(cell, (c * (width + margin), r * (height + margin)))
    return out
