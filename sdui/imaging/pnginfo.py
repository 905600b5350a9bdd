"""The generation parameters inside image files: written as a PNG text chunk or EXIF UserComment, read back from
PNG, JPEG, WebP, AVIF and GIF files (and NovelAI's PNGs)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import piexif
import piexif.helper
from PIL import Image, PngImagePlugin

# image.info keys that are encoding details, not metadata worth showing (A1111's list)
IGNORED_INFO_KEYS = frozenset(
    {
        "jfif",
        "jfif_version",
        "jfif_unit",
        "jfif_density",
        "dpi",
        "exif",
        "loop",
        "background",
        "timestamp",
        "duration",
        "progressive",
        "progression",
        "icc_profile",
        "chromaticity",
        "photoshop",
    }
)


def exif_user_comment(text: str) -> bytes:
    comment = piexif.helper.UserComment.dump(text, encoding="unicode")
    return piexif.dump({"Exif": {piexif.ExifIFD.UserComment: comment}})


def text_chunks(
    image: Image.Image, infotext: str | None, entries: Mapping[str, Any] | None = None
) -> PngImagePlugin.PngInfo | None:
    """`entries` (default: the image's own text entries) and `infotext` as `parameters`, as PNG text chunks."""
    if entries is None:
        entries = {k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)}
    entries = dict(entries)
    if infotext is not None:
        entries["parameters"] = infotext
    if not entries:
        return None
    chunks = PngImagePlugin.PngInfo()
    for key, value in entries.items():
        chunks.add_text(key, str(value))  # Pillow writes iTXt (UTF-8) when the text is not Latin-1
    return chunks


def read_info_from_image(image: Image.Image) -> tuple[str | None, dict]:
    """(infotext, other metadata): PNG `parameters` chunk, else EXIF UserComment, else GIF comment; NovelAI PNGs
    are converted to an infotext. Encoding details (dpi, icc_profile, exif...) are left out of the dict."""
    items = dict(image.info or {})
    infotext = items.pop("parameters", None)
    if infotext is None and isinstance(getattr(image, "text", None), dict):
        infotext = image.text.get("parameters")  # a PNG chunk after the pixel data

    comment = _exif_comment(items.get("exif"))
    if comment:
        items["exif comment"] = comment
        infotext = infotext if infotext is not None else comment
    elif infotext is None and "comment" in items:  # GIF
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
                continue  # binary: nothing a person or a JSON client can use
        clean[str(key)] = str(value) if isinstance(value, str) else value

    if clean.get("Software") == "NovelAI":
        infotext = _novelai_infotext(clean, image) or infotext
    return (str(infotext) if infotext is not None else None), clean


def _exif_comment(exif: Any) -> str:
    if not isinstance(exif, bytes) or not exif:
        return ""
    try:
        data = piexif.load(exif)
    except Exception:  # noqa: BLE001 - a broken EXIF block in a user's file means no comment, not a failure
        return ""
    raw = data.get("Exif", {}).get(piexif.ExifIFD.UserComment, b"")
    try:
        return piexif.helper.UserComment.load(raw)
    except ValueError:
        return raw.decode("utf8", errors="ignore")


# NovelAI sampler ids -> A1111 names; A1111 looks them up among its sampler aliases and falls back to Euler a.
_NOVELAI_SAMPLERS = {
    "k_euler_ancestral": "Euler a",
    "k_euler_a": "Euler a",
    "k_euler": "Euler",
    "k_lms": "LMS",
    "k_heun": "Heun",
    "k_dpm_2": "DPM2",
    "k_dpm_2_a": "DPM2 a",
    "k_dpmpp_2m": "DPM++ 2M",
    "k_dpmpp_sde": "DPM++ SDE",
    "k_dpmpp_2s_a": "DPM++ 2S a",
    "k_dpm_fast": "DPM fast",
    "ddim": "DDIM",
    "plms": "PLMS",
}


def _novelai_infotext(items: Mapping[str, Any], image: Image.Image) -> str | None:
    try:
        data = json.loads(items["Comment"])
        sampler = _NOVELAI_SAMPLERS.get(str(data.get("sampler", "")).lower(), "Euler a")
        return (
            f"{items['Description']}\nNegative prompt: {data['uc']}\n"
            f"Steps: {data['steps']}, Sampler: {sampler}, CFG scale: {data['scale']}, Seed: {data['seed']}, "
            f"Size: {image.width}x{image.height}, Clip skip: 2, ENSD: 31337"
        )
    except (KeyError, TypeError, ValueError):
        return None
