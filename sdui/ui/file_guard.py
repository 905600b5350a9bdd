"""Files a browser may name in a Gradio event: only those Gradio itself received, or inside the allowed folders.

A Gradio event's JSON carries file inputs as FileData objects with a `path` on the server. Gradio opens whatever
path a client writes there (tried: PNG Info read a PNG from /root), so any page that can reach the queue could read
images and their text from anywhere on the disk. This middleware reads every event body before Gradio does and
refuses (403) one that names a file outside Gradio's upload folder and the allowed folders, after resolving symbolic
links, or a URL (this program fetches nothing).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

EVENT_MARKERS = ("/queue/join", "/run/", "/call/", "/api/")
MAX_EVENT_BODY = 256 * 2**20  # Gradio events carry paths, not file contents (uploads go to /upload)


def file_paths(value) -> Iterator[str]:
    """Every FileData `path` inside a decoded JSON value, or its `url` where it has no path. (An upload from the
    page carries both: the path Gradio saved it under, which Gradio opens, and the URL the page shows it from,
    which Gradio ignores for an input.)"""
    if isinstance(value, dict):
        path = value.get("path")
        if isinstance(path, str) and ("meta" in value or "orig_name" in value or "url" in value):
            yield path
        elif isinstance(value.get("url"), str) and value.get("url"):
            yield value["url"]
        for item in value.values():
            yield from file_paths(item)
    elif isinstance(value, list):
        for item in value:
            yield from file_paths(item)


class GradioFileGuard:
    def __init__(self, app, allowed_dirs: list[Path]):
        self.app = app
        self.allowed = [Path(os.path.realpath(d)) for d in allowed_dirs]

    def allowed_path(self, path: str) -> bool:
        if "://" in path:
            return False
        real = Path(os.path.realpath(path))
        return any(real.is_relative_to(folder) for folder in self.allowed)

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not any(marker in scope.get("path", "") for marker in EVENT_MARKERS)
        ):
            return await self.app(scope, receive, send)
        body, messages = b"", []
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if len(body) > MAX_EVENT_BODY:
                return await _refuse(send, 413, "The event is too large.")
            if not message.get("more_body"):
                break
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None  # not JSON: Gradio answers it itself
        refused = [p for p in file_paths(data) if not self.allowed_path(p)]
        if refused:
            log.warning("Refused a Gradio event naming files outside the allowed folders: %s", refused[:3])
            return await _refuse(
                send,
                403,
                "File refused: only files uploaded to this page, or inside the allowed "
                "folders, may be used. Upload the image instead of naming a path.",
            )

        async def replay():
            return messages.pop(0) if messages else await receive()

        return await self.app(scope, replay, send)


async def _refuse(send, status: int, detail: str) -> None:
    body = json.dumps({"error": "FileRefused", "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
