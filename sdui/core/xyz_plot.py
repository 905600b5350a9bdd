"""A1111's "X/Y/Z plot" script: one generation per combination of up to three axes' values, in a labelled grid.

The axes are A1111's, in A1111's order (the API names them by their index in the tab's list, or here also by
label), with A1111's value syntax: comma-separated values (quotes allowed), integer ranges `1-5`, `1-10 (+3)`,
`1-10 [4]` (4 values evenly spread), the same for decimals, and "Prompt S/R" (the first value is searched for in
the prompts and replaced by each value in turn). It runs in place of process() and calls it once per cell, so
hooks and extensions see each; the job's batch count adds up, as A1111's does.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import permutations
from typing import Any

from PIL import Image

from sdui.core.outputs import save_script_grid
from sdui.core.processed import Processed
from sdui.core.processing import process
from sdui.errors import InvalidRequestError
from sdui.imaging.grids import annotated_grid
from sdui.request import GenerationRequest

TITLE = "X/Y/Z plot"
MAX_CELLS = 1000


@dataclass
class Cell:
    """What one cell changes: request fields, settings (override_settings) and the checkpoint."""

    fields: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    checkpoint: str | None = None


def _checkpoint(cell: Cell, value, request, values) -> None:
    cell.checkpoint = value


@dataclass(frozen=True)
class Axis:
    label: str
    kind: type  # int, float or str (values are converted to it)
    # apply(cell, value, request, values): what the value changes (values: all of the axis); None: not available here
    apply: Callable[[Cell, Any, GenerationRequest, list], None] | None
    modes: tuple[str, ...] = ("txt2img", "img2img")
    choices: Callable[[], list[str]] | None = None
    show_label: bool = True  # "Steps: 20"; Prompt S/R and the like show the value alone
    named: bool = False  # values are names offered in a dropdown, checked by the job (checkpoints)


def _field(name: str):
    def apply(cell: Cell, value, request, values) -> None:
        cell.fields[name] = value

    return apply


def _setting(name: str, boolean: bool = False):
    def apply(cell: Cell, value, request, values) -> None:
        cell.settings[name] = (str(value).lower() == "true") if boolean else value

    return apply


def _override(name: str):
    """A setting the cell overrides the way a request's override_settings does (A1111's apply_override), so rules
    that ask whether the request overrode it (img2img's token merging ratio) see it too."""

    def apply(cell: Cell, value, request, values) -> None:
        cell.settings[name] = value
        overrides = cell.fields.get("override_settings", request.override_settings)
        cell.fields["override_settings"] = {**overrides, name: value}

    return apply


def _prompt_sr(cell: Cell, value, request, values) -> None:
    """The first value, searched for in the prompt and the negative prompt, replaced by this one."""
    for key in ("prompt", "negative_prompt"):
        cell.fields[key] = cell.fields.get(key, getattr(request, key)).replace(values[0], value)


def _order(cell: Cell, value, request, values) -> None:
    """The listed tokens put back into the prompt in this value's order, where they stood (A1111's Prompt order)."""
    rest = cell.fields.get("prompt", request.prompt)
    pieces = []
    for token in sorted(value, key=rest.find):  # in the order they appear
        at = rest.find(token)
        pieces.append(rest[:at])
        rest = rest[at + len(token) :]
    cell.fields["prompt"] = "".join(piece + token for piece, token in zip(pieces, value, strict=True)) + rest


def _size(cell: Cell, value, request, values) -> None:
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(value))
    if not match:
        raise InvalidRequestError(f"{TITLE}: size {value!r} is not WIDTHxHEIGHT (e.g. 512x768)")
    cell.fields["width"], cell.fields["height"] = int(match[1]), int(match[2])


def _styles(cell: Cell, value, request, values) -> None:
    cell.fields["styles"] = [*request.styles, *[s.strip() for s in str(value).split(",") if s.strip()]]


def _samplers() -> list[str]:
    from sdui.core.samplers import SAMPLERS

    return [s.name for s in SAMPLERS]


def _schedules() -> list[str]:
    from sdui.core.schedules import SCHEDULERS

    return [s.label for s in SCHEDULERS]


def _upscalers() -> list[str]:
    from sdui.upscalers.upscaling import LATENT_UPSCALE_MODES, upscaler_names

    return [*LATENT_UPSCALE_MODES, *upscaler_names()]


T2I, I2I = ("txt2img",), ("img2img",)
# A1111 1.10's axis list, in its order (API clients name axes by index into the tab's list)
AXES: list[Axis] = [
    Axis("Nothing", str, lambda cell, value, request, values: None, show_label=False),
    Axis("Seed", int, _field("seed")),
    Axis("Var. seed", int, _field("subseed")),
    Axis("Var. strength", float, _field("subseed_strength")),
    Axis("Steps", int, _field("steps")),
    Axis("Hires steps", int, _field("hr_second_pass_steps"), T2I),
    Axis("CFG Scale", float, _field("cfg_scale")),
    Axis("Image CFG Scale", float, None, I2I),
    Axis("Prompt S/R", str, _prompt_sr, show_label=False),
    Axis("Prompt order", list, _order, show_label=False),
    Axis("Sampler", str, _field("sampler_name"), T2I, _samplers, show_label=False),
    Axis("Hires sampler", str, _field("hr_sampler_name"), T2I, _samplers),
    Axis("Sampler", str, _field("sampler_name"), I2I, _samplers, show_label=False),
    Axis("Checkpoint name", str, _checkpoint, show_label=False, named=True),
    Axis("Negative Guidance minimum sigma", float, _field("s_min_uncond")),
    Axis("Sigma Churn", float, _field("s_churn")),
    Axis("Sigma min", float, _field("s_tmin")),
    Axis("Sigma max", float, _field("s_tmax")),
    Axis("Sigma noise", float, _field("s_noise")),
    Axis("Schedule type", str, _field("scheduler"), choices=_schedules),
    Axis("Schedule min sigma", float, _setting("sigma_min")),
    Axis("Schedule max sigma", float, _setting("sigma_max")),
    Axis("Schedule rho", float, _setting("rho")),
    Axis("Skip Early CFG", float, _setting("skip_early_cond")),
    Axis("Beta schedule alpha", float, _setting("beta_dist_alpha")),
    Axis("Beta schedule beta", float, _setting("beta_dist_beta")),
    Axis("Eta", float, _field("eta")),
    Axis("Clip skip", int, _setting("CLIP_stop_at_last_layers")),
    Axis("Denoising", float, _field("denoising_strength")),
    Axis("Initial noise multiplier", float, _field("initial_noise_multiplier")),
    Axis("Extra noise", float, _setting("img2img_extra_noise")),
    Axis("Hires upscaler", str, _field("hr_upscaler"), T2I, _upscalers),
    Axis("Cond. Image Mask Weight", float, None, I2I),
    Axis("VAE", str, None),
    Axis("Styles", str, _styles),
    Axis("UniPC Order", int, _setting("uni_pc_order")),
    Axis("Face restore", str, None),
    Axis("Token merging ratio", float, _override("token_merging_ratio")),
    Axis("Token merging ratio high-res", float, _override("token_merging_ratio_hr")),
    Axis("Always discard next-to-last sigma", str, _setting("always_discard_next_to_last_sigma", True)),
    Axis("SGM noise multiplier", str, _setting("sgm_noise_multiplier", True)),
    Axis("Refiner checkpoint", str, None),
    Axis("Refiner switch at", float, None),
    Axis("RNG source", str, _setting("randn_source"), choices=lambda: ["GPU", "CPU", "NV"]),
    Axis("FP8 mode", str, None),
    Axis("Size", str, _size),
]


def axes_for(mode: str) -> list[Axis]:
    return [axis for axis in AXES if mode in axis.modes]


# ------------------------------------------------------------------------------------------------ arguments


@dataclass(frozen=True)
class AxisChoice:
    axis: Axis
    values: list


@dataclass(frozen=True)
class XyzArgs:
    x: AxisChoice
    y: AxisChoice
    z: AxisChoice
    draw_legend: bool = True
    include_lone_images: bool = False
    include_sub_grids: bool = False
    no_fixed_seeds: bool = False
    margin_size: int = 0

    @classmethod
    def from_script_args(cls, args: Sequence, mode: str) -> XyzArgs:
        """A1111's script_args: x type, x values, x values (dropdown), the same for y and z, draw legend, include
        lone images, include sub grids, keep -1 for seeds, vary seeds x/y/z, margin size, csv mode."""
        args = list(args) + [None] * (18 - len(args))
        available = axes_for(mode)
        choices = [
            _axis_choice(available, args[i], args[i + 1], _listed(args[i + 2], name), mode)
            for i, name in ((0, "X"), (3, "Y"), (6, "Z"))
        ]
        try:
            margin = int(float(args[16] or 0))
        except (TypeError, ValueError):
            margin = -1
        if not 0 <= margin <= 500:
            raise InvalidRequestError(f"{TITLE}: margin size must be 0 to 500, not {margin}")
        return cls(
            *choices,
            draw_legend=True if args[9] is None else bool(args[9]),
            include_lone_images=bool(args[10]),
            include_sub_grids=bool(args[11]),
            no_fixed_seeds=bool(args[12]),
            margin_size=margin,
        )


def _listed(value, name: str) -> list:
    """A dropdown's values as a client may send them: a list, one string, or nothing."""
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        return [value]
    raise InvalidRequestError(f"{TITLE}: the {name} values from the dropdown must be a list, not {value!r}")


def _axis_choice(available: list[Axis], kind, text, dropdown, mode: str) -> AxisChoice:
    if isinstance(kind, float) and kind.is_integer():
        kind = int(kind)
    if isinstance(kind, bool) or not isinstance(kind, (int, str, type(None))):
        raise InvalidRequestError(f"{TITLE}: an axis type is its index or its label, not {kind!r}")
    if kind is None or kind == "":
        axis = available[0]
    elif isinstance(kind, int) and not isinstance(kind, bool):
        if not 0 <= kind < len(available):
            raise InvalidRequestError(f"{TITLE}: axis type {kind} is out of range for {mode}: 0..{len(available) - 1}")
        axis = available[kind]
    else:
        axis = next((a for a in available if a.label.lower() == str(kind).strip().lower()), None)
        if axis is None:
            names = ", ".join(a.label for a in available)
            raise InvalidRequestError(f"{TITLE}: unknown axis type {kind!r} for {mode}; use one of: {names}")
    if axis.apply is None:
        raise InvalidRequestError(f"{TITLE}: the axis {axis.label!r} is not available in this program yet")
    if axis.label == "Nothing":
        return AxisChoice(axis, [None])
    if (axis.choices is not None or axis.named) and dropdown:
        values = [str(v) for v in dropdown]
    else:
        values = parse_values(axis, "" if text is None else str(text))
    if not values:
        raise InvalidRequestError(f"{TITLE}: the {axis.label} axis has no values")
    if axis.choices is not None:
        known = {c.lower(): c for c in axis.choices()}
        for value in values:
            if str(value).lower() not in known:
                raise InvalidRequestError(
                    f"{TITLE}: {value!r} is not a {axis.label} value; use one of: {', '.join(known.values())}"
                )
        values = [known.get(str(v).lower(), v) for v in values]
    return AxisChoice(axis, values)


_INT_RANGE = re.compile(r"\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\(([+-]\d+)\s*\))?\s*")
_INT_COUNT = re.compile(r"\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\[(\d+)\s*])\s*")
_FLOAT_RANGE = re.compile(
    r"\s*([+-]?\s*\d+(?:\.\d*)?)\s*-\s*([+-]?\s*\d+(?:\.\d*)?)(?:\s*\(([+-]\d+(?:\.\d*)?)\s*\))?\s*"
)
_FLOAT_COUNT = re.compile(r"\s*([+-]?\s*\d+(?:\.\d*)?)\s*-\s*([+-]?\s*\d+(?:\.\d*)?)(?:\s*\[(\d+(?:\.\d*)?)\s*])\s*")


def _csv(text: str) -> list[str]:
    rows = csv.reader(io.StringIO(text), skipinitialspace=True)
    return [item.strip() for row in rows for item in row if item.strip()]


def _spread(start: float, end: float, count: int) -> list[float]:
    if count < 2:
        return [start]
    return [start + (end - start) * i / (count - 1) for i in range(count)]


def parse_values(axis: Axis, text: str) -> list:
    """An axis's values from A1111's syntax."""
    items = _csv(text)
    if axis.kind is list:  # Prompt order: every permutation of the listed tokens
        if math.factorial(len(items)) > MAX_CELLS:
            raise InvalidRequestError(f"{TITLE}: {len(items)} tokens make more than {MAX_CELLS} orders; use fewer")
        return [list(p) for p in permutations(items)]
    if axis.kind not in (int, float):
        return items
    values: list = []
    for item in items:
        number = r"[+-]?\s*\d+" if axis.kind is int else r"[+-]?\s*\d+(?:\.\d*)?"
        if re.fullmatch(rf"\s*{number}\s*", item):
            values.append(axis.kind(item.replace(" ", "")))
            continue
        count = (_INT_COUNT if axis.kind is int else _FLOAT_COUNT).fullmatch(item)
        if count:
            start, end, n = float(count[1].replace(" ", "")), float(count[2].replace(" ", "")), int(float(count[3]))
            if n > MAX_CELLS:
                raise InvalidRequestError(f"{TITLE}: {item!r} asks for more than {MAX_CELLS} values")
            spread = _spread(start, end, n)
            values += [int(v) for v in spread] if axis.kind is int else spread  # A1111 truncates
            continue
        ranged = (_INT_RANGE if axis.kind is int else _FLOAT_RANGE).fullmatch(item)
        if ranged:
            start, end = axis.kind(ranged[1].replace(" ", "")), axis.kind(ranged[2].replace(" ", ""))
            step = axis.kind(ranged[3]) if ranged[3] else axis.kind(1)
            if step == 0 or (end - start) / step < 0:
                raise InvalidRequestError(f"{TITLE}: the range {item!r} never reaches its end")
            value = start
            while (value <= end + 1e-9) if step > 0 else (value >= end - 1e-9):
                values.append(round(value, 10) if axis.kind is float else value)
                value += step
                if len(values) > MAX_CELLS:
                    break
            continue
        kind = "whole number" if axis.kind is int else "number"
        raise InvalidRequestError(f"{TITLE}: {item!r} is neither a {kind} nor a range of them ({axis.label})")
    return values


# ------------------------------------------------------------------------------------------------------ running


def _label(axis: Axis, value) -> str:
    if axis.label == "Nothing":
        return ""
    shown = ", ".join(value) if isinstance(value, list) else str(value)
    return f"{axis.label}: {shown}" if axis.show_label else shown


def xyz_plot(request: GenerationRequest, model, *, args: XyzArgs, settings, models=None, **process_kwargs) -> Processed:
    xs, ys, zs = args.x, args.y, args.z
    cells = len(xs.values) * len(ys.values) * len(zs.values)
    if cells > MAX_CELLS:
        raise InvalidRequestError(f"{TITLE}: {cells} images is more than {MAX_CELLS}; use fewer values")
    for choice in (xs, ys, zs):
        if choice.axis.label == "Checkpoint name":
            if models is None:
                raise InvalidRequestError(f"{TITLE}: the Checkpoint name axis needs the program's model list")
            for name in choice.values:
                models.select(name)  # an unknown name is refused (with the known ones) before any work
    for choice in (xs, ys, zs):
        search = choice.values[0] if choice.axis.label == "Prompt S/R" else None
        if search is not None and search not in request.prompt and search not in request.negative_prompt:
            raise InvalidRequestError(f"{TITLE}: Prompt S/R did not find {search!r} in the prompt or negative prompt")
    base = request
    if not args.no_fixed_seeds:
        fixed = {}
        for key in ("seed", "subseed"):
            if getattr(base, key) == -1:
                fixed[key] = random.randrange(4294967294)
        base = dataclasses.replace(base, **fixed)
    results: list[list[list[Processed | None]]] = [[[None] * len(xs.values) for _ in ys.values] for _ in zs.values]
    interrupted = False
    params = {}
    for choice, name in ((xs, "X"), (ys, "Y"), (zs, "Z")):
        if choice.axis.label != "Nothing":
            params[f"{name} Type"] = choice.axis.label
            params[f"{name} Values"] = ", ".join(_label_value(v) for v in choice.values)
    for iz, iy, ix in _cell_order(args):
        if interrupted:
            break
        cell = Cell()
        for choice, index in ((xs, ix), (ys, iy), (zs, iz)):
            choice.axis.apply(cell, choice.values[index], base, choice.values)
        cell_request = dataclasses.replace(
            base,
            **cell.fields,
            extra_generation_params={**base.extra_generation_params, **params},
            do_not_save_grid=True,
        )
        cell_model = models.get(cell.checkpoint) if cell.checkpoint else model
        processed = process(cell_request, cell_model, settings=settings.replace(cell.settings), **process_kwargs)
        results[iz][iy][ix] = processed
        interrupted = processed.interrupted
    processed = _grid(base, args, results, interrupted)
    saved = [
        save_script_grid(
            grid,
            dataclasses.replace(processed, request=request),
            model,
            data_dir=process_kwargs.get("data_dir"),
            hooks=process_kwargs.get("hooks", ()),
            basename="xyz_grid",
            prompt=request.prompt,
        )
        for grid in processed.images[: processed.index_of_first_image]
    ]
    return dataclasses.replace(processed, saved_paths=[*processed.saved_paths, *filter(None, saved)])


def _cell_order(args: XyzArgs) -> list[tuple[int, int, int]]:
    """(z, y, x) indexes in the order the cells are made: row by row, except that a Checkpoint name axis is the
    outermost loop, so each checkpoint is loaded once (A1111 does the same)."""
    order = [
        (iz, iy, ix)
        for iz in range(len(args.z.values))
        for iy in range(len(args.y.values))
        for ix in range(len(args.x.values))
    ]
    for position, choice in ((2, args.x), (1, args.y), (0, args.z)):
        if choice.axis.label == "Checkpoint name":
            order.sort(key=lambda cell, position=position: cell[position])  # stable: the rest keeps its order
    return order


def _label_value(value) -> str:
    return ", ".join(value) if isinstance(value, list) else str(value)


def _grid(request, args: XyzArgs, results, interrupted: bool) -> Processed:
    done = [p for plane in results for row in plane for p in row if p is not None]
    if not done:
        raise InvalidRequestError(f"{TITLE}: no image was made")
    first = done[0]
    size = first.images[first.index_of_first_image].size

    def image_of(p: Processed | None) -> Image.Image:
        return (
            p.images[p.index_of_first_image]
            if p is not None and p.images[p.index_of_first_image :]
            else Image.new("RGB", size)
        )

    xs, ys, zs = args.x, args.y, args.z
    sub_grids = []
    for plane in results:
        cells = [image_of(p) for row in plane for p in row]
        grid = _plain_grid(cells, len(xs.values), size, args.margin_size)
        if args.draw_legend:
            grid = annotated_grid(
                grid,
                size[0],
                size[1],
                [_label(xs.axis, v) for v in xs.values],
                [_label(ys.axis, v) for v in ys.values],
                margin=args.margin_size,
            )
        sub_grids.append(grid)
    if len(sub_grids) > 1:
        widest = max(g.width for g in sub_grids)
        tallest = max(g.height for g in sub_grids)
        top = _plain_grid(sub_grids, len(sub_grids), (widest, tallest), args.margin_size)
        if args.draw_legend:
            top = annotated_grid(
                top, widest, tallest, [_label(zs.axis, v) for v in zs.values], [""], margin=args.margin_size
            )
        grids = [top, *(sub_grids if args.include_sub_grids else [])]
    else:
        grids = sub_grids
    lone = [image_of(p) for p in done] if args.include_lone_images else []
    cell_texts = [p.infotexts[p.index_of_first_image] for p in done]
    infotexts = [cell_texts[0]] * len(grids) + (cell_texts if args.include_lone_images else [])
    images = []
    for image, text in zip([*grids, *lone], infotexts, strict=True):
        image.info["parameters"] = text
        images.append(image)
    return dataclasses.replace(
        first,
        images=images,
        infotexts=infotexts,
        index_of_first_image=len(grids),
        all_prompts=[p for r in done for p in r.all_prompts],
        all_negative_prompts=[p for r in done for p in r.all_negative_prompts],
        all_seeds=[s for r in done for s in r.all_seeds],
        all_subseeds=[s for r in done for s in r.all_subseeds],
        saved_paths=[p for r in done for p in r.saved_paths],
        interrupted=interrupted,
    )


def _plain_grid(images: list[Image.Image], columns: int, size: tuple[int, int], margin: int) -> Image.Image:
    rows = (len(images) + columns - 1) // columns
    w, h = size
    grid = Image.new("RGB", (columns * w + (columns - 1) * margin, rows * h + (rows - 1) * margin), "white")
    for i, image in enumerate(images):
        grid.paste(image, ((i % columns) * (w + margin), (i // columns) * (h + margin)))
    return grid
