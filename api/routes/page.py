"""``GET /`` and ``GET /static/...``: the search page and its files, served from ``api/static``.

The page is plain HTML, CSS and ES modules that call the public API
(``/v1/places``, ``/v1/search``, and ``/v1/alerts`` with the token a person
gives it) from the browser: nothing is built, and
nothing outside the server is loaded (its Content-Security-Policy says so).
Only files of the types listed in :data:`CONTENT_TYPES` are served, so the
notes and the build script beside the map data stay private.

Files are read on each request and answered with a strong ``ETag`` and
``Cache-Control: no-cache``: a browser keeps its copy and revalidates it
(a 304 when unchanged), so a new deploy shows at once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..problems import Problem
from ..responses import etag_matches

__all__ = ["router", "STATIC_DIR", "CONTENT_TYPES"]

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

# The page runs only its own code and talks only to this server.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

router = APIRouter(tags=["page"])


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
def page(request: Request) -> Response:
    """Return the search page."""
    return _file_response(request, STATIC_DIR / "index.html", {"Content-Security-Policy": CONTENT_SECURITY_POLICY})


@router.api_route("/static/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
def static_file(request: Request, path: str) -> Response:
    """Return a file of the page (script, style sheet, icons, map outlines)."""
    return _file_response(request, _static_path(path))


def _static_path(path: str) -> Path:
    """Return the file ``path`` names under the static directory, or raise a 404 problem."""
    parts = PurePosixPath(path).parts
    if not parts or any(part.startswith(".") or part in ("/", "\\") or "\\" in part for part in parts):
        raise _not_found(path)
    target = STATIC_DIR.joinpath(*parts).resolve()
    if target.suffix not in CONTENT_TYPES or not target.is_relative_to(STATIC_DIR) or not target.is_file():
        raise _not_found(path)
    return target


def _file_response(request: Request, target: Path, headers: dict[str, str] | None = None) -> Response:
    body = target.read_bytes()
    tag = f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'
    all_headers = {**_HEADERS, "ETag": tag, **(headers or {})}
    condition = request.headers.get("if-none-match")
    if condition is not None and etag_matches(condition, tag):
        return Response(status_code=304, headers={**all_headers, "Vary": "Accept-Encoding"})
    return Response(body, headers=all_headers, media_type=CONTENT_TYPES[target.suffix])


def _not_found(path: str) -> Problem:
    return Problem(404, f"no such file of the page: /static/{path[:200]}", code="no_such_endpoint")
