"""Every API failure answers JSON in A1111's shape: {"error", "detail", "body", "errors"}; the server keeps running.

A UserError (the client's or the user's to fix) keeps its status code and message; a validation failure is 422;
an HTTPException keeps its code; anything else is our bug: 500, with the traceback in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from sdui.errors import UserError

log = logging.getLogger(__name__)


def error_response(
    status_code: int,
    error: str,
    detail: Any,
    *,
    body: Any = "",
    errors: str | None = None,
    headers: dict | None = None,
    **extra: Any,
) -> JSONResponse:
    content = {
        "error": error,
        "detail": detail,
        "body": body,
        "errors": errors if errors is not None else (detail if isinstance(detail, str) else str(detail)),
        **extra,
    }
    return JSONResponse(status_code=status_code, content=jsonable_encoder(content), headers=headers)


def user_error_response(request: Request, exc: UserError) -> JSONResponse:
    log.warning(
        "%s %s -> %d %s: %s", request.method, request.url.path, exc.status_code, type(exc).__name__, exc.message
    )
    return error_response(exc.status_code, type(exc).__name__, exc.message, **exc.api_extra)


def unexpected_error_response(request: Request, exc: BaseException) -> JSONResponse:
    log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc, exc_info=exc)
    message = f"{type(exc).__name__}: {exc}"
    return error_response(500, type(exc).__name__, message, errors=str(exc))


async def _on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = jsonable_encoder(exc.errors())
    summary = (
        "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg')}" for e in errors)
        or "invalid request"
    )
    log.warning("%s %s -> 422 invalid request: %s", request.method, request.url.path, summary)
    return error_response(422, "RequestValidationError", errors, errors=summary)


async def _on_http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code >= 400 and exc.status_code != 404:
        log.warning("%s %s -> %d %s", request.method, request.url.path, exc.status_code, exc.detail)
    return error_response(exc.status_code, "HTTPException", exc.detail, headers=getattr(exc, "headers", None))


async def _on_user_error(request: Request, exc: UserError) -> JSONResponse:
    return user_error_response(request, exc)


def install_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(UserError, _on_user_error)


class ApiRoute(APIRoute):
    """Routes that turn any exception of their handler into the JSON error answer, so one failing request never
    becomes a bare 500 page or takes the server down; HTTP and validation errors go to the app's handlers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (StarletteHTTPException, RequestValidationError):
                raise
            except UserError as e:
                return user_error_response(request, e)
            except Exception as e:  # noqa: BLE001 - see the class docstring
                return unexpected_error_response(request, e)

        return guarded
