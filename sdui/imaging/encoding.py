"""Images to and from the API: PNG bytes that keep the parameters, base64 text from clients."""

from __future__ import annotations

import base64
import io
import os
import re
from pathlib import Path

from PIL import Image, ImageOps

from sdui.errors import InvalidRequestError
from sdui.imaging.pnginfo import text_chunks
from sdui.imaging.saving import FORMATS, encode

_DATA_URL = re.compile(r"^data:[^,;]*(?:;[^,;]*)*?;base64,", re.IGNORECASE)


def image_to_png_bytes(image: Image.Image, infotext: str | None = None) -> bytes:
    """PNG bytes carrying `infotext` (default: image.info["parameters"]) and the image's other text entries."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=text_chunks(image, infotext))
    return buffer.getvalue()


def image_to_bytes(
    image: Image.Image, fmt: str = "png", *, jpeg_quality: int = 80, webp_lossless: bool = False
) -> bytes:
    """The image file as A1111's API sends it (its samples_format): PNG with the image's text entries, JPEG/WebP
    with its `parameters` as EXIF UserComment."""
    if fmt.lower() == "png":
        return image_to_png_bytes(image, image.info.get("parameters"))
    if fmt.lower() not in FORMATS:
        raise InvalidRequestError(f"Cannot send images as '{fmt}'; choose one of: {', '.join(FORMATS)}.")
    buffer = io.BytesIO()
    encode(image, buffer, fmt.lower(), image.info.get("parameters"), jpeg_quality, webp_lossless)
    return buffer.getvalue()


def decode_base64_image(data: str, max_pixels: int | None = None) -> Image.Image:
    """A PIL image from base64 text, with or without a `data:image/...;base64,` prefix; EXIF rotation applied.

    `max_pixels`: larger images are refused from their header, before their pixels are decoded (a 12000x12000
    PNG of a few kilobytes would otherwise take 400 MB at once)."""
    if not isinstance(data, str) or not data.strip():
        raise InvalidRequestError("Invalid encoded image: no data. Send the image file as a base64 string.")
    text = data.strip()
    if text.startswith(("http://", "https://")):
        raise InvalidRequestError(
            "Invalid encoded image: URLs are not fetched. Send the image file itself, base64-encoded."
        )
    text = _DATA_URL.sub("", text, count=1)
    text = "".join(text.split())
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4))
    except Exception as e:  # noqa: BLE001 - any failure to decode user data is a bad request, not our bug
        raise _undecodable(e) from None
    return open_image_bytes(raw, max_pixels)


def open_image_bytes(raw: bytes, max_pixels: int | None = None, name: str = "") -> Image.Image:
    """A PIL image from the bytes of an image file, EXIF rotation applied; images over `max_pixels` are refused
    from their header, before their pixels are decoded (a 12000x12000 PNG of a few kilobytes would otherwise take
    400 MB at once). `name` says which file a message is about."""
    try:
        image = Image.open(io.BytesIO(raw))
    except Exception as e:  # noqa: BLE001 - any failure to decode user data is a bad request, not our bug
        raise _undecodable(e, name) from None
    if max_pixels is not None and image.width * image.height > max_pixels:
        raise InvalidRequestError(
            f"The image{' ' + name if name else ''} is {image.width}x{image.height}, larger than the configured "
            f"limit of {max_pixels} pixels (setting max_image_pixels); scale it down first."
        )
    try:
        image.load()
        return ImageOps.exif_transpose(image)
    except Exception as e:  # noqa: BLE001
        raise _undecodable(e, name) from None


def open_image_file(path: str | os.PathLike, max_pixels: int | None = None) -> Image.Image:
    """open_image_bytes for a file on disk (an upload, a file of a batch folder)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InvalidRequestError(f"Cannot read {path.name}: {e.strerror or e}.") from None
    return open_image_bytes(raw, max_pixels, path.name)


def _undecodable(e: Exception, name: str = "") -> InvalidRequestError:
    return InvalidRequestError(
        f"Invalid {'image file ' + name if name else 'encoded image'}: {e}. Send a PNG, JPEG or WebP file as base64 "
        "(a data:image/...;base64, prefix is allowed)."
    )
