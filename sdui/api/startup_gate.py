"""The port opens before the app is built: importing torch and Gradio and building the UI takes seconds, and a user or a
client should not meet "connection refused" meanwhile.

`StartupGate` is the ASGI app uvicorn serves from the first moment. Until the real app is handed over (`open`), a
browser asking for a page gets a small "starting" page that reloads itself, and every other request waits for the
app (up to `wait_s`, then a 503 with Retry-After). Once open, everything goes to the app; its lifespan (Gradio's queue
starts there) is run here, on uvicorn's loop, when it arrives, and stopped when uvicorn stops. Plain ASGI: importing
this costs nothing.
"""

from __future__ import annotations

import asyncio
import json
import threading

STARTING_PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>Stable Diffusion - starting</title></head>
<body style="font-family: sans-serif; margin: 3em; color: #444">
<p>Starting: loading the libraries and building the page. This page reloads itself in a moment.</p></body></html>"""


class StartupGate:
    def __init__(self, wait_s: float = 600.0):
        self.wait_s = wait_s
        self.app = None
        self.failed = False  # building the app failed: nothing will come
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self._arrived: asyncio.Event | None = None
        self._pending = None  # an app handed over before uvicorn's loop ran
        self._lock = threading.Lock()

    # ---- from the thread that builds the app ----
    def open(self, app) -> None:
        with self._lock:
            self._pending = app
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._arrived.set)

    def fail(self) -> None:
        """The app will not come: waiting requests get a 503 at once."""
        with self._lock:
            self.failed = True
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._arrived.set)

    # ---- ASGI ----
    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(scope, receive, send)
        if self.app is None:
            if scope["type"] == "http" and _wants_page(scope) and not self.failed:
                return await _answer(send, 503, STARTING_PAGE, "text/html; charset=utf-8")
            if self._ready is not None and not self.failed:
                try:
                    await asyncio.wait_for(self._ready.wait(), self.wait_s)
                except TimeoutError:
                    pass
            if self.app is None:
                if scope["type"] != "http":
                    return await send({"type": "websocket.close", "code": 1013})  # try again later
                detail = "The server could not start; see its console." if self.failed else "The server is starting."
                body = json.dumps({"error": "Starting", "detail": detail + " Retry in a few seconds."}).encode()
                return await _answer(send, 503, body, "application/json")
        return await self.app(scope, receive, send)

    async def _lifespan(self, scope, receive, send) -> None:
        message = await receive()  # lifespan.startup
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._ready, self._arrived = asyncio.Event(), asyncio.Event()
            if self._pending is not None or self.failed:
                self._arrived.set()
        await send({"type": "lifespan.startup.complete"})
        shutdown = asyncio.ensure_future(receive())
        arrived = asyncio.ensure_future(self._arrived.wait())
        await asyncio.wait({shutdown, arrived}, return_when=asyncio.FIRST_COMPLETED)
        inner = None
        if arrived.done() and self._pending is not None and not shutdown.done():
            inner = _InnerLifespan(self._pending, scope)
            if await inner.start():
                self.app = self._pending
            else:
                self.failed = True
        self._ready.set()  # waiting requests go on: to the app, or to a 503
        message = await shutdown
        arrived.cancel()
        if inner is not None:
            await inner.stop()
        if message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})


class _InnerLifespan:
    """The real app's lifespan, driven as uvicorn would drive it, sharing uvicorn's lifespan state."""

    def __init__(self, app, scope):
        self.app = app
        self.scope = {"type": "lifespan", "asgi": scope.get("asgi", {}), "state": scope.get("state", {})}
        self.queue: asyncio.Queue = asyncio.Queue()
        self.replies: asyncio.Queue = asyncio.Queue()
        self.task: asyncio.Task | None = None

    async def start(self) -> bool:
        await self.queue.put({"type": "lifespan.startup"})
        self.task = asyncio.ensure_future(self.app(self.scope, self.queue.get, self.replies.put))
        reply = asyncio.ensure_future(self.replies.get())
        await asyncio.wait({reply, self.task}, return_when=asyncio.FIRST_COMPLETED)
        if not reply.done():  # the app's lifespan ended (or raised) without answering
            reply.cancel()
            return False
        return reply.result()["type"] == "lifespan.startup.complete"

    async def stop(self) -> None:
        if self.task is None or self.task.done():
            return
        await self.queue.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(self.replies.get(), 10)
        except TimeoutError:
            self.task.cancel()


def _wants_page(scope) -> bool:
    headers = dict(scope.get("headers") or [])
    return scope.get("method") == "GET" and b"text/html" in headers.get(b"accept", b"")


async def _answer(send, status: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"2"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
