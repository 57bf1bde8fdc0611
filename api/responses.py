"""JSON responses encoded by orjson, and the validators that let a reverse proxy cache them.

A cacheable response carries a weak ``ETag`` (a hash of the body: weak,
because the gzip and identity encodings of one body share it) and
``Cache-Control: public, max-age=N``. A request whose ``If-None-Match``
names the current tag gets ``304 Not Modified`` with no body.

>>> tag = etag_of(b'{"total":0}')
>>> tag
'W/"31f48ed33afe7e437efa2c30"'
>>> etag_matches(f'"x", {tag}', tag), etag_matches("*", tag), etag_matches('"other"', tag)
(True, True, False)
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping, Sequence

import orjson
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["json_response", "cached_json", "cacheable_answer", "cache_control", "revalidate", "etag_of", "etag_matches", "dumps", "GZIP_OPTIONS"]

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
# The 200 a 304 stands for varies by encoding (the gzip middleware says so on it, not on a 304).
_NOT_MODIFIED_VARY = b"Accept-Encoding"
# The app's GZipMiddleware, which also compresses the search fast path's answers.
GZIP_OPTIONS: dict[str, Any] = {"minimum_size": 1000, "compresslevel": 5}

RawHeaders = list[tuple[bytes, bytes]]


def dumps(data: Any) -> bytes:
    """Return ``data`` as JSON bytes (numpy scalars and arrays included)."""
    return orjson.dumps(data, option=_OPTIONS)


def json_response(data: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """Return a JSON response encoded by orjson."""
    return Response(dumps(data), status_code=status_code, headers=headers, media_type="application/json")


def cached_json(request: Request, body: bytes, max_age: int, *, public: bool = True, headers: Mapping[str, str] | None = None) -> Response:
    """Return ``body`` as a cacheable JSON response, or 304 if the client's copy is current.

    ``public=False`` (answers that needed a token) lets only the client cache it, not shared caches.
    """
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    status, raw = cacheable_answer(body, request.headers.get("if-none-match"), cache_control(max_age, public), extra)
    return Response(body if status == 200 else b"", status_code=status, headers={k.decode("latin-1"): v.decode("latin-1") for k, v in raw})


def cacheable_answer(body: bytes, if_none_match: str | None, caching: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> tuple[int, RawHeaders]:
    """Return the status and headers of ``body`` as a cacheable JSON answer: 304 (with no body) if the client's copy is current, else 200 with ``headers``.

    ``caching`` is the ``Cache-Control`` value (:func:`cache_control`).

    :func:`cached_json` and the search fast path (``api/fastpath.py``) both answer by it.
    """
    tag, current = revalidate(body, if_none_match)
    cache = [(b"etag", tag.encode("latin-1")), (b"cache-control", caching.encode("latin-1"))]
    if current:
        return 304, [*cache, (b"vary", _NOT_MODIFIED_VARY)]
    return 200, [*cache, *headers, (b"content-length", str(len(body)).encode("latin-1")), (b"content-type", b"application/json")]


def cache_control(max_age: int, public: bool = True) -> str:
    """Return the ``Cache-Control`` of a cacheable answer: shared caches may keep public ones."""
    return f"{'public' if public else 'private'}, max-age={max_age}"


def revalidate(body: bytes, if_none_match: str | None) -> tuple[str, bool]:
    """Return the ETag of ``body`` and whether ``If-None-Match`` names it (the client's copy is current: answer 304)."""
    tag = etag_of(body)
    return tag, if_none_match is not None and etag_matches(if_none_match, tag)


def etag_of(body: bytes) -> str:
    """Return the weak entity tag of a response body."""
    return f'W/"{hashlib.sha256(body).hexdigest()[:24]}"'


def etag_matches(if_none_match: str, tag: str) -> bool:
    """Tell whether an ``If-None-Match`` header names ``tag`` (weak comparison, RFC 9110 section 13.1.2)."""
    if if_none_match.strip() == "*":
        return True
    opaque = tag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == opaque for candidate in if_none_match.split(","))
