"""Small A1111 helpers extensions call, over our own functions: error reporting (modules.errors), the folder
constants (modules.paths), images in and out of base64 (modules.api.api), infotext parsing
(modules.infotext_utils)."""

from __future__ import annotations

import base64
import logging
import sys
import traceback

from sdui.extensions import registry

log = logging.getLogger("extensions")
_shown_once: set[str] = set()


# ----------------------------------------------------------------------------------------------- modules.errors


def report(message: str, *, exc_info: bool = False) -> None:
    """Log an extension's error, with the current traceback when exc_info."""
    log.error("%s%s", message, "\n" + traceback.format_exc() if exc_info else "")


def display(e: BaseException, task: str, *, full_traceback: bool = False) -> None:
    log.error("%s: %s: %s", task, type(e).__name__, e, exc_info=(type(e), e, e.__traceback__))


def display_once(e: BaseException, task: str) -> None:
    if task not in _shown_once:
        _shown_once.add(task)
        display(e, task)


def print_error_explanation(message: str) -> None:
    print(message, file=sys.stderr)


# ------------------------------------------------------------------------------------------------ modules.paths


def path_constant(name: str) -> str:
    app = registry.REGISTRY.app
    if app is None:
        raise AttributeError(f"{name} is available once the app has started")
    paths = app.paths
    values = {
        "script_path": paths.repo_dir,
        "data_path": paths.data_dir,
        "models_path": paths.models_dir,
        "extensions_dir": paths.extensions_dir,
        "extensions_builtin_dir": paths.extensions_builtin_dir,
        "sd_configs_path": paths.configs_dir,
        "default_output_dir": paths.outputs_dir,
    }
    if name not in values:
        raise AttributeError(name)
    return str(values[name])


# ---------------------------------------------------------------------------------------------- modules.api.api


def encode_pil_to_base64(image) -> bytes:
    """PNG bytes of `image`, base64-encoded (with its parameters chunk, as A1111's API sends images)."""
    from sdui.imaging.encoding import image_to_bytes

    return base64.b64encode(image_to_bytes(image, "png"))


def decode_base64_to_image(encoding: str):
    from sdui.imaging.encoding import decode_base64_image

    app = registry.REGISTRY.app
    return decode_base64_image(encoding, int(app.options.max_image_pixels) if app is not None else None)


# ------------------------------------------------------------------------------------------ modules.infotext_utils


def parse_generation_parameters(text: str, skip_fields: list | None = None) -> dict:
    from sdui.infotext import parse_infotext

    params = parse_infotext(text)
    for key in skip_fields or []:
        params.pop(key, None)
    return params


def read_info_from_image(image) -> tuple[str | None, dict]:
    from sdui.imaging.pnginfo import read_info_from_image as read

    return read(image)

