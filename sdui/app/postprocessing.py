"""The Extras job (A1111's postprocessing): upscale each image of a request through the job queue, keep what the
source carried (its generation parameters), add the "postprocessing" text, and save where the user asked.

Used by the Extras tab (single image, uploaded files, a folder) and by /sdapi/v1/extra-single-image and
extra-batch-images (which return the images and save nothing, as in A1111).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from sdui.app.context import AppContext
from sdui.core.outputs import save_options
from sdui.errors import InvalidRequestError
from sdui.imaging.saving import plan_save, write_image
from sdui.upscalers import extras
from sdui.upscalers.extras import ExtrasOptions


@dataclass
class Source:
    image: Image.Image
    name: str = ""  # the file's name, kept for "batch from folder" outputs


@dataclass
class Output:
    image: Image.Image  # carries the source's text entries and "postprocessing"
    text: str  # "Postprocess upscale by: 2, Postprocess upscaler: ..." ("" when nothing was done)
    path: Path | None = None  # where it was saved


def run_extras(
    ctx: AppContext,
    sources: list[Source],
    options: ExtrasOptions,
    *,
    save_to: Path | None = None,
    keep_names: bool = False,
) -> list[Output]:
    """Upscale `sources` in one job of the queue (so it never competes with a generation for the device);
    save into `save_to` when given, under the source's name with `keep_names`."""
    if not sources:
        raise InvalidRequestError("No image to process: choose an image, files or a folder with images.")
    if len(sources) > ctx.options.max_batch_count:
        raise InvalidRequestError(
            f"{len(sources)} images are more than the configured limit of {ctx.options.max_batch_count} "
            "(setting max_batch_count); process fewer at a time."
        )
    max_pixels = int(ctx.options.max_image_pixels)
    for source in sources:  # every image is checked before any work starts
        extras.check(options, source.image.size, max_pixels)

    def work(job) -> list[Output]:
        job.add_batches(len(sources), 1)
        outputs = []
        for source in sources:
            if job.interrupted():
                break
            outputs.append(_process(ctx, source, options, max_pixels, save_to, keep_names))
            job.step_done(1, 1)
            job.batch_done()
        return outputs

    return ctx.jobs.run(work, name="extras")


def _process(ctx, source: Source, options, max_pixels: int, save_to: Path | None, keep_names: bool) -> Output:
    # 1. upscale
    result, info = extras.run(source.image, options, max_pixels)
    text = extras.info_text(info)
    # 2. what the source carried stays (its parameters, for PNG Info and send-to), the extras text is added
    kept = {k: v for k, v in source.image.info.items() if isinstance(k, str) and isinstance(v, str)}
    if text:
        kept["postprocessing"] = text
    result.info.update(kept)
    # 3. save (A1111 writes the text under "postprocessing" and again under "extras")
    path = None
    if save_to is not None:
        settings = ctx.options.snapshot()
        opts = dataclasses.replace(save_options(settings), save_to_dirs=False)
        plan = plan_save(result, save_to, opts, seed=None)
        if keep_names and source.name:
            plan = dataclasses.replace(plan, decoration=Path(source.name).stem, add_number=False, replace_existing=True)
        chunks = {**kept, "extras": text} if text else kept
        path = write_image(plan, result, kept.get("parameters"), opts, chunks=chunks)
    return Output(result, text, path)


def extras_output_dir(ctx: AppContext) -> Path:
    """A1111's outdir_extras_samples (or outdir_samples when set), under the data folder."""
    settings = ctx.options
    return ctx.paths.resolve(settings.outdir_samples or settings.outdir_extras_samples)
