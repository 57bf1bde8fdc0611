"""Ride alerts: ``POST``/``GET /v1/alerts``, ``GET``/``DELETE /v1/alerts/{alert_id}``, ``GET /v1/alerts/{alert_id}/matches``.

Every route needs a token with the scope ``alerts:write``; the owner of an
alert is the token's ``sub``, and another owner's alert is not found (404,
not 403, so ids reveal nothing). The routes only move data: the alert
store (:mod:`tripsearch.alerts`) validates, stores and pages.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, AsyncIterator

import anyio
import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from tripsearch.alerts import AlertStore

from ..auth import AlertsAccess, Claims
from ..bodies import parse_json
from ..deps import EngineDep, SettingsDep
from ..models import Alert, AlertList, AlertMatches
from ..problems import Problem
from ..responses import json_response
from . import problems

__all__ = ["router", "MAX_MATCHES_PAGE", "STREAM_POLL_S", "STREAM_HEARTBEAT_S", "STREAM_MAX_S"]

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])

MAX_MATCHES_PAGE = 100
STREAM_POLL_S = 0.25  # how often a stream looks for new events in the shared store (any worker may have written them)
STREAM_HEARTBEAT_S = 15.0  # a comment line this often keeps proxies from closing an idle stream
STREAM_MAX_S = 300.0  # a stream ends after this long; the client reconnects with Last-Event-ID (EventSource does by itself)

AlertId = Annotated[str, Path(max_length=64, description="The alert's id, as `POST /v1/alerts` returned it.")]


async def alert_store(engine: EngineDep) -> AlertStore:
    """Return the alert store of this server's backend, or answer 503 when alerts are not set up."""
    opener = getattr(engine, "alerts", None)
    if opener is None:
        raise Problem(503, "alerts are not set up on this server: an Elasticsearch deployment needs TRIPSEARCH_ALERTS_DB", code="alerts_unavailable")
    store: AlertStore = await run_in_threadpool(opener)
    return store


StoreDep = Annotated[AlertStore, Depends(alert_store)]


def owner_of(claims: Claims) -> str:
    """Return the owner an alert belongs to: the token's ``sub``."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Problem(401, "the token has no 'sub' claim: alerts belong to the subject of the token", code="unauthorized", headers={"WWW-Authenticate": 'Bearer realm="tripsearch", error="invalid_token"'})
    return sub


@router.post(
    "",
    summary="Save an alert",
    status_code=201,
    response_model=Alert,
    responses=problems(400, 401, 403, 409, 413, 503),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AlertRequest"}}}}},
)
async def create_alert(request: Request, store: StoreDep, settings: SettingsDep, claims: AlertsAccess) -> Response:
    """Save a search to be told of every trip published (or changed) that it would find.

    The fields are those of `/v1/search` that select trips (`from`, `to`,
    radii, `seats`, `time_from`/`time_to`, `max_price`, `options`,
    `min_rating`), with `date` or `date_from` and `date_to` (at most 90
    days), and `webhook_url`: its host must resolve to public addresses
    (not loopback, private or link-local) unless the server allows them.
    A bad field gets 400 naming it; an owner with too many active alerts
    gets 409.
    """
    owner = owner_of(claims)
    fields = parse_json(await request.body(), settings.max_json_depth)
    record = await run_in_threadpool(store.create, owner, fields, settings.alerts_max_per_owner, settings.webhook_allow_private)
    return json_response(record.to_dict(store.now()), status_code=201, headers={"Location": f"/v1/alerts/{record.id}"})


@router.get("", summary="List my alerts", response_model=AlertList, responses=problems(401, 403, 503))
async def list_alerts(store: StoreDep, claims: AlertsAccess) -> Response:
    """Return the caller's alerts, newest first, active and expired (an expired one is purged 7 days after its last day)."""
    records = await run_in_threadpool(store.owner_alerts, owner_of(claims))
    now = store.now()
    return json_response({"alerts": [r.to_dict(now) for r in records]})


@router.get(
    "/stream",
    summary="Stream my alerts' events (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}, **problems(400, 401, 403, 503)},
)
async def stream_events(
    request: Request,
    store: StoreDep,
    claims: AlertsAccess,
    last_event_id: Annotated[str | None, Header(description="The `id` of the last event received: the stream resumes after it.")] = None,
) -> Response:
    """Stream the events of all the caller's alerts as Server-Sent Events, oldest first.

    Each event has `id` (its `seq`), `event` (`match`, `unmatch`, `cancel`)
    and `data` (the feed entry as JSON). Send `Last-Event-ID` to resume
    after an event (none is missed); without it the stream starts with the
    next event. The server ends a stream after a few minutes; reconnect with
    `Last-Event-ID` (browsers' `EventSource` does this by itself).
    """
    owner = owner_of(claims)
    if last_event_id is None or last_event_id.strip() == "":
        after = await run_in_threadpool(store.last_seq)
    elif last_event_id.strip().isdigit() and len(last_event_id.strip()) < 19:
        after = int(last_event_id.strip())
    else:
        raise Problem(400, "Last-Event-ID: must be the id of an event of this stream (an integer)", code="invalid_header", field="Last-Event-ID")
    return StreamingResponse(_events(request, store, owner, after), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _events(request: Request, store: AlertStore, owner: str, after: int) -> AsyncIterator[bytes]:
    yield b"retry: 1000\n\n"
    started = last_sent = time.monotonic()
    while time.monotonic() - started < STREAM_MAX_S and not await request.is_disconnected():
        events = await run_in_threadpool(store.owner_events, owner, after)
        for event in events:
            after = event.seq
            yield b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq, event.kind.encode(), orjson.dumps(event.to_dict()))
        if events:
            last_sent = time.monotonic()
            continue
        if time.monotonic() - last_sent >= STREAM_HEARTBEAT_S:
            last_sent = time.monotonic()
            yield b": keep-alive\n\n"
        await anyio.sleep(STREAM_POLL_S)


@router.get("/{alert_id}", summary="Get an alert", response_model=Alert, responses=problems(401, 403, 404, 503))
async def get_alert(alert_id: AlertId, store: StoreDep, claims: AlertsAccess) -> Response:
    """Return one of the caller's alerts; another owner's is not found (404)."""
    record = await run_in_threadpool(store.get, owner_of(claims), alert_id)
    return json_response(record.to_dict(store.now()))


@router.delete("/{alert_id}", summary="Delete an alert", status_code=204, responses=problems(401, 403, 404, 503))
async def delete_alert(alert_id: AlertId, store: StoreDep, claims: AlertsAccess) -> Response:
    """Delete one of the caller's alerts and its matches; another owner's is not found (404)."""
    await run_in_threadpool(store.delete, owner_of(claims), alert_id)
    return Response(status_code=204)


@router.get("/{alert_id}/matches", summary="Read an alert's matches", response_model=AlertMatches, responses=problems(400, 401, 403, 404, 503))
async def alert_matches(
    alert_id: AlertId,
    store: StoreDep,
    claims: AlertsAccess,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_MATCHES_PAGE, description="Most events per page.")] = 20,
) -> Response:
    """Return the alert's feed, newest first: `match` (with pickup and dropoff as in search hits), `unmatch` and `cancel` events.

    A trip updated while it still matches is not reported again; one that
    stops matching gets `unmatch` (reason `changed` or `full`), one
    cancelled or deleted gets `cancel`.
    """
    events, next_cursor = await run_in_threadpool(store.matches, owner_of(claims), alert_id, cursor, limit)
    body: dict[str, Any] = {"matches": [e.to_dict() for e in events], "next_cursor": next_cursor}
    return json_response(body)
