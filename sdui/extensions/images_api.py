"""A1111's `modules.images` for extensions: save_image with A1111's signature, naming and return value (through the
same atomic writer, settings and before/after callbacks as a generation's own saves), image_grid, resize_image,
read_info_from_image and the file name helpers."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from sdui.core.outputs import filename_tags, save_options
from sdui.extensions import registry
from sdui.imaging import grids, image_ops
from sdui.imaging.filenames import next_sequence_number, sanitize_filename_part
from sdui.imaging.pnginfo import read_info_from_image
from sdui.imaging.saving import plan_save, save_text_beside, write_image

LANCZOS = Image.Resampling.LANCZOS
NEAREST = Image.Resampling.NEAREST


@dataclass
class ImageSaveParams:
    """What before_image_saved / image_saved callbacks get (A1111's names); they may change image and pnginfo."""

    image: Image.Image
    p: Any
    filename: str
    pnginfo: dict = field(default_factory=dict)


def _settings():
    app = registry.REGISTRY.app
    if app is None:
        raise RuntimeError("modules.images.save_image is available once the app has started")
    return app.options.snapshot()


def save_image(
    image: Image.Image,
    path: str,
    basename: str,
    seed=None,
    prompt: str | None = None,
    extension: str = "png",
    info: str | None = None,
    short_filename: bool = False,
    no_prompt: bool = False,
    grid: bool = False,
    pnginfo_section_name: str = "parameters",
    p=None,
    existing_info: dict | None = None,
    forced_filename: str | None = None,
    suffix: str = "",
    save_to_dirs: bool | None = None,
) -> tuple[str, str | None]:
    """Save `image` under `path` as A1111 names it; returns (the image's path, the .txt's path or None)."""
    settings = _settings()
    options = save_options(settings, grid=grid)
    if save_to_dirs is None:
        save_to_dirs = settings.grid_save_to_dirs if grid else settings.save_to_dirs and not no_prompt
    options = dataclasses.replace(options, fmt=extension.lstrip(".") or options.fmt, save_to_dirs=bool(save_to_dirs))
    run = getattr(p, "_run", None)
    plan = plan_save(
        image,
        path,
        options,
        seed=None if short_filename else seed,
        basename=basename,
        prompt=prompt,
        tags=filename_tags(run) if run is not None else None,
        suffix=suffix,
    )
    if forced_filename is not None:
        plan = dataclasses.replace(plan, decoration=forced_filename, basename="", add_number=False)

    pnginfo = dict(existing_info or {})
    if info is not None:
        pnginfo[pnginfo_section_name] = info
    params = ImageSaveParams(image, p, str(plan.predicted()), pnginfo)
    registry.call("before_image_saved", params)
    keep = settings.enable_pnginfo
    written = write_image(
        plan, params.image, params.pnginfo.get("parameters") if keep else None, options, chunks=params.pnginfo if keep
        else {}
    )
    txt = None
    if settings.save_txt and info is not None:
        txt = str(save_text_beside(written, info))
    params.filename = str(written)
    registry.call("image_saved", params)
    return str(written), txt


def image_grid(imgs: list[Image.Image], batch_size: int = 1, rows: int | None = None) -> Image.Image:
    """A1111's image_grid: rows None = the n_rows setting (-1: about square, 0: batch_size); on_image_grid
    callbacks may change the images and the shape."""
    from sdui.extensions.bridge import ImageGridLoopParams

    app = registry.REGISTRY.app
    if rows is None:
        rows = int(app.options.n_rows) if app is not None else -1
    prevent = bool(app.options.grid_prevent_empty_spots) if app is not None else False
    rows, cols = grids.grid_shape(len(imgs), rows, batch_size=batch_size, prevent_empty_spots=prevent)
    loop = ImageGridLoopParams(list(imgs), cols, rows)
    registry.call("image_grid", loop)
    background = app.options.grid_background_color if app is not None else "#ffffff"
    return grids.draw_grid(loop.imgs, loop.rows, loop.cols, background=background)


def resize_image(resize_mode: int, im: Image.Image, width: int, height: int, upscaler_name: str | None = None):
    """A1111's resize_image (0 just resize, 1 crop and resize, 2 resize and fill); upscalers by name are the
    Extras tab's, which plain resizing here does not need: Lanczos is used."""
    return image_ops.resize_image(int(resize_mode), im, int(width), int(height))


def get_next_sequence_number(path: str | os.PathLike, basename: str) -> int:
    return next_sequence_number(Path(path), basename)


__all__ = [
    "LANCZOS",
    "NEAREST",
    "ImageSaveParams",
    "get_next_sequence_number",
    "image_grid",
    "read_info_from_image",
    "resize_image",
    "sanitize_filename_part",
    "save_image",
]
