"""Who may use the server: the --api-auth and --gradio-auth passwords, and which part of the app each protects.

One password flag protects the whole app (the page, Gradio's routes and the API; API clients send it as HTTP Basic
credentials); with both flags, --api-auth protects the API and its docs, --gradio-auth the page and Gradio's routes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sdui.app.flags import Flags
from sdui.errors import UserError


@dataclass(frozen=True)
class Credentials:
    api: dict[str, str]  # /sdapi/v1, /docs, /redoc, /openapi.json
    ui: dict[str, str]  # the page and Gradio's routes (queue, upload, files)

    @classmethod
    def from_flags(cls, flags: Flags) -> Credentials:
        api = parse_credentials(flags.api_auth)
        ui_text = flags.gradio_auth or ""
        if flags.gradio_auth_path:
            try:
                lines = Path(flags.gradio_auth_path).read_text(encoding="utf-8").splitlines()
            except OSError as e:
                raise UserError(
                    f"--gradio-auth-path {flags.gradio_auth_path}: cannot read it ({e.strerror})."
                ) from None
            ui_text = ",".join(filter(None, [ui_text, *lines]))
        ui = parse_credentials(ui_text)
        return cls(api=api or ui, ui=ui or api)


def parse_credentials(text: str | None) -> dict[str, str]:
    """ "user:pass[,user2:pass2]" -> {user: pass}. Split on the first colon only, so a password may hold colons."""
    credentials: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        user, sep, password = item.partition(":")
        if not sep or not user:
            raise UserError(f"Credentials must look like user:password (several separated by commas); got {item!r}.")
        credentials[user] = password
    return credentials
