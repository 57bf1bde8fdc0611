"""Writes and reads of trip documents: ``PUT``, ``GET``, ``DELETE /v1/trips/{trip_id}``, ``POST /v1/trips/_bulk``
and ``PATCH /v1/trips/{trip_id}/occurrences/{date}`` (the seats of one date of a regular trip).

Writes need a token with the scope ``trips:write``. A write is applied
only if its version is higher than the stored one (``unchanged`` otherwise),
so indexers can retry freely.

``?refresh=wait_for`` answers once the write is searchable through every
worker, ``?refresh=true`` once it is searchable through the worker that
answers; without ``refresh`` the write becomes searchable within a refresh
interval. The backend keeps these promises (:data:`tripsearch.backend.Refresh`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tripsearch.backend import ItemResult, Refresh
from tripsearch.errors import InvalidTrip, NotFound

from ..auth import WriteAccess
from ..bodies import ndjson_lines, parse_json
from ..deps import EngineDep, SettingsDep
from ..models import BulkResponse, OccurrenceSeats, OccurrenceTrip, Trip, WriteResult
from ..occurrence_seats import parse_occurrence_date, parse_seats_body, set_occurrence_seats
from ..problems import Problem
from ..responses import json_response
from . import problems

__all__ = ["router", "refresh_mode"]

router = APIRouter(prefix="/v1/trips", tags=["trips"])

TripId = Annotated[str, Path(max_length=128, description="The trip's id (1 to 128 characters, no `/`).")]
RefreshParam = Annotated[
    str | None,
    Query(
        description="`wait_for`: answer once the write is searchable through every worker; "
        "`true` (or empty): searchable through the worker that answers; `false` (default): within a refresh interval.",
        json_schema_extra={"enum": ["false", "true", "wait_for", ""]},
    ),
]

VersionParam = Annotated[
    str | None,
    Query(
        description="The version of the delete event (an integer from 0 to 2^63-1): it applies only over a lower stored version, "
        "and leaves a tombstone at this version even when the trip is not stored yet, so a late lower version cannot bring it back.",
        json_schema_extra={"pattern": "^[0-9]{1,19}$"},
    ),
]

_TRIP_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{Trip.__name__}"}}}}}
_SEATS_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{OccurrenceSeats.__name__}"}}}}}
OccurrenceDate = Annotated[str, Path(description="The occurrence's date, `YYYY-MM-DD` (local, as in `Hit.occurrence`).", json_schema_extra={"pattern": r"^\d{4}-\d{2}-\d{2}$"})]
_NDJSON_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-ndjson": {
                "schema": {"type": "string", "description": "One trip document (JSON) per line; blank lines are skipped."},
            }
        },
    }
}


@router.put(
    "/{trip_id}",
    summary="Store a trip",
    response_model=WriteResult,
    responses=problems(400, 401, 403, 413, 422, 503),
    openapi_extra=_TRIP_BODY,
)
async def put_trip(trip_id: TripId, request: Request, engine: EngineDep, settings: SettingsDep, _: WriteAccess, refresh: RefreshParam = None) -> Response:
    """Store the trip if its `version` is higher than the stored one.

    The answer says `stored`, or `unchanged` when a version at least as high
    is already stored. A trip that breaks a rule gets 422 naming the field.
    """
    mode = refresh_mode(refresh)
    body = await request.body()
    doc = parse_json(body, settings.max_json_depth)
    if not isinstance(doc, dict):
        raise InvalidTrip("", "a trip must be a JSON object")
    if "id" not in doc:
        body = orjson.dumps({"id": trip_id, **doc})
    elif doc["id"] != trip_id:
        raise InvalidTrip("id", f"is {str(doc['id'])[:130]!r} in the body but {trip_id[:130]!r} in the path")
    report = await run_in_threadpool(engine.upsert, [body], refresh=mode)
    item = report.items[0]
    if item.result == "rejected":
        raise InvalidTrip(item.field or "", item.reason or "is not a valid trip")
    return json_response(_write_result(item))


@router.get(
    "/{trip_id}",
    summary="Get a trip",
    response_model=Trip,
    responses=problems(400, 404, 413, 503),
)
async def get_trip(trip_id: TripId, engine: EngineDep) -> Response:
    """Return the stored document of a trip."""
    return json_response(await run_in_threadpool(engine.get, trip_id))


@router.delete(
    "/{trip_id}",
    summary="Delete a trip",
    response_model=WriteResult,
    responses=problems(400, 401, 403, 404, 413, 503),
)
async def delete_trip(trip_id: TripId, engine: EngineDep, _: WriteAccess, refresh: RefreshParam = None, version: VersionParam = None) -> Response:
    """Delete a trip. Its version is kept, so a late write of a lower version cannot bring it back.

    Without `version`, a trip that is not stored gets 404. With `version`
    (a delete event of an event stream), the answer is 200 either way:
    `deleted` when a live trip of a lower version was deleted, `not_found`
    when there was none (a tombstone at `version` is recorded all the same,
    unless a version at least as high is stored).
    """
    mode = refresh_mode(refresh)
    target: str | tuple[str, int] = trip_id if version is None else (trip_id, delete_version(version))
    report = await run_in_threadpool(engine.delete, [target], refresh=mode)
    item = report.items[0]
    if item.result == "not_found" and version is None:
        raise NotFound(trip_id)
    return json_response(_write_result(item))


@router.patch(
    "/{trip_id}/occurrences/{date}",
    summary="Change the seats of one occurrence of a regular trip",
    response_model=OccurrenceTrip,
    responses=problems(400, 401, 403, 404, 409, 413, 422, 503),
    openapi_extra=_SEATS_BODY,
)
async def patch_occurrence(trip_id: TripId, date: OccurrenceDate, request: Request, engine: EngineDep, settings: SettingsDep, _: WriteAccess, refresh: RefreshParam = None) -> Response:
    """Set `seats_available` of the regular trip's occurrence on `date`, e.g. after a booking on that date.

    The stored document gets that date's exception with the new seats (its
    `time` kept) and is written as the next version (`version + 1`), under the
    same versioning rule as `PUT`; other dates keep their seats. The answer is
    the occurrence's new document, as search returns it in `trip`.
    404 (`not_found`) for an unknown trip; 404 (`occurrence_not_found`) for a
    one-off trip or a date the trip does not run on; 422 naming `date` or
    `seats_available` when one is invalid (seats above `seats_total` too);
    409 (`conflict`) when other writes keep storing the next version first:
    read the trip again and retry.
    """
    mode = refresh_mode(refresh)
    day = parse_occurrence_date(date)
    seats = parse_seats_body(parse_json(await request.body(), settings.max_json_depth))
    return json_response(await run_in_threadpool(set_occurrence_seats, engine, trip_id, day, seats, mode))


@router.post(
    "/_bulk",
    summary="Store many trips (NDJSON)",
    response_model=BulkResponse,
    responses=problems(400, 401, 403, 413, 503),
    openapi_extra=_NDJSON_BODY,
)
async def bulk(request: Request, engine: EngineDep, settings: SettingsDep, _: WriteAccess, refresh: RefreshParam = None) -> Response:
    """Store the trips of an NDJSON body, one per line, each as `PUT` would.

    The answer has one item per non-blank line, in order, with its line
    number in the body: `stored`, `unchanged` (by version) or `rejected`
    with the field and the reason. Rejected lines do not fail the others.
    At most TRIPSEARCH_MAX_BULK_LINES lines (default 10,000) and
    TRIPSEARCH_MAX_BULK_BYTES (default 10 MiB) per request: more gets 413.
    """
    mode = refresh_mode(refresh)
    numbers, lines = ndjson_lines(await request.body(), settings.max_bulk_lines)
    report = await run_in_threadpool(engine.upsert, lines, refresh=mode)
    items = [replace(item, line=numbers[item.line - 1]).to_dict() for item in report.items]
    return json_response({"stored": report.stored, "unchanged": report.unchanged, "rejected": report.rejected, "items": items})


def refresh_mode(value: str | None) -> Refresh:
    """Return the refresh mode of a ``?refresh=`` value (empty means ``true``, as in Elasticsearch)."""
    if value is None or value == "false":
        return False
    if value in ("", "true"):
        return True
    if value == "wait_for":
        return "wait_for"
    raise Problem(400, f"refresh: must be false, true or wait_for, got {value[:40]!r}", code="invalid_parameter", field="refresh")


def delete_version(value: str) -> int:
    """Return the version of a ``?version=`` value, or answer 400 naming the parameter."""
    if not (value.isascii() and value.isdigit() and len(value) <= 19 and int(value) < 2**63):
        raise Problem(400, f"version: must be an integer from 0 to 2^63-1, got {value[:40]!r}", code="invalid_parameter", field="version")
    return int(value)


def _write_result(item: ItemResult) -> dict[str, Any]:
    out: dict[str, Any] = {"id": item.id, "result": item.result}
    if item.version is not None:
        out["version"] = item.version
    if item.reason is not None:
        out["reason"] = item.reason
    return out
