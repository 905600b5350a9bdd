"""Localizations (A1111's `localizations/*.json`): {"English text": "translation"} files from the program's
localizations folder (--localizations-dir) and from enabled extensions' `localizations/` folders, a later file of the
same name replacing an earlier one. The chosen one (setting `localization`) goes into the page with a script that
translates its text as it appears, as A1111's localization.js does; the page is built in English.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)
NONE = "None"
SCRIPT = Path(__file__).with_name("localization.js")


def localization_files(ctx) -> dict[str, Path]:
    """Localization name (the file's stem) -> file."""
    folders = [ctx.paths.localizations_dir]
    runtime = getattr(ctx, "extensions", None)
    extensions = runtime.extensions if runtime is not None else []
    folders += [ext.path / "localizations" for ext in extensions if ext.enabled]
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            found[path.stem] = path
    return found


def page_script(ctx) -> str:
    """The JavaScript that translates the page into the chosen localization; "" for English or a missing file."""
    name = ctx.options.get("localization") or NONE
    if name == NONE:
        return ""
    path = localization_files(ctx).get(name)
    if path is None:
        log.warning("Localization %r not found (setting `localization`); the page stays in English.", name)
        return ""
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("Localization %s cannot be read (%s); the page stays in English.", path, e)
        return ""
    if not isinstance(table, dict):
        log.warning("Localization %s is not a JSON object of texts; the page stays in English.", path)
        return ""
    texts = {str(k): str(v) for k, v in table.items() if isinstance(v, (str, int, float))}
    return f"window.localization = {json.dumps(texts)};\n" + SCRIPT.read_text(encoding="utf-8")
