"""``GET /v1/search`` answered in one ASGI layer, the hot path of every search box.

FastAPI's routing, dependency resolution and the Starlette middleware under
it cost about a tenth of an embedded search at 1,000,000 trips. This layer,
first in the app's middleware, answers a public ``GET /v1/search`` itself:
the same query parsing, engine call, body, ``ETag`` / ``304``, gzip and
metrics as the route in ``routes/search.py``, header for header and byte for
byte (``tests/api/test_fast_path.py`` compares the two on many requests).

Anything else goes on to the full app: other routes and methods, every
error (the engine raises and the full app answers with its problem+json),
requests with a body, searches that need a token, CORS, and the
Elasticsearch backend (whose searches wait on the network in the
threadpool).
"""

from __future__ import annotations

import time
import zlib

from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from .deps import EngineHolder
from .metrics import Metrics
from .responses import NOT_MODIFIED_VARY, cache_control, revalidate
from .routes.search import query_from_params, search_body
from .settings import Settings

__all__ = ["SearchFastPath", "SEARCH_PATH", "GZIP_MINIMUM_SIZE", "GZIP_LEVEL"]

SEARCH_PATH = "/v1/search"
# The app's GZipMiddleware settings; the fast path compresses as it does.
GZIP_MINIMUM_SIZE = 1000
GZIP_LEVEL = 5

Headers = list[tuple[bytes, bytes]]
_NOT_MODIFIED_VARY = NOT_MODIFIED_VARY.encode("latin-1")


class SearchFastPath:
    """Answer public embedded ``GET /v1/search`` requests directly; pass everything else to ``app``."""

    def __init__(self, app: ASGIApp, settings: Settings, holder: EngineHolder, metrics: Metrics) -> None:
        self.app = app
        self.holder = holder
        self.metrics = metrics
        self.enabled = settings.search_fast_path and settings.public_search and not settings.backend_url and not settings.cors_origins
        self.cache_control = cache_control(settings.cache_max_age).encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.enabled and scope["type"] == "http" and scope["path"] == SEARCH_PATH and scope["method"] == "GET":
            started = time.perf_counter()
            answer = self._answer(scope)
            if answer is not None:
                status, headers, body = answer
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                self.metrics.observe("GET", SEARCH_PATH, status, time.perf_counter() - started)
                return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope) -> tuple[int, Headers, bytes] | None:
        """Return (status, headers, body), or None to leave the request to the full app."""
        accept_encoding = if_none_match = None
        for name, value in scope["headers"]:
            if name in (b"content-length", b"transfer-encoding"):
                return None  # a GET with a body: the full app's limits and answers apply
            if name == b"accept-encoding" and accept_encoding is None:
                accept_encoding = value.decode("latin-1")
            elif name == b"if-none-match" and if_none_match is None:
                if_none_match = value.decode("latin-1")
        try:
            engine = self.holder.engine
            result = engine.search(query_from_params(QueryParams(scope["query_string"])))
            body, timing = search_body(result)
        except Exception:
            return None  # the full app raises the same error and answers it (problem+json, 503, logging)
        tag, current = revalidate(body, if_none_match)
        cache: Headers = [(b"etag", tag.encode("latin-1")), (b"cache-control", self.cache_control)]
        if current:
            return 304, [*cache, (b"vary", _NOT_MODIFIED_VARY)], b""
        headers = [*cache, (b"server-timing", timing.encode("latin-1"))]
        if accept_encoding is not None and "gzip" in accept_encoding and len(body) >= GZIP_MINIMUM_SIZE:
            compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            body = compressor.compress(body) + compressor.flush()
            headers += [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json"), (b"vary", b"Accept-Encoding"), (b"content-encoding", b"gzip")]
        else:
            headers += [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
        return 200, headers, body
