"""ASGI middleware for the whole app: the Host check (DNS rebinding), the Origin check (cross-site requests from
browsers), and the optional request log."""

from __future__ import annotations

import ipaddress
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


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


class HostCheckMiddleware:
    """DNS rebinding: a page of evil.example whose name the attacker then points at 127.0.0.1 reaches this server as
    its own origin; its requests say `Host: evil.example:7860`. Only Hosts that name this server are served: IP
    addresses, localhost, the --server-name, and the names of --allowed-hosts ("*" turns the check off)."""

    def __init__(self, app, allowed_hosts: set[str] | None = None):
        self.app = app
        self.allowed = {h.lower() for h in (allowed_hosts or set())}

    def allowed_host(self, host: str) -> bool:
        name, _ = _host_port(host, "http")
        return (
            "*" in self.allowed
            or not name
            or _is_ip(name)
            or name == "localhost"
            or name.endswith(".localhost")
            or name in self.allowed
        )

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), "")
        if self.allowed_host(host):
            return await self.app(scope, receive, send)
        log.warning("Refused a request for host %r (not a name of this server)", host)
        message = (
            f"This server does not answer to the host name {host!r}. If that is its name on your network, "
            f"start it with --allowed-hosts {_host_port(host, 'http')[0]}"
        )
        await _json_response(send, scope, 403, "HostNotAllowed", message)


class OriginCheckMiddleware:
    """Cross-site requests from browsers. A page on another site can make the user's browser send requests here
    (CSRF); browsers always add an Origin header to them. A state-changing request whose Origin is not this server
    (same scheme, host and port, no user info) or an origin allowed with --cors-allow-origins is answered 403, and
    no response to such an Origin carries CORS permissions, so the page cannot read what it fetched either.
    Clients that are not browsers (curl, Python) send no Origin and are unaffected."""

    def __init__(self, app, allowed_origins: list[str] | None = None, allowed_regex: str | None = None):
        self.app = app
        self.allowed = {o.lower() for o in (allowed_origins or [])}
        self.allowed_regex = re.compile(allowed_regex) if allowed_regex else None

    def allowed_origin(self, origin: str, host: str | None, scheme: str) -> bool:
        if origin.lower().rstrip("/") in self.allowed:
            return True
        if self.allowed_regex is not None and self.allowed_regex.fullmatch(origin):
            return True
        parts = urlsplit(origin)
        if origin == "null" or not parts.scheme or not parts.netloc or "@" in parts.netloc:
            return False  # sandboxed frames and file:// pages; user info never appears in a real Origin
        if parts.scheme != {"ws": "http", "wss": "https"}.get(scheme, scheme):
            return False
        return host is not None and _host_port(host, scheme) == _host_port(parts.netloc, parts.scheme)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        origin = headers.get("origin")
        if origin is None or self.allowed_origin(origin, headers.get("host"), scope.get("scheme", "http")):
            return await self.app(scope, receive, send)
        method = scope.get("method", "GET")
        if method in STATE_CHANGING or method == "OPTIONS" or scope["type"] == "websocket":
            log.warning("%s %s from origin %s refused (cross-site request)", method, scope.get("path"), origin)
            message = (
                f"Cross-origin request refused: a page from {origin} may not send {method} requests to "
                f"this server ({headers.get('host', '?')}). If you trust that site, start the server with "
                f"--cors-allow-origins {origin}"
            )
            return await _json_response(send, scope, 403, "CrossOriginRequestRefused", message)

        async def without_cors(message):
            # a GET may run (it changes nothing), but the foreign page gets no permission to read the answer
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [
                        (k, v) for k, v in message.get("headers", []) if not k.lower().startswith(b"access-control-")
                    ],
                }
            await send(message)

        return await self.app(scope, receive, without_cors)


async def _json_response(send, scope, status: int, error: str, message: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"error": error, "detail": message, "body": "", "errors": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AuthThrottleMiddleware:
    """Repeated wrong passwords are slowed down: once an address has failed `max_failures` times (a 401 answer to
    credentials it sent, or a refused Gradio login) within `window` seconds, its requests that carry credentials get
    429 until the window has passed since the last failure, whatever the password."""

    def __init__(self, app, max_failures: int = 5, window: float = 60.0):
        self.app = app
        self.max_failures, self.window = max_failures, window
        self.failures: dict[str, list[float]] = {}

    def _recent(self, address: str, now: float) -> list[float]:
        times = [t for t in self.failures.get(address, []) if now - t < self.window]
        if times:
            self.failures[address] = times
        else:
            self.failures.pop(address, None)
        return times

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        address = (scope.get("client") or ("?", 0))[0]
        login = scope["method"] == "POST" and scope.get("path", "").endswith("/login")
        carries = login or any(k == b"authorization" for k, _ in scope.get("headers", []))
        now = time.monotonic()
        recent = self._recent(address, now)
        if carries and len(recent) >= self.max_failures:
            wait = int(self.window - (now - recent[-1])) + 1
            log.warning("%d wrong passwords from %s: refusing credentials for %d s", len(recent), address, wait)
            body = json.dumps(
                {
                    "error": "TooManyFailures",
                    "detail": f"Too many wrong passwords from {address}; try again in {wait} seconds.",
                    "body": "",
                    "errors": "too many wrong passwords",
                }
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 429,
                    "headers": [(b"content-type", b"application/json"), (b"retry-after", str(wait).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body.encode()})
            return

        async def watch(message):
            if message["type"] == "http.response.start":
                status = message["status"]
                if carries and (status == 401 or (login and 400 <= status < 500)):  # a wrong password, not none
                    self.failures.setdefault(address, []).append(time.monotonic())
            await send(message)

        return await self.app(scope, receive, watch)


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
