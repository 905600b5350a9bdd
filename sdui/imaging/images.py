"""Images in and out: saving with A1111's names and metadata, grids, reading metadata back, base64 for the API.

Saved files follow A1111 (reference §6): `<out_dir>/YYYY-MM-DD/00012-1234567890.png`, grids `grid-0003.png`; the
infotext goes into the PNG text chunk `parameters` (JPEG/WebP/AVIF: EXIF UserComment, GIF: comment).
A save is atomic: the image is encoded into a hidden temp file in the target folder, then hard-linked to its final
name, which fails if that name exists; so a crash or an error never leaves a half-written image, and two saves at
the same time never take the same number, in one process or several.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import io
import math
import os
import re
import secrets
import string
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import piexif
import piexif.helper
from PIL import Image, ImageColor, ImageOps, PngImagePlugin

from sdui.errors import InvalidRequestError

INVALID_FILENAME_CHARS = '#<>:"/\\|?*\n\r\t'
MAX_FILENAME_PART_LENGTH = 128
MAX_PROMPT_WORDS = 8
SEQUENCE_TRIES = 500

# image.info keys that are encoding details, not metadata worth showing (A1111's list)
IGNORED_INFO_KEYS = frozenset({
    "jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "exif", "loop", "background", "timestamp",
    "duration", "progressive", "progression", "icc_profile", "chromaticity", "photoshop",
})

SKIP_PREVIOUS_TEXT = object()    # a tag value meaning: write nothing, and drop the literal text before the tag

_publish_lock = threading.Lock()
_SANITIZE = str.maketrans({c: "_" for c in INVALID_FILENAME_CHARS})
_PATTERN = re.compile(r"(.*?)(?:\[([^\[\]]+)\]|$)")
_PATTERN_ARG = re.compile(r"(.*)<([^>]*)>$")
_NON_LETTERS = re.compile(r"[\s" + re.escape(string.punctuation) + "]+")
_DATA_URL = re.compile(r"^data:[^,;]*(?:;[^,;]*)*?;base64,", re.IGNORECASE)
_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "gif": "GIF", "avif": "AVIF"}


# ----------------------------------------------------------------------------------------------- file names

def sanitize_filename_part(text: str | None, replace_spaces: bool = True) -> str | None:
    """A piece of text made safe for a file name on every OS, as A1111 does it."""
    if text is None:
        return None
    if replace_spaces:
        text = text.replace(" ", "_")
    text = text.translate(_SANITIZE).lstrip(" ")[:MAX_FILENAME_PART_LENGTH]
    return text.rstrip(" .")


def apply_filename_pattern(pattern: str, tags: Mapping[str, Any]) -> str:
    """Replace `[tag]` / `[tag<arg>...]` (case-insensitive) by `tags[tag]` (a value, or a callable taking the args).

    An unknown tag, or one whose value is None, stays literal; SKIP_PREVIOUS_TEXT drops the text before the tag.
    """
    out = []
    for m in _PATTERN.finditer(pattern):
        text, tag = m.groups()
        if tag is None:
            out.append(text)
            continue
        args: list[str] = []
        name = tag
        while (arg := _PATTERN_ARG.match(name)) is not None:
            name, value = arg.groups()
            args.insert(0, value)
        value = tags.get(name.lower())
        if callable(value):
            try:
                value = value(*args)
            except Exception:       # a bad argument (e.g. "[prompt_hash<x>]") keeps the tag literal
                value = None
        if value is SKIP_PREVIOUS_TEXT:
            continue
        out.append(f"{text}{value}" if value is not None else f"{text}[{tag}]")
    return "".join(out)


def standard_tags(*, seed: Any = None, date: datetime.date | None = None, image: Image.Image | None = None,
                  prompt: str | None = None, basename: str = "", extra: Mapping[str, Any] | None = None) -> dict:
    """The tags a file name pattern can use; `extra` adds or overrides (e.g. steps, cfg, sampler, model_hash)."""
    date = date or datetime.date.today()

    def when(fmt: str = "", zone: str = "") -> str:
        now = datetime.datetime.now().astimezone(_timezone(zone))
        try:
            text = now.strftime(fmt or "%Y%m%d%H%M%S")
        except ValueError:
            text = now.strftime("%Y%m%d%H%M%S")
        return sanitize_filename_part(text, replace_spaces=False)

    def digest(data: bytes, length: str = "", default: int | None = 8) -> str:
        return hashlib.sha256(data).hexdigest()[:int(length) if length else default]

    tags: dict[str, Any] = {
        "seed": "" if seed is None else seed,
        "date": date.strftime("%Y-%m-%d"),
        "datetime": when,
        "none": "",
        "basename": basename or "img",
    }
    if image is not None:
        tags["width"], tags["height"] = image.width, image.height
        tags["image_hash"] = lambda length="": digest(image.tobytes(), length, None)
    if prompt is not None:
        words = [w for w in _NON_LETTERS.split(prompt) if w] or ["empty"]
        tags["prompt"] = sanitize_filename_part(prompt)
        tags["prompt_spaces"] = sanitize_filename_part(prompt, replace_spaces=False)
        tags["prompt_words"] = sanitize_filename_part(" ".join(words[:MAX_PROMPT_WORDS]), replace_spaces=False)
        tags["prompt_hash"] = lambda length="": digest(prompt.encode(), length)
    for key, value in (extra or {}).items():
        tags[key.lower()] = sanitize_filename_part(value, replace_spaces=False) if isinstance(value, str) else value
    return tags


def _timezone(name: str) -> datetime.tzinfo | None:
    if not name:
        return None
    try:
        from zoneinfo import ZoneInfo
        return ZoneInfo(name)
    except Exception:          # unknown zone: local time, as A1111
        return None


def next_sequence_number(folder: Path, basename: str = "") -> int:
    """1 + the largest number leading a file name in `folder` (after `basename-`), 0 when there is none.

    Sub-folders do not count (A1111 counts them, so with dated folders beside, its counter jumps to 02025).
    """
    prefix = f"{basename}-" if basename else ""
    largest = -1
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        name = entry.name
        if name.startswith(prefix) and not entry.is_dir():
            head = os.path.splitext(name[len(prefix):])[0].split("-")[0]
            if head.isascii() and head.isdigit():
                largest = max(largest, int(head))
    return largest + 1


# ------------------------------------------------------------------------------------------------- saving

def save_image(image: Image.Image, out_dir: str | os.PathLike, *, seed: Any, infotext: str | None,
               fmt: str = "png", date: datetime.date | None = None, pattern: str = "[seed]",
               add_number: bool = True, save_to_dirs: bool = True, dir_pattern: str = "[date]",
               basename: str = "", prompt: str | None = None, tags: Mapping[str, Any] | None = None,
               suffix: str = "", replace_existing: bool = True, jpeg_quality: int = 80,
               webp_lossless: bool = False) -> Path:
    """Save `image` under `out_dir` with A1111's naming and metadata; return the path written.

    `pattern` is A1111's samples_filename_pattern ("" = its default: "[seed]" in dated folders, else
    "[seed]-[prompt_spaces]"); `dir_pattern` its directories_filename_pattern; `basename` names grids ("grid").
    With `seed=None` the name is the number alone. Without `add_number` an existing file of the same name is
    replaced (A1111's default "Replace"), or with `replace_existing=False` kept, the new one getting `-1`, `-2`...
    """
    out_dir = Path(out_dir)
    fmt = fmt.lower().lstrip(".")
    if fmt not in _FORMATS:
        raise InvalidRequestError(f"Cannot save images as '{fmt}'; choose one of: {', '.join(_FORMATS)}.")
    if (fmt in ("jpg", "jpeg") and max(image.size) > 65535) or (fmt == "webp" and max(image.size) > 16383):
        fmt = "png"                             # beyond what the format can hold

    all_tags = standard_tags(seed=seed, date=date, image=image, prompt=prompt, basename=basename, extra=tags)
    folder = out_dir
    if save_to_dirs:
        sub = apply_filename_pattern(dir_pattern or "[prompt_words]", all_tags).lstrip(" ").rstrip("\\ /")
        folder = out_dir / sub if sub else out_dir
        if not folder.resolve().is_relative_to(out_dir.resolve()):
            raise InvalidRequestError(f"The folder pattern '{dir_pattern}' leads outside {out_dir}; "
                                      "remove '..' from it in Settings.")
    folder.mkdir(parents=True, exist_ok=True)

    if seed is None:
        decoration = ""
    else:
        decoration = apply_filename_pattern(pattern or ("[seed]" if save_to_dirs else "[seed]-[prompt_spaces]"),
                                            all_tags)
    decoration = (decoration + suffix).translate(_SANITIZE)
    add_number = add_number or decoration == ""
    max_stem = _max_name_length(folder) - len(fmt) - 1

    def name(number: int | None) -> Path:
        if number is None:
            stem = decoration
        else:
            stem = f"{number:05}" if not basename else f"{basename}-{number:04}"
            stem += f"-{decoration}" if decoration else ""
        return folder / f"{stem[:max_stem]}.{fmt}"

    temp = _write_temp(folder, lambda f: _encode(image, f, fmt, infotext, jpeg_quality, webp_lossless))
    try:
        with _publish_lock:
            if add_number:
                start = next_sequence_number(folder, basename)
                return _link_first_free(temp, (name(start + i) for i in range(SEQUENCE_TRIES)))
            if replace_existing:
                target = name(None)
                os.replace(temp, target)
                return target
            stem = name(None).with_suffix("")
            others = (Path(f"{stem}-{n}.{fmt}") for n in range(1, SEQUENCE_TRIES))
            return _link_first_free(temp, _chain(name(None), others))
    finally:
        temp.unlink(missing_ok=True)


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
            os.fsync(f.fileno())        # the bytes are on disk before the name appears
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
    raise FileExistsError(f"No free file name in {temp.parent} after {SEQUENCE_TRIES} tries; "
                          "move old images out of that folder.")


def _exif_user_comment(text: str) -> bytes:
    comment = piexif.helper.UserComment.dump(text, encoding="unicode")
    return piexif.dump({"Exif": {piexif.ExifIFD.UserComment: comment}})


def _text_chunks(image: Image.Image, infotext: str | None) -> PngImagePlugin.PngInfo | None:
    entries = {k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)}
    if infotext is not None:
        entries["parameters"] = infotext
    if not entries:
        return None
    chunks = PngImagePlugin.PngInfo()
    for key, value in entries.items():
        chunks.add_text(key, str(value))    # Pillow writes iTXt (UTF-8) when the text is not Latin-1
    return chunks


def _encode(image: Image.Image, f, fmt: str, infotext: str | None, jpeg_quality: int, webp_lossless: bool) -> None:
    kind = _FORMATS[fmt]
    if kind == "PNG":
        image.save(f, format=kind, pnginfo=_text_chunks(image, infotext))
        return
    exif = _exif_user_comment(infotext) if infotext is not None else None
    if kind in ("JPEG", "WEBP"):
        if image.mode == "I;16":
            image = image.point(lambda p: p * (255 / 65535)).convert("RGB" if kind == "WEBP" else "L")
        elif image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        extra = {"lossless": webp_lossless} if kind == "WEBP" else {}
        image.save(f, format=kind, quality=jpeg_quality, **extra, **({"exif": exif} if exif else {}))
    elif kind == "AVIF":
        image.save(f, format=kind, quality=jpeg_quality, **({"exif": exif} if exif else {}))
    else:   # GIF
        image.save(f, format=kind, **({"comment": infotext} if infotext is not None else {}))


# -------------------------------------------------------------------------------------------------- grids

def image_grid(images: Sequence[Image.Image], rows: int | None = None, *, batch_size: int = 1,
               prevent_empty_spots: bool = False, background: str = "#ffffff") -> Image.Image:
    """Images in a rows x cols grid (A1111 n_rows: None/-1 = about square, 0 = batch_size), each centred in a cell
    the size of the largest image."""
    n = len(images)
    if n == 0:
        raise ValueError("image_grid needs at least one image")
    if rows is None or rows < 0:
        if prevent_empty_spots:
            rows = math.floor(math.sqrt(n))
            while n % rows:
                rows -= 1
        else:
            rows = round(math.sqrt(n))
    elif rows == 0:
        rows = batch_size
    rows = max(1, min(rows, n))
    cols = math.ceil(n / rows)

    cell_w, cell_h = max(im.width for im in images), max(im.height for im in images)
    grid = Image.new("RGB", (cols * cell_w, rows * cell_h), ImageColor.getcolor(background, "RGB"))
    for i, im in enumerate(images):
        x = i % cols * cell_w + (cell_w - im.width) // 2
        y = i // cols * cell_h + (cell_h - im.height) // 2
        grid.paste(im, (x, y))
    return grid


def save_grid(grid: Image.Image, outputs_dir: str | os.PathLike, mode: str = "txt2img", *,
              infotext: str | None = None, fmt: str = "png", date: datetime.date | None = None,
              save_to_dirs: bool = True, dir_pattern: str = "[date]") -> Path:
    """Save a grid as `<outputs_dir>/<mode>-grids/YYYY-MM-DD/grid-NNNN.png`."""
    return save_image(grid, Path(outputs_dir) / f"{mode}-grids", seed=None, infotext=infotext, fmt=fmt, date=date,
                      save_to_dirs=save_to_dirs, dir_pattern=dir_pattern, basename="grid")


# ------------------------------------------------------------------------------------------ reading back

def read_info_from_image(image: Image.Image) -> tuple[str | None, dict]:
    """(infotext, other metadata): PNG `parameters` chunk, else EXIF UserComment, else GIF comment; NovelAI PNGs
    are converted to an infotext. Encoding details (dpi, icc_profile, exif...) are left out of the dict."""
    items = dict(image.info or {})
    infotext = items.pop("parameters", None)
    if infotext is None and isinstance(getattr(image, "text", None), dict):
        infotext = image.text.get("parameters")     # a PNG chunk after the pixel data

    comment = _exif_comment(items.get("exif"))
    if comment:
        items["exif comment"] = comment
        infotext = infotext if infotext is not None else comment
    elif infotext is None and "comment" in items:   # GIF
        raw = items["comment"]
        infotext = raw.decode("utf8", errors="ignore") if isinstance(raw, bytes) else str(raw)

    for key in IGNORED_INFO_KEYS:
        items.pop(key, None)
    clean: dict[str, Any] = {}
    for key, value in items.items():
        if isinstance(value, bytes):
            try:
                value = value.decode("utf8")
            except UnicodeDecodeError:
                continue                            # binary: nothing a person or a JSON client can use
        clean[str(key)] = str(value) if isinstance(value, str) else value

    if clean.get("Software") == "NovelAI":
        infotext = _novelai_infotext(clean, image) or infotext
    return (str(infotext) if infotext is not None else None), clean


def _exif_comment(exif: Any) -> str:
    if not isinstance(exif, bytes) or not exif:
        return ""
    try:
        data = piexif.load(exif)
    except Exception:
        return ""
    raw = data.get("Exif", {}).get(piexif.ExifIFD.UserComment, b"")
    try:
        return piexif.helper.UserComment.load(raw)
    except ValueError:
        return raw.decode("utf8", errors="ignore")


# NovelAI sampler ids -> A1111 names; A1111 looks them up among its sampler aliases and falls back to Euler a.
_NOVELAI_SAMPLERS = {"k_euler_ancestral": "Euler a", "k_euler_a": "Euler a", "k_euler": "Euler", "k_lms": "LMS",
                     "k_heun": "Heun", "k_dpm_2": "DPM2", "k_dpm_2_a": "DPM2 a", "k_dpmpp_2m": "DPM++ 2M",
                     "k_dpmpp_sde": "DPM++ SDE", "k_dpmpp_2s_a": "DPM++ 2S a", "k_dpm_fast": "DPM fast",
                     "ddim": "DDIM", "plms": "PLMS"}


def _novelai_infotext(items: Mapping[str, Any], image: Image.Image) -> str | None:
    import json
    try:
        data = json.loads(items["Comment"])
        sampler = _NOVELAI_SAMPLERS.get(str(data.get("sampler", "")).lower(), "Euler a")
        return (f"{items['Description']}\nNegative prompt: {data['uc']}\n"
                f"Steps: {data['steps']}, Sampler: {sampler}, CFG scale: {data['scale']}, Seed: {data['seed']}, "
                f"Size: {image.width}x{image.height}, Clip skip: 2, ENSD: 31337")
    except (KeyError, TypeError, ValueError):
        return None


# ------------------------------------------------------------------------------------------------- API I/O

def image_to_png_bytes(image: Image.Image, infotext: str | None = None) -> bytes:
    """PNG bytes carrying `infotext` (default: image.info["parameters"]) and the image's other text entries."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=_text_chunks(image, infotext))
    return buffer.getvalue()


def decode_base64_image(data: str) -> Image.Image:
    """A PIL image from base64 text, with or without a `data:image/...;base64,` prefix; EXIF rotation applied."""
    if not isinstance(data, str) or not data.strip():
        raise InvalidRequestError("Invalid encoded image: no data. Send the image file as a base64 string.")
    text = data.strip()
    if text.startswith(("http://", "https://")):
        raise InvalidRequestError("Invalid encoded image: URLs are not fetched. Send the image file itself, "
                                  "base64-encoded.")
    text = _DATA_URL.sub("", text, count=1)
    text = "".join(text.split())
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4))
        image = Image.open(io.BytesIO(raw))
        image.load()
        return ImageOps.exif_transpose(image)
    except Exception as e:          # any failure to decode user data is a bad request, not our bug
        raise InvalidRequestError(f"Invalid encoded image: {e}. Send a PNG, JPEG or WebP file as base64 "
                                  "(a data:image/...;base64, prefix is allowed).") from None
