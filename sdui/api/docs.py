"""/docs, /redoc and /openapi.json, behind the API's password like the API they describe."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import JSONResponse

from sdui.api.routes import basic_auth_dependency


def add_docs_routes(app: FastAPI, credentials: dict[str, str]) -> None:
    """Call on an app made with docs_url=None, redoc_url=None, openapi_url=None."""
    dependencies = [Depends(basic_auth_dependency(credentials))] if credentials else []

    @app.get("/openapi.json", include_in_schema=False, dependencies=dependencies)
    def openapi():
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=dependencies)
    def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs")

    @app.get("/redoc", include_in_schema=False, dependencies=dependencies)
    def redoc():
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - ReDoc")
