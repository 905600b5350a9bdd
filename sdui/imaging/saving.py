"""Saving images with A1111's names and metadata, atomically.

Saved files follow A1111: `<out_dir>/YYYY-MM-DD/00012-1234567890.png`, grids `grid-0003.png`; the infotext goes
into the PNG text chunk `parameters` (JPEG/WebP/AVIF: EXIF UserComment, GIF: comment). A save is atomic: the image
is encoded into a hidden temp file in the target folder, then hard-linked to its final name, which fails if that
name exists; so a crash or an error never leaves a half-written image, and two saves at the same time never take the
same number, in one process or several.
"""

from __future__ import annotations

import datetime
import io
import os
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from sdui.atomic import write_text_atomic
from sdui.errors import InvalidRequestError
from sdui.imaging.filenames import (
    MAX_PROMPT_WORDS,
    SANITIZE,
    apply_filename_pattern,
    next_sequence_number,
    standard_tags,
)
from sdui.imaging.pnginfo import exif_user_comment, text_chunks

SEQUENCE_TRIES = 500
FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "gif": "GIF", "avif": "AVIF"}

_publish_lock = threading.Lock()


@dataclass(frozen=True)
class SaveOptions:
    """How files are named and encoded: A1111's saving settings."""

    fmt: str = "png"
    pattern: str = ""  # samples_filename_pattern ("": A1111's default, see plan_save)
    add_number: bool = True  # save_images_add_number
    replace_existing: bool = True  # save_images_replace_action == "Replace"
    save_to_dirs: bool = True
    dir_pattern: str = "[date]"  # directories_filename_pattern
    max_prompt_words: int = MAX_PROMPT_WORDS
    jpeg_quality: int = 80
    webp_lossless: bool = False


@dataclass(frozen=True)
class SavePlan:
    """Where a save goes: the folder, and the file name for each sequence number."""

    folder: Path
    fmt: str
    decoration: str
    basename: str
    add_number: bool
    replace_existing: bool
    max_stem: int

    def name(self, number: int | None) -> Path:
        if number is None:
            stem = self.decoration
        else:
            stem = f"{number:05}" if not self.basename else f"{self.basename}-{number:04}"
            stem += f"-{self.decoration}" if self.decoration else ""
        return self.folder / f"{stem[: self.max_stem]}.{self.fmt}"

    def predicted(self) -> Path:
        """The name a save started now would get (another save may take it first)."""
        return self.name(next_sequence_number(self.folder, self.basename) if self.add_number else None)


def plan_save(
    image: Image.Image,
    out_dir: str | os.PathLike,
    options: SaveOptions,
    *,
    seed: Any,
    basename: str = "",
    prompt: str | None = None,
    tags: Mapping[str, Any] | None = None,
    suffix: str = "",
    date: datetime.date | None = None,
) -> SavePlan:
    """The folder (created) and naming of a save under `out_dir`, with A1111's rules.

    `options.pattern` "" is A1111's default: "[seed]" in dated folders, else "[seed]-[prompt_spaces]";
    `basename` names grids ("grid"). With `seed=None` the name is the number alone. Without `add_number` an
    existing file of the same name is replaced (A1111's default "Replace"), or with `replace_existing=False` kept,
    the new one getting `-1`, `-2`...
    """
    out_dir = Path(out_dir)
    fmt = options.fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise InvalidRequestError(f"Cannot save images as '{fmt}'; choose one of: {', '.join(FORMATS)}.")
    if (fmt in ("jpg", "jpeg") and max(image.size) > 65535) or (fmt == "webp" and max(image.size) > 16383):
        fmt = "png"  # beyond what the format can hold

    all_tags = standard_tags(
        seed=seed,
        date=date,
        image=image,
        prompt=prompt,
        basename=basename,
        extra=tags,
        max_prompt_words=options.max_prompt_words,
    )
    folder = out_dir
    if options.save_to_dirs:
        sub = apply_filename_pattern(options.dir_pattern or "[prompt_words]", all_tags).lstrip(" ").rstrip("\\ /")
        folder = out_dir / sub if sub else out_dir
        if not folder.resolve().is_relative_to(out_dir.resolve()):
            raise InvalidRequestError(
                f"The folder pattern '{options.dir_pattern}' leads outside {out_dir}; remove '..' from it in Settings."
            )
    folder.mkdir(parents=True, exist_ok=True)

    if seed is None:
        decoration = ""
    else:
        default = "[seed]" if options.save_to_dirs else "[seed]-[prompt_spaces]"
        decoration = apply_filename_pattern(options.pattern or default, all_tags)
    decoration = (decoration + suffix).translate(SANITIZE)
    return SavePlan(
        folder=folder,
        fmt=fmt,
        decoration=decoration,
        basename=basename,
        add_number=options.add_number or decoration == "",
        replace_existing=options.replace_existing,
        max_stem=_max_name_length(folder) - len(fmt) - 1,
    )


def write_image(
    plan: SavePlan,
    image: Image.Image,
    infotext: str | None,
    options: SaveOptions,
    *,
    chunks: Mapping[str, Any] | None = None,
) -> Path:
    """Encode `image` (with `infotext` as its parameters) and publish it under the plan's next free name.
    `chunks`: the PNG text entries to write instead of the image's own (A1111's ImageSaveParams.pnginfo)."""
    temp = _write_temp(
        plan.folder,
        lambda f: encode(image, f, plan.fmt, infotext, options.jpeg_quality, options.webp_lossless, chunks),
    )
    try:
        with _publish_lock:
            if plan.add_number:
                start = next_sequence_number(plan.folder, plan.basename)
                return _link_first_free(temp, (plan.name(start + i) for i in range(SEQUENCE_TRIES)))
            if plan.replace_existing:
                target = plan.name(None)
                os.replace(temp, target)
                return target
            stem = plan.name(None).with_suffix("")
            others = (Path(f"{stem}-{n}.{plan.fmt}") for n in range(1, SEQUENCE_TRIES))
            return _link_first_free(temp, _chain(plan.name(None), others))
    finally:
        temp.unlink(missing_ok=True)


def save_image(
    image: Image.Image,
    out_dir: str | os.PathLike,
    *,
    seed: Any,
    infotext: str | None,
    options: SaveOptions = SaveOptions(),
    basename: str = "",
    prompt: str | None = None,
    tags: Mapping[str, Any] | None = None,
    suffix: str = "",
    date: datetime.date | None = None,
) -> Path:
    """plan_save + write_image: save `image` under `out_dir` with A1111's naming and metadata; the path written."""
    plan = plan_save(
        image, out_dir, options, seed=seed, basename=basename, prompt=prompt, tags=tags, suffix=suffix, date=date
    )
    return write_image(plan, image, infotext, options)


def save_text_beside(image_path: Path, text: str) -> Path:
    """The parameters as a .txt file of the same name (A1111's save_txt), written atomically."""
    return write_text_atomic(image_path.with_suffix(".txt"), text + "\n")  # A1111 ends the file with a newline


def _chain(first: Path, rest: Iterator[Path]) -> Iterator[Path]:
    yield first
    yield from rest


def _max_name_length(folder: Path) -> int:
    try:
        return os.statvfs(folder).f_namemax
    except (AttributeError, OSError):
        return 255


def _write_temp(folder: Path, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Encode into a new hidden file in `folder` (same filesystem as the target); removed again on any error."""
    while True:
        temp = folder / f".{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name appears
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def _link_first_free(temp: Path, candidates: Iterator[Path]) -> Path:
    """Give `temp`'s content the first candidate name not taken; never overwrites."""
    for target in candidates:
        try:
            os.link(temp, target)
            return target
        except FileExistsError:
            continue
        except (OSError, NotImplementedError):
            # no hard links here (some network or FAT drives): the lock still keeps this process's saves apart
            if target.exists():
                continue
            os.replace(temp, target)
            return target
    raise FileExistsError(
        f"No free file name in {temp.parent} after {SEQUENCE_TRIES} tries; move old images out of that folder."
    )


def encode(
    image: Image.Image,
    f,
    fmt: str,
    infotext: str | None,
    jpeg_quality: int,
    webp_lossless: bool,
    chunks: Mapping[str, Any] | None = None,
) -> None:
    """Write `image` to the open file `f` as `fmt`, with `infotext` where A1111 puts it: the PNG text chunk
    `parameters` (plus `chunks`), EXIF UserComment for JPEG/WebP/AVIF, the comment for GIF."""
    kind = FORMATS[fmt]
    if kind == "PNG":
        image.save(f, format=kind, pnginfo=text_chunks(image, infotext, chunks))
        return
    exif = exif_user_comment(infotext) if infotext is not None else None
    if kind in ("JPEG", "WEBP"):
        if image.mode == "I;16":
            image = image.point(lambda p: p * (255 / 65535)).convert("RGB" if kind == "WEBP" else "L")
        elif image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        extra = {"lossless": webp_lossless} if kind == "WEBP" else {}
        image.save(f, format=kind, quality=jpeg_quality, **extra, **({"exif": exif} if exif else {}))
    elif kind == "AVIF":
        image.save(f, format=kind, quality=jpeg_quality, **({"exif": exif} if exif else {}))
    else:  # GIF
        image.save(f, format=kind, **({"comment": infotext} if infotext is not None else {}))
