"""📂 under a gallery: show an output folder in the desktop's file manager, when the server runs on that desktop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sdui.app.context import AppContext


def has_desktop() -> bool:
    return sys.platform in ("win32", "darwin") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def can_open_folders(ctx: AppContext) -> bool:
    """Only for a server nobody else can reach (a visitor would open windows on the host), not under
    --hide-ui-dir-config, and where there is a desktop to show them on."""
    return not ctx.flags.webui_is_non_local and not ctx.flags.hide_ui_dir_config and has_desktop()


def open_folder(folder: Path) -> str | None:
    """Open `folder` (created if missing); a message when that cannot be done."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if sys.platform == "win32":
            os.startfile(folder)
        else:
            opener = "open" if sys.platform == "darwin" else "xdg-open"
            subprocess.Popen([opener, str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError as e:
        return f"Could not open {folder}: {e}"
    return None
