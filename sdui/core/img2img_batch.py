"""img2img/inpaint "Batch" (A1111's process_batch): the same request run on every image of an input folder, with the
mask of the same name from a mask folder, saved into an output folder under the input's name; optionally each
image's own parameters (its PNG info) fill chosen fields of its request.

The folders were checked and the images read by the caller (sdui/app); this runs them one after another.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from sdui.core.infotext_fields import request_fields
from sdui.core.processed import Processed
from sdui.core.processing import process
from sdui.errors import InvalidRequestError
from sdui.imaging.pnginfo import read_info_from_image
from sdui.infotext.parse import parse_infotext
from sdui.request import Img2ImgRequest
from sdui.settings.snapshot import Settings

# A1111's "PNG info" choices: infotext key -> request field; the prompts are appended to the request's own
PNG_INFO_FIELDS = {
    "Prompt": "prompt",
    "Negative prompt": "negative_prompt",
    "Seed": "seed",
    "CFG scale": "cfg_scale",
    "Sampler": "sampler_name",
    "Steps": "steps",
}
APPENDED = ("prompt", "negative_prompt")


@dataclass
class BatchItem:
    image: Image.Image
    name: str  # the input file's name: the outputs are named after it
    mask: Image.Image | None = None


@dataclass(frozen=True)
class BatchArgs:
    items: list[BatchItem]
    output_dir: Path | None = None  # None: the usual img2img folder
    png_info_fields: tuple[str, ...] = ()  # PNG_INFO_FIELDS keys to take from each image's parameters


def request_for(request: Img2ImgRequest, item: BatchItem, fields: tuple[str, ...]) -> Img2ImgRequest:
    """The request for one input: its image and mask, and the chosen fields of its own parameters."""
    changes: dict = {"init_images": [item.image]}
    if item.mask is not None:
        changes["mask"] = item.mask
    text, _ = read_info_from_image(item.image)
    if fields and text:
        parsed = request_fields(parse_infotext(text), mode="img2img")
        for key in fields:
            name = PNG_INFO_FIELDS[key]
            if name not in parsed:
                continue
            own = getattr(request, name)
            changes[name] = f"{own} {parsed[name]}".strip() if name in APPENDED and own else parsed[name]
    return dataclasses.replace(request, **changes)


def batch_settings(settings: Settings, args: BatchArgs, item: BatchItem) -> Settings:
    """A1111's overrides for an output folder: flat, named after the input, a number added rather than a file
    replaced (several images of one input: stem.png, stem-1.png, ... or with numbering 00001-stem.png, ...)."""
    if args.output_dir is None:
        return settings
    stem = Path(item.name).stem.replace("[", "(").replace("]", ")")  # not read as a filename pattern tag
    return Settings(
        {
            **settings,
            "outdir_samples": str(args.output_dir),
            "save_to_dirs": False,
            "save_images_replace_action": "Add number suffix",
            "samples_filename_pattern": stem,
        }
    )


def img2img_batch(
    request: Img2ImgRequest,
    model,
    *,
    args: BatchArgs,
    settings: Settings | None = None,
    events=None,
    models=None,  # what a script may switch models with: not needed here
    **kwargs,
) -> Processed:
    if not args.items:
        raise InvalidRequestError("Batch: the input folder holds no images.")
    settings = settings if settings is not None else Settings.defaults()
    results: list[Processed] = []
    for item in args.items:
        if events is not None and events.interrupted():
            break
        job = request_for(request, item, args.png_info_fields)
        job = dataclasses.replace(job, do_not_save_grid=True)  # A1111 saves no grids in a batch
        processed = process(job, model, settings=batch_settings(settings, args, item), events=events, **kwargs)
        results.append(processed)
        if processed.interrupted:
            break
    first = results[0]
    return dataclasses.replace(
        first,
        request=request,
        images=[im for r in results for im in r.images[r.index_of_first_image :]],
        infotexts=[t for r in results for t in r.infotexts[r.index_of_first_image :]],
        all_prompts=[p for r in results for p in r.all_prompts],
        all_negative_prompts=[p for r in results for p in r.all_negative_prompts],
        all_seeds=[s for r in results for s in r.all_seeds],
        all_subseeds=[s for r in results for s in r.all_subseeds],
        index_of_first_image=0,
        saved_paths=[p for r in results for p in r.saved_paths],
        interrupted=any(r.interrupted for r in results),
        notes=[n for r in results for n in r.notes],
    )
