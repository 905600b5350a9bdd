"""/docs, /redoc and /openapi.json, behind the API's password like the API they describe.

Swagger UI's and ReDoc's files come from the fastapi-offline package and are served here (/docs-assets/...), so
both pages work offline; FastAPI's default pages load them from a CDN and stay blank without the internet.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, Response

from sdui.api.routes import basic_auth_dependency

ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png", "redoc.standalone.js")
CACHE = {"Cache-Control": "public, max-age=86400"}
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"  # ReDoc's footer fetches its logo from its CDN


@functools.cache
def _offline_redoc(path: Path) -> bytes:
    """ReDoc's script with its one outside request (the footer logo) pointed at our favicon."""
    return path.read_bytes().replace(REDOC_LOGO, b"/docs-assets/favicon.png")


def _assets_dir() -> Path | None:
    """fastapi-offline's static folder, found without importing the package (its app factory is not needed)."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def add_docs_routes(app: FastAPI, credentials: dict[str, str]) -> None:
    """Call on an app made with docs_url=None, redoc_url=None, openapi_url=None."""
    dependencies = [Depends(basic_auth_dependency(credentials))] if credentials else []
    assets = _assets_dir()

    @app.get("/openapi.json", include_in_schema=False, dependencies=dependencies)
    def openapi():
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=dependencies)
    def docs():
        if assets is None:  # the package is missing: FastAPI's default, from the CDN
            return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs")
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    @app.get("/docs-assets/{name}", include_in_schema=False, dependencies=dependencies)
    def docs_asset(name: str):
        if assets is None or name not in ASSETS:  # a fixed list: no path from the client reaches the disk
            raise HTTPException(status_code=404, detail="Not Found")
        if name == "redoc.standalone.js":
            return Response(_offline_redoc(assets / name), media_type="text/javascript", headers=CACHE)
        return FileResponse(assets / name, headers=CACHE)

    @app.get("/redoc", include_in_schema=False, dependencies=dependencies)
    def redoc():
        if assets is None:
            return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - ReDoc")
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/favicon.png",
            with_google_fonts=False,  # a web font from Google: not offline, and not needed
        )
