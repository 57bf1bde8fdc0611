"""``/standard/v1/...``: the search routes of the standard covoiturage (French carpooling operators' shared API).

``GET /driver_journeys`` answers the engine's punctual trips and
regular-trip occurrences near a date and time; ``GET /driver_regular_trips``
answers the regular trips whose occurrences match a time of day on some
weekdays between two dates, with their schedules;
``GET /status`` says the service can answer. The passenger routes answer
501: tripsearch holds driver offers only.

The standard declares no authentication, so the routes are open unless
``TRIPSEARCH_STANDARD_API_KEYS`` is set; then the search routes need one of
those keys in ``X-API-Key`` (401 without it). A server whose search is not
public (``TRIPSEARCH_PUBLIC_SEARCH=false``) and that sets no key closes
them (401): they would otherwise serve the same trips to anyone. Errors on these routes carry
the standard's ``error`` member besides the problem members (see
:func:`~api.routes.standard_responses.standard_error`, applied in ``api/app.py``).
"""

from __future__ import annotations

import hmac
import time
from typing import Any, Callable, TypeVar
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ..deps import EngineDep, SettingsDep
from ..problems import PROBLEM_JSON, Problem
from ..responses import json_response
from .standard_responses import driver_journey, driver_regular_trip, operator_name, web_url_base
from ..settings import Settings
from .standard_search import (
    JOURNEY_PARAMETERS,
    REGULAR_TRIP_PARAMETERS,
    JourneySearch,
    RegularTripSearch,
    find_driver_journeys,
    find_driver_regular_trips,
    parse_journey_search,
    parse_regular_trip_search,
)

__all__ = ["router", "PREFIX", "API_KEY_HEADER"]

PREFIX = "/standard/v1"
API_KEY_HEADER = "X-API-Key"

_SPEC = "the standard covoiturage v1.0.0-alpha (fabmob/standard-covoiturage)"


def _error(description: str, media_type: str = PROBLEM_JSON) -> dict[str, Any]:
    schema = {"allOf": [{"$ref": "#/components/schemas/ProblemDetails"}, {"type": "object", "properties": {"error": {"type": "string", "description": "The standard's message: the same text as `detail`."}}}]}
    return {"description": description, "content": {media_type: {"schema": schema}}}


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("A parameter is missing or invalid; `error` names it and says why.", "application/json"),
    401: _error(f"`TRIPSEARCH_STANDARD_API_KEYS` is set and the request has no accepted `{API_KEY_HEADER}`."),
    503: _error("The backend cannot answer now (loading or unreachable); retry after `Retry-After` seconds."),
}
_ARRAY = {"type": "array", "items": {"type": "object"}}


async def require_api_key(request: Request, settings: SettingsDep) -> None:
    """Let the request through if it carries one of the configured API keys, or none is configured and search is public; else answer 401."""
    keys = settings.standard_api_keys
    if not keys:
        if settings.public_search:
            return
        # A server whose search needs a token must not serve the same trips openly here.
        raise Problem(
            401,
            f"{API_KEY_HEADER}: this server's search is not public and it gives no key for the standard routes (TRIPSEARCH_STANDARD_API_KEYS)",
            code="unauthorized",
            field=API_KEY_HEADER,
            headers={"WWW-Authenticate": f'ApiKey header="{API_KEY_HEADER}"'},
        )
    given = request.headers.get(API_KEY_HEADER, "").encode()
    # compare with every key, in constant time, so the answer's timing tells nothing about the keys
    if not any([hmac.compare_digest(given, key.encode()) for key in keys]):
        reason = "is missing" if not given else "is not an accepted key"
        raise Problem(401, f"{API_KEY_HEADER}: {reason}; this operator requires an API key on the standard routes", code="unauthorized", field=API_KEY_HEADER, headers={"WWW-Authenticate": f'ApiKey header="{API_KEY_HEADER}"'})


router = APIRouter(prefix=PREFIX, tags=["standard covoiturage"])
T = TypeVar("T")
searches = APIRouter(dependencies=[Depends(require_api_key)])


@searches.get(
    "/driver_journeys",
    summary="Standard: driver journeys near a date",
    responses={200: {"description": "DriverJourney objects as the standard defines them, closest to departureDate first.", "content": {"application/json": {"schema": _ARRAY}}}, **_ERRORS},
    openapi_extra={"parameters": JOURNEY_PARAMETERS},
)
async def driver_journeys(request: Request, engine: EngineDep, settings: SettingsDep) -> Response:
    """Return the driver journeys (one-off trips and regular trips' occurrences) from `departureLat,departureLng` to `arrivalLat,arrivalLng` near `departureDate`.

    `departureDate` (Unix seconds) is read as a local date and time in the
    operator's time zone (`TRIPSEARCH_STANDARD_TIMEZONE`, default
    Europe/Paris); a journey matches when its pickup, in the trip's own local
    time, is within `timeDelta` seconds of it (default 900), with the pickup
    within `departureRadius` km of the departure point and the dropoff within
    `arrivalRadius` km of the arrival point (default 1 km each). Closest in time
    first; at most `count` (all, up to 1000, when missing). A regular trip's
    occurrence is a journey of its own, whose `id` is `trip-id/YYYY-MM-DD`.
    """
    search = parse_journey_search(request.query_params)
    hits = await _find(settings, find_driver_journeys, engine, search, ZoneInfo(settings.standard_timezone))
    operator, base, searched = _answer_context(request, settings, search)
    return json_response([driver_journey(hit, operator, base, searched) for hit in hits])


@searches.get(
    "/driver_regular_trips",
    summary="Standard: driver regular trips",
    responses={200: {"description": "Regular driver trips (DriverTrip objects) with their schedules, as the standard defines them; closest to departureTimeOfDay first.", "content": {"application/json": {"schema": _ARRAY}}}, **_ERRORS},
    openapi_extra={"parameters": REGULAR_TRIP_PARAMETERS},
)
async def driver_regular_trips(request: Request, engine: EngineDep, settings: SettingsDep) -> Response:
    """Return the regular driver trips matching `departureTimeOfDay` on `departureWeekdays`, between `minDepartureDate` and `maxDepartureDate`.

    An occurrence matches when its pickup, in the trip's own local time, is
    within `timeDelta` seconds of `departureTimeOfDay` (across midnight too),
    on one of `departureWeekdays` (all by default), with the pickup within
    `departureRadius` km of the departure point and the dropoff within
    `arrivalRadius` km of the arrival point (1 km each by default), between
    `minDepartureDate` (default now) and `maxDepartureDate` (default four
    weeks later; at most a year after the minimum). Each trip comes once,
    with `schedules`: one per pickup weekday and time of day, listing the
    matching dates (`journeySchedules`, whose ids are those of
    `driver_journeys`). Closest in time first; at most `count` trips.
    """
    search = parse_regular_trip_search(request.query_params)
    found = await _find(settings, find_driver_regular_trips, engine, search, int(time.time()))
    operator, base, searched = _answer_context(request, settings, search)
    return json_response([driver_regular_trip(hits, operator, base, searched) for hits in found])


async def _find(settings: Settings, find: Callable[..., T], *args: Any) -> T:
    """Run a search: on Elasticsearch, which waits on the network, in a thread so other requests run meanwhile (as /v1/search does)."""
    if settings.backend_url:
        return await run_in_threadpool(find, *args)
    return find(*args)


def _answer_context(request: Request, settings: Settings, search: JourneySearch | RegularTripSearch) -> tuple[str, str, tuple[Any, ...]]:
    """Return the operator name, the base of web URLs and the searched places and radii that answers carry."""
    base = web_url_base(settings.standard_web_url, str(request.base_url))
    return operator_name(settings.standard_operator, base), base, (search.departure, search.arrival, search.departure_radius, search.arrival_radius)


def _not_implemented(kind: str) -> Problem:
    return Problem(501, f"tripsearch holds driver offers only: there are no passenger {kind} to search yet", code="not_implemented")


_PASSENGER: dict[int | str, dict[str, Any]] = {501: _error("tripsearch holds driver offers only; passenger routes answer 501 until passenger offers exist.")}


@searches.get("/passenger_journeys", summary="Standard: passenger journeys (not implemented)", responses=_PASSENGER)
async def passenger_journeys() -> Response:
    """Answer 501: tripsearch holds driver offers only, so there are no passenger journeys to search."""
    raise _not_implemented("journeys")


@searches.get("/passenger_regular_trips", summary="Standard: passenger regular trips (not implemented)", responses=_PASSENGER)
async def passenger_regular_trips() -> Response:
    """Answer 501: tripsearch holds driver offers only, so there are no passenger regular trips to search."""
    raise _not_implemented("regular trips")


@router.get(
    "/status",
    summary="Standard: status",
    responses={200: {"description": "The service can answer searches.", "content": {"application/json": {"schema": {"type": "object"}}}}, 503: _ERRORS[503]},
)
async def status(engine: EngineDep) -> Response:
    """Answer 200 when the backend is open (no API key needed); 503 while it loads."""
    return json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


router.include_router(searches)
