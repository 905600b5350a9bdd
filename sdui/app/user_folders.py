"""Folders a user types in the UI (img2img and extras batches): where they may point, and the images in them."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from sdui.app.context import AppContext
from sdui.errors import InvalidRequestError
from sdui.imaging.encoding import open_image_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".avif")


def user_folder(ctx: AppContext, text: str, what: str) -> Path:
    """A folder the user typed for a batch (input or output). Refused with --hide-ui-dir-config (A1111); when the
    server is reachable from other machines without --enable-insecure-extension-access, only folders inside the data
    folder are allowed (a visitor must not read or write the host's other files)."""
    if ctx.flags.hide_ui_dir_config:
        raise InvalidRequestError(f"The {what} folder cannot be set: the server runs with --hide-ui-dir-config.")
    if not text or not text.strip():
        raise InvalidRequestError(f"Type the {what} folder.")
    folder = Path(os.path.expanduser(text.strip()))
    folder = (folder if folder.is_absolute() else ctx.paths.data_dir / folder).resolve()
    if ctx.flags.disable_extension_access and not folder.is_relative_to(ctx.paths.data_dir.resolve()):
        raise InvalidRequestError(
            f"The {what} folder must be inside {ctx.paths.data_dir}: the server is reachable from other machines "
            "(start it with --enable-insecure-extension-access to allow any folder)."
        )
    return folder


def image_files(ctx: AppContext, folder: Path, what: str = "input") -> list[Path]:
    """The image files of a folder (not its subfolders), by name; files that are not images are skipped."""
    if not folder.is_dir():
        raise InvalidRequestError(f"The {what} folder {folder} does not exist or is not a folder.")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InvalidRequestError(f"The {what} folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    if len(files) > ctx.options.max_batch_count:
        raise InvalidRequestError(
            f"The {what} folder holds {len(files)} images, more than the configured limit of "
            f"{ctx.options.max_batch_count} (setting max_batch_count); split it."
        )
    return files


def open_image(ctx: AppContext, path: Path) -> Image.Image:
    """An image of a batch, refused (with its name) beyond the max_image_pixels setting."""
    return open_image_file(path, int(ctx.options.max_image_pixels))


def img2img_batch_args(ctx: AppContext, input_dir: str, output_dir: str, mask_dir: str = "", png_info_fields=()):
    """The img2img/inpaint Batch of folders typed in the UI: every input image, with the mask of the same name from
    `mask_dir` (or its only mask for all), written into `output_dir` (empty: the usual img2img folder)."""
    from sdui.core.img2img_batch import PNG_INFO_FIELDS, BatchArgs, BatchItem

    unknown = [f for f in png_info_fields or () if f not in PNG_INFO_FIELDS]
    if unknown:
        raise InvalidRequestError(f"PNG info fields {unknown} are unknown; choose from {', '.join(PNG_INFO_FIELDS)}.")
    inputs = image_files(ctx, user_folder(ctx, input_dir, "input"))
    masks: dict[str, Path] = {}
    if mask_dir and mask_dir.strip():
        mask_files = image_files(ctx, user_folder(ctx, mask_dir, "mask"), "mask")
        masks = {p.stem: p for p in mask_files}
        if len(mask_files) > 1:
            missing = [p.name for p in inputs if p.stem not in masks]
            if missing:
                raise InvalidRequestError(
                    f"No mask of the same name in the mask folder for: {', '.join(missing[:5])}"
                    f"{' ...' if len(missing) > 5 else ''}; add them, or leave a single mask there for every image."
                )
    only = next(iter(masks.values())) if len(masks) == 1 else None
    items = []
    for path in inputs:
        mask_path = only or masks.get(path.stem)
        items.append(BatchItem(open_image(ctx, path), path.name, open_image(ctx, mask_path) if mask_path else None))
    output = user_folder(ctx, output_dir, "output") if output_dir and output_dir.strip() else None
    return BatchArgs(items=items, output_dir=output, png_info_fields=tuple(png_info_fields or ()))
