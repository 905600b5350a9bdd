"""A1111's "Loopback" script (img2img): each result becomes the next loop's init image, the denoising strength
moving from the request's to a final one along a curve; one image per loop, seeds counting up from the request's.
With batch count N the loops start over from the original image N times and the last image of each run is kept.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from sdui.core.outputs import save_script_grid
from sdui.core.processed import Processed
from sdui.core.processing import process
from sdui.errors import InvalidRequestError
from sdui.imaging.grids import image_grid
from sdui.request import GenerationRequest, Img2ImgRequest

TITLE = "Loopback"
MAX_LOOPS = 32  # A1111's slider maximum
CURVES = ("Aggressive", "Linear", "Lazy")
ORIGINAL = 1  # inpainting fill "original": later loops keep what the previous one made under the mask


@dataclass(frozen=True)
class LoopbackArgs:
    loops: int = 4
    final_denoising_strength: float = 0.5
    curve: str = "Linear"

    @classmethod
    def from_script_args(cls, args: Sequence) -> LoopbackArgs:
        """A1111's script_args: [loops, final denoising strength, denoising curve, append interrogated prompt]."""
        values = list(args) + [None] * (4 - len(args))
        loops, final, curve, interrogate = values[:4]
        try:
            loops = int(4 if loops is None else loops)
            final = float(0.5 if final is None else final)
        except (TypeError, ValueError) as e:
            raise InvalidRequestError(f"{TITLE}: loops must be a whole number and the strength a number") from e
        if not 1 <= loops <= MAX_LOOPS:
            raise InvalidRequestError(f"{TITLE}: loops must be between 1 and {MAX_LOOPS}, not {loops}")
        if not 0 <= final <= 1:
            raise InvalidRequestError(f"{TITLE}: the final denoising strength must be between 0 and 1, not {final}")
        curve = str(curve or "Linear")
        if curve not in CURVES:
            raise InvalidRequestError(f"{TITLE}: the denoising curve must be one of {', '.join(CURVES)}, not {curve!r}")
        if interrogate not in (None, "None", ""):
            raise InvalidRequestError(
                f"{TITLE}: appending an interrogated prompt ({interrogate}) needs an interrogation model, which this "
                "program does not have; choose None"
            )
        return cls(loops, final, curve)


def denoising_strength(loop: int, loops: int, initial: float, final: float, curve: str) -> float:
    """The strength for loop `loop` (0-based) of `loops` (A1111's calculate_denoising_strength)."""
    if loops == 1:
        return initial
    progress = loop / (loops - 1)
    if curve == "Aggressive":
        shaped = math.sin(progress * math.pi * 0.5)
    elif curve == "Lazy":
        shaped = 1 - math.cos(progress * math.pi * 0.5)
    else:
        shaped = progress
    return initial + (final - initial) * shaped


def loopback(
    request: GenerationRequest, model, *, args: LoopbackArgs, data_dir=None, hooks=(), models=None, **kwargs
) -> Processed:
    if not isinstance(request, Img2ImgRequest):
        raise InvalidRequestError(f"{TITLE} works in img2img: it needs an init image")
    seed = request.seed if request.seed != -1 else random.randrange(4294967294)
    initial = request.denoising_strength
    extra = {
        **request.extra_generation_params,
        "Final denoising strength": args.final_denoising_strength,
        "Denoising curve": args.curve,
    }
    history, first, interrupted, saved = [], None, False, []
    for _ in range(request.n_iter):
        # each run starts over from the original image and strength; the seeds go on counting
        job = dataclasses.replace(request, batch_size=1, n_iter=1, do_not_save_grid=True, extra_generation_params=extra)
        last = None
        for i in range(args.loops):
            job = dataclasses.replace(job, seed=seed)
            processed = process(job, model, data_dir=data_dir, hooks=hooks, **kwargs)
            if processed.interrupted:
                interrupted = True
                break
            first = first or processed
            saved += processed.saved_paths
            seed = processed.seed + 1
            last = processed.images[processed.index_of_first_image]
            strength = denoising_strength(i + 1, args.loops, initial, args.final_denoising_strength, args.curve)
            job = dataclasses.replace(job, init_images=[last], denoising_strength=strength, inpainting_fill=ORIGINAL)
            if request.n_iter == 1:
                history.append(last)
        if request.n_iter > 1 and last is not None and not interrupted:
            history.append(last)
        if interrupted:
            break
    if first is None:
        raise InvalidRequestError(f"{TITLE}: interrupted before the first loop finished")

    # A1111 gives every image (and the grid) the first loop's parameters
    info = first.infotexts[first.index_of_first_image]
    images = list(history)
    if len(history) > 1:
        grid = image_grid(history, rows=1)
        grid.info["parameters"] = info
        grid_result = dataclasses.replace(first, request=request)
        path = save_script_grid(
            grid, grid_result, model, data_dir=data_dir, hooks=hooks, basename="grid", prompt=request.prompt
        )
        saved += [path] if path else []
        if first.settings.return_grid:
            images.insert(0, grid)
    return dataclasses.replace(
        first,
        images=images,
        infotexts=[info] * len(images),
        index_of_first_image=1 if len(images) > len(history) else 0,
        interrupted=interrupted,
        saved_paths=[*saved],
    )
