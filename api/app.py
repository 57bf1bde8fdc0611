"""The application factory: routers, middleware and the mapping of errors to responses, in one place.

Run it with ``tripsearch serve`` or any ASGI server::

    uvicorn --factory api.app:create_app

An app holds no state of its own beyond its backend (which follows the
shared store) and its metrics, so any number of workers and machines can
serve the same data behind a load balancer.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Mapping

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

import tripsearch
from tripsearch.alerts import AlertStore
from tripsearch.alerts.delivery import WebhookSender
from tripsearch.backend import Backend
from tripsearch.errors import AlertLimitReached, BackendUnavailable, InvalidAlert, InvalidCursor, InvalidInput, InvalidTrip, NotFound, StoreReadOnly

from .auth import READ_SCOPE, TokenVerifier, require_scope
from .connections import KeepAliveLimit
from .deps import EngineHolder
from .fastpath import SearchFastPath
from .metrics import Metrics, MetricsMiddleware
from .models import register_schemas
from .problems import Problem, problem_response, retry_after_header
from .responses import GZIP_OPTIONS
from .routes import alerts, docs, health, page, places, search, standard, trips
from .routes.standard_responses import standard_error
from .settings import Settings

__all__ = ["create_app", "BodyLimitMiddleware"]

BULK_PATH = "/v1/trips/_bulk"

DESCRIPTION = """\
Exact geospatial search for shared car trips.

* Search (`/v1/search`) and place autocomplete (`/v1/places`) are public unless the server says otherwise.
* Writes (`/v1/trips/...`, including `PATCH /v1/trips/{trip_id}/occurrences/{date}`) need a bearer JWT with the scope `trips:write`.
* Alerts (`/v1/alerts...`) need a bearer JWT with the scope `alerts:write`; they belong to the token's `sub`.
* The standard covoiturage search routes (`/standard/v1/...`) are open unless the server requires an `X-API-Key`.
* Every error is `application/problem+json` (RFC 9457) with a `detail` naming the field; on `/standard/v1/...` it also carries the standard's `error` member (and a 400 is `application/json`, as the standard declares).
"""


def create_app(settings: Settings | None = None, *, opener: Callable[..., Backend] = tripsearch.open) -> FastAPI:
    """Return the API app; ``settings`` default to the ``TRIPSEARCH_*`` environment variables.

    ``opener`` opens the backend (``tripsearch.open`` with the settings' target and refresh interval).
    """
    settings = Settings.from_env() if settings is None else settings
    holder = EngineHolder(settings, opener)
    metrics = Metrics(lambda: _stats_if_open(holder))

    # every worker sends the alerts' due webhooks (leased, so each event goes out once per attempt)
    sender = WebhookSender(lambda: _alert_store_if_open(holder), retry_first_s=settings.webhook_retry_first_s, give_up_s=settings.webhook_give_up_s, allow_private=settings.webhook_allow_private)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder.start()
        sender.start()
        try:
            yield
        finally:
            await run_in_threadpool(sender.close)
            await run_in_threadpool(holder.close)

    middleware = [
        # Outermost: the N-th response of a kept-alive connection closes it, so connections rebalance over workers.
        Middleware(KeepAliveLimit, requests=settings.keepalive_requests),
        # Then: a public GET /v1/search is answered there, the same as the route would (api/fastpath.py).
        Middleware(SearchFastPath, settings=settings, holder=holder, metrics=metrics),
        Middleware(MetricsMiddleware, metrics=metrics),
    ]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "If-None-Match"],
                expose_headers=["ETag", "Retry-After", "Server-Timing"],
                max_age=600,
            )
        )
    middleware += [
        Middleware(GZipMiddleware, **GZIP_OPTIONS),
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, bulk_max_bytes=settings.max_bulk_bytes),
    ]
    app = FastAPI(
        title="tripsearch",
        version=tripsearch.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        middleware=middleware,
        exception_handlers=_EXCEPTION_HANDLERS,
        separate_input_output_schemas=False,
        docs_url=None,  # served by routes/docs.py from local files: no CDN can be reached
        redoc_url=None,  # ReDoc has no bundle on PyPI to serve locally; /docs shows the same document
    )
    app.state.settings = settings
    app.state.holder = holder
    app.state.metrics = metrics
    app.state.verifier = TokenVerifier(settings)

    public = [] if settings.public_search else [Depends(require_scope(READ_SCOPE))]
    app.include_router(search.router, dependencies=public)
    app.include_router(places.router, dependencies=public)
    app.include_router(trips.router)
    app.include_router(alerts.router)
    app.include_router(standard.router)  # open by default, or its own API keys: not the `public` dependency
    app.include_router(health.router)
    app.include_router(docs.router)
    app.include_router(page.router)  # the search page: no `public` dependency, so it loads even when search needs a token
    _document_hand_written_schemas(app)
    return app


def _alert_store_if_open(holder: EngineHolder) -> AlertStore | None:
    try:
        engine = holder.engine
    except BackendUnavailable:
        return None
    existing = getattr(engine, "existing_alerts", None)
    return existing() if existing is not None else None


def _stats_if_open(holder: EngineHolder) -> Mapping[str, Any] | None:
    try:
        return holder.engine.stats()
    except Exception:  # a scrape reports "not loaded" rather than fail when the backend does not answer
        return None


def _document_hand_written_schemas(app: FastAPI) -> None:
    """Add to the OpenAPI document the models that routes reference by hand (bodies the engine parses, problems)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            register_schemas(generate())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


class BodyLimitMiddleware:
    """Refuse bodies over the limit with 413: at once by ``Content-Length``, else while they arrive."""

    def __init__(self, app: ASGIApp, max_bytes: int, bulk_max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.bulk_max_bytes = bulk_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.bulk_max_bytes if scope["path"] == BULK_PATH else self.max_bytes
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await problem_response(400, "Content-Length must be a number of bytes", code="invalid_header", field="Content-Length")(scope, receive, send)
                return
            if int(declared) > limit:
                await _too_large(limit).response()(scope, receive, send)
                return
        received = 0

        async def receive_within_limit() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
            return message

        await self.app(scope, receive_within_limit, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1").strip())
    return None


def _too_large(limit: int) -> Problem:
    return Problem(413, f"the request body is larger than this server takes ({limit} bytes)", code="body_too_large", field="body")


# -- errors -> responses ------------------------------------------------------


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return exc.response()


async def _invalid_input(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidInput)
    if isinstance(exc, InvalidTrip):
        status, code = 422, "invalid_trip"
    else:
        status, code = 400, "invalid_cursor" if isinstance(exc, InvalidCursor) else "invalid_alert" if isinstance(exc, InvalidAlert) else "invalid_query"
    return problem_response(status, str(exc), code=code, field=exc.field or None)


async def _not_found(request: Request, exc: Exception) -> Response:
    return problem_response(404, str(exc), code="not_found")


async def _alert_limit(request: Request, exc: Exception) -> Response:
    return problem_response(409, str(exc), code="alert_limit_reached")


async def _unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BackendUnavailable)
    code = "store_read_only" if isinstance(exc, StoreReadOnly) else "backend_unavailable"
    return problem_response(503, exc.reason, code=code, headers=retry_after_header(exc.retry_after))


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    error = errors[0] if errors else {}
    location = [str(part) for part in error.get("loc", ())]  # e.g. ["query", "limit"]
    field = location[-1] if location else ""
    message = str(error.get("msg") or "is invalid")
    detail = f"{field}: {message[:1].lower()}{message[1:]}" if field else message
    status = 422 if location[:1] == ["body"] else 400
    return problem_response(status, detail, code="invalid_parameter", field=field or None)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        detail = f"no such endpoint: {request.url.path[:200]}"
    elif exc.status_code == 405:
        detail = f"{request.method[:20]} is not allowed on {request.url.path[:200]}"
    else:
        detail = str(exc.detail)
    code = {404: "no_such_endpoint", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return problem_response(exc.status_code, detail, code=code, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Starlette re-raises the exception after this answer, so the server logs the traceback; the client never sees it.
    return problem_response(500, "the server failed to answer; the error is logged", code="internal_error")


def _in_standard_shape(handler: Callable[[Request, Exception], Any]) -> Callable[[Request, Exception], Any]:
    """Return ``handler`` answering in the standard's error shape on the ``/standard/v1/`` routes."""

    async def handle(request: Request, exc: Exception) -> Response:
        response: Response = await handler(request, exc)
        if request.url.path.startswith(standard.PREFIX + "/"):
            return standard_error(response)
        return response

    return handle


_EXCEPTION_HANDLERS: dict[Any, Any] = {
    exc: _in_standard_shape(handler)
    for exc, handler in {
        Problem: _problem,
        InvalidInput: _invalid_input,
        NotFound: _not_found,
        AlertLimitReached: _alert_limit,
        BackendUnavailable: _unavailable,
        RequestValidationError: _request_validation,
        StarletteHTTPException: _http_error,
        Exception: _internal_error,
    }.items()
}
