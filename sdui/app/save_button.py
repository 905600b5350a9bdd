"""The "Save" and "Zip" buttons under a gallery (A1111's save_files): the shown images, kept on the server, are
written into the outdir_save folder (log/images) with their parameters, a row per image goes into its log.csv, and
"Zip" packs what was saved into one archive to download. The browser names no file: it only says which image."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import threading
import zipfile
from pathlib import Path

from PIL import Image

from sdui.app.context import AppContext
from sdui.atomic import write_file_atomic
from sdui.core.outputs import save_options
from sdui.imaging.saving import save_image
from sdui.infotext.parse import parse_infotext

LOG_FIELDS = [  # A1111's log.csv columns
    "prompt",
    "seed",
    "width",
    "height",
    "sampler",
    "cfgs",
    "steps",
    "filename",
    "negative_prompt",
    "sd_model_name",
]
_log_lock = threading.Lock()


def save_folder(ctx: AppContext) -> Path:
    return ctx.paths.resolve(ctx.options.outdir_save)


def save_results(
    ctx: AppContext, images: list[Image.Image], infotexts: list[str], selected: int | None, make_zip: bool = False
) -> list[Path]:
    """Save the selected image (or every image when none is selected, or when save_selected_only is off); with
    `make_zip` the zip of them comes last. Returns the files written."""
    if not images:
        return []
    if selected is not None and 0 <= selected < len(images) and ctx.options.save_selected_only:
        chosen = [selected]
    else:
        chosen = list(range(len(images)))
    folder = save_folder(ctx)
    settings = ctx.options.snapshot()
    options = dataclasses.replace(save_options(settings), save_to_dirs=bool(settings.use_save_to_dirs_for_ui))
    saved, rows = [], []
    for index in chosen:
        image = images[index]
        text = infotexts[index] if index < len(infotexts) else image.info.get("parameters", "")
        params = parse_infotext(text, defaults=False) if text else {}
        path = save_image(
            image,
            folder,
            seed=params.get("Seed"),
            infotext=text or None,
            options=options,
            prompt=params.get("Prompt"),
        )
        saved.append(path)
        rows.append(_log_row(params, image, path, folder))
    if settings.save_write_log_csv:
        _append_log(folder / "log.csv", rows)
    if make_zip:
        saved.append(_zip(folder, saved))
    return saved


def _log_row(params: dict, image: Image.Image, path: Path, folder: Path) -> dict:
    return {
        "prompt": params.get("Prompt", ""),
        "seed": params.get("Seed", ""),
        "width": image.width,
        "height": image.height,
        "sampler": params.get("Sampler", ""),
        "cfgs": params.get("CFG scale", ""),
        "steps": params.get("Steps", ""),
        "filename": str(path.relative_to(folder)),
        "negative_prompt": params.get("Negative prompt", ""),
        "sd_model_name": params.get("Model", ""),
    }


def _append_log(path: Path, rows: list[dict]) -> None:
    """One line per saved image; the header when the file is new. A row is appended whole (one write)."""
    with _log_lock:
        new = not path.exists() or path.stat().st_size == 0
        with open(path, "a", encoding="utf8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
            if new:
                writer.writeheader()
            writer.writerows(rows)


def _zip(folder: Path, files: list[Path]) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    target = folder / f"images-{stamp}.zip"

    def write(temp: Path) -> None:
        with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
            for path in files:
                archive.write(path, arcname=path.name)

    return write_file_atomic(target, write)
