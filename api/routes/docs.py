"""``GET /docs``: the interactive API documentation (Swagger UI), served from this server.

FastAPI's default page loads Swagger UI from a CDN; here nothing outside the
machine may be reached, so the files come from the ``swagger-ui-bundle``
package.
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import FileResponse, HTMLResponse

from ..problems import Problem

__all__ = ["router"]

SWAGGER_DIR = Path(swagger_ui_bundle.swagger_ui_path)
_FILES = {"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"}

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title="tripsearch API",
        swagger_js_url="/docs/files/swagger-ui-bundle.js",
        swagger_css_url="/docs/files/swagger-ui.css",
        swagger_favicon_url="/docs/files/favicon-32x32.png",
    )


@router.get("/docs/files/{name}")
def docs_file(name: str) -> FileResponse:
    if name not in _FILES:
        raise Problem(404, f"no documentation file {name!r}", code="not_found", field="name")
    return FileResponse(SWAGGER_DIR / name, headers={"Cache-Control": "public, max-age=86400"})
