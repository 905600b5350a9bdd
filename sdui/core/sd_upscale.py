"""A1111's "SD upscale" script: enlarge the init image, then img2img it tile by tile at the request's size, and
blend the tiles back into one image.

It runs in place of process() (the same arguments, plus its own) and calls process() for each batch of tiles, so
hooks and extensions see every tile's run, as they do in A1111. The seeds follow A1111 so its results can be
reproduced: pass n (of n_iter) starts at seed + n, and each batch of tiles starts one above the previous batch's
first seed.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from sdui.core import rng
from sdui.core.events import NoEvents, ProgressEvents
from sdui.core.hooks import HookSet, ProcessingHooks
from sdui.core.outputs import OutputWriter
from sdui.core.processed import Processed
from sdui.core.processing import process
from sdui.core.run import Run
from sdui.devices import DevicePolicy
from sdui.errors import InvalidRequestError
from sdui.imaging.image_ops import flatten
from sdui.imaging.tiles import combine_tiles, split_tiles, tile_count
from sdui.models.sd_model import SDModel
from sdui.request import Img2ImgRequest
from sdui.settings.snapshot import Settings
from sdui.upscalers.upscaling import canonical_upscaler, upscale_by, upscaler_names

TITLE = "SD upscale"
MAX_OVERLAP = 256  # A1111's slider maximum
MAX_SCALE = 16.0


@dataclass(frozen=True)
class SdUpscaleArgs:
    overlap: int = 64
    upscaler: str = "None"
    scale: float = 2.0

    @classmethod
    def from_script_args(cls, args: Sequence) -> SdUpscaleArgs:
        """A1111's script_args: [info text (ignored), tile overlap, upscaler (its name, or its index in
        /sdapi/v1/upscalers), scale factor]; missing values take the script's defaults."""
        args = list(args)[1:4]
        overlap, upscaler, scale = args + [None] * (3 - len(args))
        names = upscaler_names()
        if upscaler is None:
            name = cls.upscaler
        elif isinstance(upscaler, int) and not isinstance(upscaler, bool):
            if not 0 <= upscaler < len(names):
                raise InvalidRequestError(
                    f"SD upscale: upscaler index {upscaler} is out of range; use 0..{len(names) - 1} "
                    f"({', '.join(names)})"
                )
            name = names[upscaler]
        else:
            name = canonical_upscaler(str(upscaler))
            if name is None:
                raise InvalidRequestError(f"SD upscale: unknown upscaler {upscaler!r}; use one of: {', '.join(names)}")
        try:
            overlap = cls.overlap if overlap is None else int(overlap)
            scale = cls.scale if scale is None else float(scale)
        except (TypeError, ValueError):
            raise InvalidRequestError(
                f"SD upscale: the tile overlap must be a whole number and the scale factor a number; got {overlap!r} "
                f"and {scale!r}"
            ) from None
        if not 0 <= overlap <= MAX_OVERLAP:
            raise InvalidRequestError(f"SD upscale: the tile overlap must be 0 to {MAX_OVERLAP}, not {overlap}")
        if not (math.isfinite(scale) and 1.0 <= scale <= MAX_SCALE):
            raise InvalidRequestError(f"SD upscale: the scale factor must be 1 to {MAX_SCALE:g}, not {scale}")
        return cls(overlap=overlap, upscaler=name, scale=scale)


class _Describe(ProcessingHooks):
    """Adds the script's settings to every tile's infotext, as A1111 does."""

    def __init__(self, args: SdUpscaleArgs):
        self.params = {"SD upscale overlap": args.overlap, "SD upscale upscaler": args.upscaler}

    def process(self, run: Run) -> None:
        run.extra_generation_params.update(self.params)


def _check(request: Img2ImgRequest, args: SdUpscaleArgs, settings: Settings) -> tuple[int, int]:
    """The size of the enlarged image, once everything is known to be within bounds (nothing is computed yet)."""
    if not request.init_images:
        raise InvalidRequestError("SD upscale needs an init image: send one in init_images")
    if request.mask is not None:
        raise InvalidRequestError("SD upscale works on the whole image: send no mask")
    image = request.init_images[0]
    width, height = image.size
    if args.upscaler != "None":
        width, height = int(width * args.scale // 8 * 8), int(height * args.scale // 8 * 8)
    if width * height > int(settings.max_image_pixels):
        raise InvalidRequestError(
            f"SD upscale: {image.width}x{image.height} scaled by {args.scale:g} is {width}x{height}, larger than the "
            f"configured limit of {settings.max_image_pixels} pixels (setting max_image_pixels); use a smaller scale"
        )
    if args.overlap >= min(request.width, request.height):
        raise InvalidRequestError(
            f"SD upscale: the tile overlap ({args.overlap}) must be smaller than the tile "
            f"({request.width}x{request.height}, the request's width and height)"
        )
    columns, rows = tile_count(width, height, request.width, request.height, args.overlap)
    runs = math.ceil(columns * rows / request.batch_size) * request.n_iter
    if runs > int(settings.max_batch_count):
        raise InvalidRequestError(
            f"SD upscale: {columns}x{rows} tiles of {request.width}x{request.height} in batches of "
            f"{request.batch_size}, {request.n_iter} time(s), is {runs} img2img runs, more than the limit of "
            f"{settings.max_batch_count} (setting max_batch_count); use larger tiles, a larger batch size or a "
            "smaller overlap"
        )
    return width, height


def sd_upscale(
    request: Img2ImgRequest,
    model: SDModel,
    *,
    args: SdUpscaleArgs,
    policy: DevicePolicy,
    settings: Settings | None = None,
    hooks: Sequence[ProcessingHooks] = (),
    events: ProgressEvents | None = None,
    data_dir: Path | None = None,
    models=None,  # the model store (scripts may switch models); not needed here
    preview_dirs: Sequence[Path] = (),
) -> Processed:
    settings = settings if settings is not None else Settings.defaults()
    events = events if events is not None else NoEvents()
    _check(request, args, settings)
    seed, subseed = rng.fix_seed(request.seed), rng.fix_seed(request.subseed)  # once, for every tile

    # 1. the init image, flattened and enlarged, cut into tiles of the request's size
    enlarged = upscale_by(flatten(request.init_images[0], settings.img2img_background_color), args.upscaler, args.scale)
    grid = split_tiles(enlarged, request.width, request.height, args.overlap)
    originals = [tile.image for tile in grid.tiles()]
    batch_size = request.batch_size
    batches = [originals[i : i + batch_size] for i in range(0, len(originals), batch_size)]
    tile_hooks = [*hooks, _Describe(args)]

    # 2. each pass: img2img every batch of tiles (nothing saved), then blend the results into one image
    results, infotexts, seeds, notes = [], [], [], []
    last: Processed | None = None
    interrupted = False
    for n in range(request.n_iter):
        batch_seed = seed + n
        done: list[Image.Image] = []
        for tiles in batches:
            if events.interrupted():
                interrupted = True
                break
            tile_request = dataclasses.replace(
                request,
                init_images=list(tiles),
                batch_size=len(tiles),
                n_iter=1,
                seed=batch_seed,
                subseed=subseed,
                do_not_save_samples=True,
                do_not_save_grid=True,
            )
            last = process(
                tile_request,
                model,
                policy=policy,
                settings=settings,
                hooks=tile_hooks,
                events=events,
                preview_dirs=preview_dirs,
            )
            if len(done) == 0:
                infotexts.append(last.info)
            done += last.images[last.index_of_first_image :]
            notes += [note for note in last.notes if note not in notes]
            batch_seed = last.seed + 1
        if not done:
            break
        for tile, image in zip(grid.tiles(), done + originals[len(done) :], strict=True):
            tile.image = image  # tiles an interrupt left unprocessed keep the enlarged image's pixels
        results.append(combine_tiles(grid))
        seeds.append(seed + n)
        if interrupted:
            break

    # 3. save and describe each pass's image (each with the infotext of its first tile)
    run = Run(
        request=request,
        settings=settings,
        model=model,
        job_timestamp=datetime.datetime.now().strftime("%Y%m%d%H%M%S"),
        all_seeds=seeds,
        all_prompts=[request.prompt] * len(seeds),
        all_negative_prompts=[request.negative_prompt] * len(seeds),
    )
    writer = None
    if data_dir is not None and not request.do_not_save_samples and settings.samples_save:
        writer = OutputWriter(run, HookSet(hooks), data_dir)
    saved = []
    for image, text, image_seed in zip(results, infotexts, seeds, strict=False):
        if settings.enable_pnginfo:
            image.info["parameters"] = text
        if writer is not None:
            saved.append(writer.save(image, infotext=text, seed=image_seed, prompt=request.prompt))
    return Processed(
        images=results,
        request=dataclasses.replace(request, seed=seed, subseed=subseed),
        settings=settings,
        infotexts=infotexts[: len(results)],
        all_prompts=run.all_prompts,
        all_negative_prompts=run.all_negative_prompts,
        all_seeds=seeds,
        all_subseeds=[subseed] * len(seeds),
        sd_model_name=last.sd_model_name if last else None,
        sd_model_hash=last.sd_model_hash if last else None,
        job_timestamp=run.job_timestamp,
        extra_generation_params=dict(last.extra_generation_params) if last else {},
        saved_paths=[path for path in saved if path is not None],
        interrupted=interrupted,
        notes=notes + (writer.errors if writer is not None else []),
    )
