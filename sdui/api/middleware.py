"""ASGI middleware for the whole app: refuse cross-site state changes from browsers; optional request log.

A web page on another site can make the user's browser POST to http://127.0.0.1:7860 (CSRF). Browsers always
send an Origin header with such requests, so a state-changing request whose Origin is not this server (or an
origin the user allowed with --cors-allow-origins) is answered 403. Clients that are not browsers (curl, Python)
send no Origin and are unaffected.
"""

from __future__ import annotations

import json
import logging
import re
import time
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _host_port(netloc: str, scheme: str) -> tuple[str, int | None]:
    parts = urlsplit(f"//{netloc}")
    try:
        port = parts.port
    except ValueError:
        port = None
    return (parts.hostname or "").lower(), port if port is not None else _DEFAULT_PORTS.get(scheme)


def split_origins(text: str | None) -> list[str]:
    return [o.strip().rstrip("/") for o in (text or "").split(",") if o.strip()]


class OriginCheckMiddleware:
    def __init__(self, app, allowed_origins: list[str] | None = None, allowed_regex: str | None = None):
        self.app = app
        self.allowed = {o.lower() for o in (allowed_origins or [])}
        self.allowed_regex = re.compile(allowed_regex) if allowed_regex else None

    def _allowed(self, origin: str, headers: dict[str, str], scheme: str) -> bool:
        if origin.lower().rstrip("/") in self.allowed:
            return True
        if self.allowed_regex is not None and self.allowed_regex.fullmatch(origin):
            return True
        if origin == "null":  # sandboxed frames, file:// pages
            return False
        parts = urlsplit(origin)
        if not parts.scheme or not parts.netloc:
            return False
        origin_host = _host_port(parts.netloc, parts.scheme)
        # behind a reverse proxy the browser's host arrives as X-Forwarded-Host; a cross-site page cannot set it
        # without a CORS preflight, which only --cors-allow-origins approves
        for candidate in (headers.get("host"), headers.get("x-forwarded-host")):
            if candidate and _host_port(candidate.split(",")[0].strip(), parts.scheme) == origin_host:
                return True
        return False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in STATE_CHANGING:
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        origin = headers.get("origin")
        if origin is None or self._allowed(origin, headers, scope.get("scheme", "http")):
            return await self.app(scope, receive, send)
        message = (
            f"Cross-origin request refused: a page from {origin} may not send {scope['method']} requests to "
            f"this server ({headers.get('host', '?')}). If you trust that site, start the server with "
            f"--cors-allow-origins {origin}"
        )
        log.warning("%s %s from origin %s refused (cross-site request)", scope["method"], scope.get("path"), origin)
        body = json.dumps(
            {"error": "CrossOriginRequestRefused", "detail": message, "body": "", "errors": message}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


class ApiLogMiddleware:
    """--api-log: one line per /sdapi request: method, path, status, client, duration."""

    def __init__(self, app, prefix: str = "/sdapi/"):
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope.get("path", "").startswith(self.prefix):
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = {"code": 0}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            client = scope.get("client") or ("?", 0)
            log.info(
                "API %s %s %s client=%s:%s %.3fs",
                scope["method"],
                scope["path"],
                status["code"],
                client[0],
                client[1],
                time.perf_counter() - started,
            )
