"""``GET /v1/search`` answered in one ASGI layer, the hot path of every search box.

FastAPI's routing, dependency resolution and the Starlette middleware under
it cost about a tenth of an embedded search at 1,000,000 trips. This layer,
first in the app's middleware, answers a public ``GET /v1/search`` itself:
the same query parsing, engine call, body, ``ETag`` / ``304``
(:func:`~api.responses.cacheable_answer`), gzip (the app's own
``GZipMiddleware``, with the same options) and metrics as the route in
``routes/search.py``, header for header and byte for byte
(``tests/api/test_fast_path.py`` compares the two on many requests).

Anything else goes on to the full app: other routes and methods, every
error (the engine raises and the full app answers with its problem+json),
requests with a body, searches that need a token, CORS, and the
Elasticsearch backend (whose searches wait on the network in the
threadpool).
"""

from __future__ import annotations

import time

from starlette.datastructures import QueryParams
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from .deps import EngineHolder
from .metrics import Metrics
from .responses import GZIP_OPTIONS, RawHeaders, cache_control, cacheable_answer
from .routes.search import query_from_params, search_body
from .settings import Settings

__all__ = ["SearchFastPath", "SEARCH_PATH"]

SEARCH_PATH = "/v1/search"
_ANSWER = "tripsearch.answer"  # the scope key that carries an answer to the gzip layer


class SearchFastPath:
    """Answer public embedded ``GET /v1/search`` requests directly; pass everything else to ``app``."""

    def __init__(self, app: ASGIApp, settings: Settings, holder: EngineHolder, metrics: Metrics) -> None:
        self.app = app
        self.holder = holder
        self.metrics = metrics
        self.enabled = settings.search_fast_path and settings.public_search and not settings.backend_url and not settings.cors_origins
        self.cache_control = cache_control(settings.cache_max_age)
        self.gzip = GZipMiddleware(_send_answer, **GZIP_OPTIONS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.enabled and scope["type"] == "http" and scope["path"] == SEARCH_PATH and scope["method"] == "GET":
            started = time.perf_counter()
            answer = self._answer(scope)
            if answer is not None:
                await self.gzip({**scope, _ANSWER: answer}, receive, send)
                self.metrics.observe("GET", SEARCH_PATH, answer[0], time.perf_counter() - started)
                return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope) -> tuple[int, RawHeaders, bytes] | None:
        """Return (status, headers, body) before gzip, or None to leave the request to the full app."""
        if_none_match = None
        for name, value in scope["headers"]:
            if name in (b"content-length", b"transfer-encoding"):
                return None  # a GET with a body: the full app's limits and answers apply
            if name == b"if-none-match" and if_none_match is None:
                if_none_match = value.decode("latin-1")
        try:
            engine = self.holder.engine
            result = engine.search(query_from_params(QueryParams(scope["query_string"])))
            body, timing = search_body(result)
        except Exception:
            return None  # the full app raises the same error and answers it (problem+json, 503, logging)
        status, headers = cacheable_answer(body, if_none_match, self.cache_control, [(b"server-timing", timing.encode("latin-1"))])
        return status, headers, body if status == 200 else b""


async def _send_answer(scope: Scope, receive: Receive, send: Send) -> None:
    """Send the answer :class:`SearchFastPath` put in the scope (the app under its gzip layer)."""
    status, headers, body = scope[_ANSWER]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
