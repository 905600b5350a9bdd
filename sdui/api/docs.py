"""/docs, /redoc and /openapi.json, behind the API's password like the API they describe.

Swagger UI's files (version 5, which reads FastAPI's OpenAPI 3.1) come from the swagger-ui-py package and are
served here (/docs-assets/...), so the page works offline; FastAPI's default pages load them from a CDN and stay
blank without the internet. ReDoc has no packaged copy: /redoc sends the reader to /docs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse

from sdui.api.routes import basic_auth_dependency

ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")


def _assets_dir() -> Path | None:
    """swagger-ui-py's static folder, found without importing the package (its framework glue is not needed)."""
    spec = importlib.util.find_spec("swagger_ui")
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
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    @app.get("/docs-assets/{name}", include_in_schema=False, dependencies=dependencies)
    def docs_asset(name: str):
        if assets is None or name not in ASSETS:  # a fixed list: no path from the client reaches the disk
            raise HTTPException(status_code=404, detail="Not Found")
        return FileResponse(assets / name, headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/redoc", include_in_schema=False, dependencies=dependencies)
    def redoc():
        return RedirectResponse("/docs")
