"""Python client of the tripsearch HTTP API, sync and async (httpx).

It answers with the engine's own values (:class:`~tripsearch.SearchResult`,
:class:`~tripsearch.ItemResult`) and raises the engine's own errors
(:class:`~tripsearch.InvalidQuery`, :class:`~tripsearch.NotFound`,
:class:`~tripsearch.BackendUnavailable`, ...), so code written against an
engine reads the same against a server. Connection errors and 503 answers
are retried with exponential backoff (honouring ``Retry-After``); writes
are safe to retry because a version is never applied twice.

Example (against a running server)::

    from tripsearch.client import TripSearchClient

    with TripSearchClient("http://127.0.0.1:8000", token=TOKEN) as client:
        client.upsert(trip, refresh="wait_for")
        result = client.search({"from": "48.8566,2.3522", "to": "45.764,4.8357", "date": "2026-12-01"})
        results = client.bulk(open("trips.ndjson", "rb"), batch_size=1000)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from dataclasses import dataclass
from typing import Any, AsyncIterable, AsyncIterator, Callable, Generic, Iterable, Iterator, Literal, Mapping, Sequence, TypeVar
from urllib.parse import quote

import httpx
import orjson

from .backend import Hit, ItemResult, Point, SearchResult
from .errors import AlertNotFound, BackendUnavailable, InvalidAlert, InvalidCursor, InvalidQuery, InvalidTrip, NotFound, StoreReadOnly, TripSearchError
from .model import Trip, trip_to_json
from .query.model import Query
from .query.params import query_to_params

__all__ = [
    "TripSearchClient",
    "AsyncTripSearchClient",
    "Retry",
    "PlaceSuggestion",
    "APIError",
    "OccurrenceNotFound",
    "Refresh",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_BATCH_BYTES",
]

DEFAULT_BATCH_SIZE = 1000
# Under the server's default bulk limit of 10 MiB, with room to spare.
DEFAULT_BATCH_BYTES = 8 * 1024 * 1024
Refresh = bool | Literal["wait_for"]
TripLike = Mapping[str, Any] | Trip | bytes | str
_T = TypeVar("_T")


class APIError(TripSearchError):
    """An error answer that none of the engine's errors describes (401, 403, 413, 500, ...)."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        self.status = status
        self.problem = dict(problem)
        self.code: str | None = problem.get("code")
        super().__init__(f"HTTP {status}: {problem.get('detail') or problem.get('title') or 'error'}")


class OccurrenceNotFound(NotFound):
    """The trip is stored but has no occurrence on that date: a one-off trip, or a date its schedule does not run."""

    def __init__(self, trip_id: str, date: str, detail: str = "") -> None:
        super().__init__(trip_id)
        self.date = date
        self.detail = detail

    def __str__(self) -> str:
        return self.detail or f"trip {self.trip_id!r} has no occurrence on {self.date}"


@dataclass(frozen=True, slots=True)
class PlaceSuggestion:
    """A city that ``places`` offers."""

    name: str
    country: str
    lat: float
    lon: float
    population: int


@dataclass(frozen=True)
class Retry:
    """How often and how long to retry after a connection error or a 503."""

    attempts: int = 5  # retries after the first try
    backoff_s: float = 0.5
    max_backoff_s: float = 10.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Return the wait before retry number ``attempt`` (from 0): jittered exponential backoff, at least ``Retry-After``."""
        ceiling = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        return max(random.uniform(ceiling / 2, ceiling), min(retry_after or 0.0, self.max_backoff_s))


# -- requests and answers, shared by both clients ------------------------------


@dataclass(frozen=True)
class _Call(Generic[_T]):
    """One request and how to read its answer."""

    method: str
    url: str
    parse: Callable[[httpx.Response], _T]
    params: Mapping[str, str] | None = None
    content: bytes | None = None
    headers: Mapping[str, str] | None = None


def _search_call(query: Mapping[str, Any] | Query | None, fields: Mapping[str, Any]) -> _Call[SearchResult]:
    merged = dict(query.to_dict() if isinstance(query, Query) else query or {})
    merged.update(fields)
    return _Call("GET", "/v1/search", _read_search, params=query_to_params(merged))


def _read_search(response: httpx.Response) -> SearchResult:
    _raise_for(response)
    data = orjson.loads(response.content)
    hits = [
        Hit(id=h["id"], score=h["score"], pickup=_read_point(h["pickup"]), dropoff=_read_point(h["dropoff"]), source=h["trip"], sort=(), occurrence=h.get("occurrence"))
        for h in data["trips"]
    ]
    return SearchResult(total=data["total"], trips=hits, facets=data["facets"], next_cursor=data["next_cursor"], took_ms=_server_timing(response))


def _read_point(data: dict[str, Any]) -> Point:
    # The place is derived from the coordinates again on this side.
    return Point(lat=data["lat"], lon=data["lon"], distance_km=data["distance_km"], time=data["time"])


def _server_timing(response: httpx.Response) -> float:
    for part in response.headers.get("server-timing", "").split(","):
        name, _, rest = part.strip().partition(";")
        if name == "engine" and rest.startswith("dur="):
            try:
                return float(rest[4:])
            except ValueError:
                return 0.0
    return 0.0


def _places_call(q: str, limit: int) -> _Call[list[PlaceSuggestion]]:
    def read(response: httpx.Response) -> list[PlaceSuggestion]:
        _raise_for(response)
        return [PlaceSuggestion(**p) for p in orjson.loads(response.content)["places"]]

    return _Call("GET", "/v1/places", read, params={"q": q, "limit": str(limit)})


def _get_call(trip_id: str) -> _Call[dict[str, Any]]:
    def read(response: httpx.Response) -> dict[str, Any]:
        _raise_for(response, trip_id)
        doc: dict[str, Any] = orjson.loads(response.content)
        return doc

    return _Call("GET", _trip_url(trip_id), read)


def _upsert_call(trip: TripLike, refresh: Refresh) -> _Call[ItemResult]:
    body = _encode_trip(trip)
    trip_id = _id_of(trip, body)

    def read(response: httpx.Response) -> ItemResult:
        _raise_for(response, trip_id)
        data = orjson.loads(response.content)
        return ItemResult(1, data["id"], data["result"], data.get("version"), reason=data.get("reason"))

    return _Call("PUT", _trip_url(trip_id), read, params=_refresh_params(refresh), content=body, headers={"Content-Type": "application/json"})


def _delete_call(trip_id: str, refresh: Refresh, version: int | None) -> _Call[ItemResult]:
    def read(response: httpx.Response) -> ItemResult:
        if response.status_code == 404 and _problem(response).get("code") == "not_found":
            return ItemResult(1, trip_id, "not_found")
        _raise_for(response, trip_id)
        data = orjson.loads(response.content)
        return ItemResult(1, data["id"], data["result"], data.get("version"))

    params = {**(_refresh_params(refresh) or {}), **({"version": str(version)} if version is not None else {})}
    return _Call("DELETE", _trip_url(trip_id), read, params=params or None)


def _occurrence_seats_call(trip_id: str, date: str | dt.date, seats_available: int, refresh: Refresh) -> _Call[dict[str, Any]]:
    day = date.isoformat() if isinstance(date, dt.date) else str(date)

    def read(response: httpx.Response) -> dict[str, Any]:
        problem = _problem(response) if response.status_code == 404 else {}
        if problem.get("code") == "occurrence_not_found":
            raise OccurrenceNotFound(trip_id, day, str(problem.get("detail") or ""))
        _raise_for(response, trip_id)
        doc: dict[str, Any] = orjson.loads(response.content)
        return doc

    url = f"{_trip_url(trip_id)}/occurrences/{quote(day, safe='')}"
    body = orjson.dumps({"seats_available": seats_available})
    return _Call("PATCH", url, read, params=_refresh_params(refresh), content=body, headers={"Content-Type": "application/json"})


# -- the standard covoiturage routes ----------------------------------------------

_STANDARD = "/standard/v1"
STANDARD_API_KEY_HEADER = "X-API-Key"


def _standard_call(route: str, api_key: str | None, params: Mapping[str, Any]) -> _Call[list[dict[str, Any]]]:
    def read(response: httpx.Response) -> list[dict[str, Any]]:
        _raise_for(response)
        answer: list[dict[str, Any]] = orjson.loads(response.content)
        return answer

    text = {key: _standard_param(value) for key, value in params.items() if value is not None}
    return _Call("GET", f"{_STANDARD}/{route}", read, params=text, headers={STANDARD_API_KEY_HEADER: api_key} if api_key else None)


def _standard_param(value: Any) -> str:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise InvalidQuery("departureDate", "a datetime must carry a time zone (the standard takes Unix seconds)")
        return str(int(value.timestamp()))
    if isinstance(value, dt.time):
        return value.strftime("%H:%M:%S")
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _journey_params(departure: tuple[float, float], arrival: tuple[float, float], options: Mapping[str, Any]) -> dict[str, Any]:
    return {"departureLat": departure[0], "departureLng": departure[1], "arrivalLat": arrival[0], "arrivalLng": arrival[1], **options}


# -- alerts ---------------------------------------------------------------------


def _alert_url(alert_id: str | None = None, suffix: str = "") -> str:
    return "/v1/alerts" + (f"/{quote(str(alert_id), safe='')}" if alert_id is not None else "") + suffix


def _json_call(method: str, url: str, alert_id: str | None = None, body: Any = None, params: Mapping[str, str] | None = None) -> _Call[Any]:
    def read(response: httpx.Response) -> Any:
        _raise_for(response, alert_id=alert_id)
        return orjson.loads(response.content) if response.content else None

    content = orjson.dumps(body) if body is not None else None
    return _Call(method, url, read, params=params, content=content, headers={"Content-Type": "application/json"} if content else None)


def _matches_call(alert_id: str, cursor: str | None, limit: int) -> _Call[Any]:
    params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
    return _json_call("GET", _alert_url(alert_id, "/matches"), alert_id, params=params)


class _SSEParser:
    """Server-Sent Events, line by line: returns each complete event's ``data`` (JSON) and remembers the last ``id``."""

    def __init__(self, last_event_id: str | None) -> None:
        self.last_event_id = last_event_id
        self._fields: dict[str, str] = {}

    def feed(self, line: str) -> dict[str, Any] | None:
        if line == "":
            fields, self._fields = self._fields, {}
            if "data" not in fields:
                return None
            if "id" in fields:
                self.last_event_id = fields["id"]
            event: dict[str, Any] = orjson.loads(fields["data"])
            return event
        if not line.startswith(":"):
            name, _, value = line.partition(":")
            self._fields[name] = value[1:] if value.startswith(" ") else value
        return None

    def headers(self) -> dict[str, str]:
        return {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}


def _trip_url(trip_id: str) -> str:
    return f"/v1/trips/{quote(str(trip_id), safe='')}"


def _refresh_params(refresh: Refresh) -> dict[str, str] | None:
    if refresh == "wait_for":
        return {"refresh": "wait_for"}
    return {"refresh": "true"} if refresh else None


def _encode_trip(trip: TripLike) -> bytes:
    if isinstance(trip, bytes):
        return trip
    if isinstance(trip, str):
        return trip.encode()
    if isinstance(trip, Trip):
        return trip_to_json(trip)
    return orjson.dumps(trip)


def _id_of(trip: TripLike, body: bytes) -> str:
    if isinstance(trip, Trip):
        return trip.id
    doc = trip if isinstance(trip, Mapping) else _loads_or_none(body)
    trip_id = doc.get("id") if isinstance(doc, Mapping) else None
    if not isinstance(trip_id, str) or not trip_id:
        raise InvalidTrip("id", "is required to store one trip (the URL names it)")
    return trip_id


def _loads_or_none(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidTrip("", "not valid JSON") from None


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {"detail": response.text[:200] or response.reason_phrase}
    return data if isinstance(data, dict) else {"detail": str(data)[:200]}


def _raise_for(response: httpx.Response, trip_id: str | None = None, alert_id: str | None = None) -> None:
    """Raise the engine error (or :class:`APIError`) an error answer stands for."""
    status = response.status_code
    if status < 400:
        return
    problem = _problem(response)
    code, field, detail = problem.get("code"), str(problem.get("field") or ""), str(problem.get("detail") or "")
    reason = detail[len(field) + 2 :] if field and detail.startswith(f"{field}: ") else detail
    if code == "invalid_trip":
        raise InvalidTrip(field, reason)
    if code == "invalid_cursor":
        raise InvalidCursor(reason)
    if code == "invalid_query":
        raise InvalidQuery(field, reason)
    if code == "invalid_alert":
        raise InvalidAlert(field, reason)
    if code == "not_found" and alert_id is not None:
        raise AlertNotFound(alert_id)
    if code == "not_found" and trip_id is not None:
        raise NotFound(trip_id)
    if status == 503:
        error = StoreReadOnly if code == "store_read_only" else BackendUnavailable
        raise error(detail or "the server is unavailable", retry_after=_retry_after(response) or 1.0)
    raise APIError(status, problem)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


# -- bulk ---------------------------------------------------------------------


@dataclass
class _Batch:
    first_line: int  # line number (from 1) of the batch's first trip in the caller's input
    lines: list[bytes]  # b"" for a blank trip, answered here without sending


def _ndjson_line(trip: TripLike) -> bytes:
    # A line break inside a JSON text can only be whitespace (strings cannot hold a raw one), so a space keeps its meaning.
    line = _encode_trip(trip)
    if b"\n" in line or b"\r" in line:
        line = line.replace(b"\r", b" ").replace(b"\n", b" ")
    return line.strip()


class _Batcher:
    """Cut a stream of trips into batches of at most ``size`` lines and about ``max_bytes`` bytes."""

    def __init__(self, size: int, max_bytes: int) -> None:
        if size < 1:
            raise ValueError("batch_size must be at least 1")
        self.size = size
        self.max_bytes = max_bytes
        self.batch = _Batch(1, [])
        self.bytes = 0

    def add(self, trip: TripLike) -> list[_Batch]:
        """Add a trip; return the batches it completes (none, usually)."""
        line = _ndjson_line(trip)
        done = []
        if self.batch.lines and self.bytes + len(line) + 1 > self.max_bytes:
            done.append(self._cut())
        self.batch.lines.append(line)
        self.bytes += len(line) + 1
        if len(self.batch.lines) >= self.size:
            done.append(self._cut())
        return done

    def rest(self) -> _Batch | None:
        return self._cut() if self.batch.lines else None

    def _cut(self) -> _Batch:
        batch = self.batch
        self.batch = _Batch(batch.first_line + len(batch.lines), [])
        self.bytes = 0
        return batch


def _bulk_call(lines: list[bytes], refresh: Refresh) -> _Call[httpx.Response]:
    """Return the request of some non-blank lines; the answer is read by :func:`_read_bulk`."""
    return _Call("POST", "/v1/trips/_bulk", lambda r: r, params=_refresh_params(refresh), content=b"\n".join(lines) + b"\n", headers={"Content-Type": "application/x-ndjson"})


def _read_bulk(response: httpx.Response, first_line: int) -> list[ItemResult]:
    _raise_for(response)
    out = []
    for item in orjson.loads(response.content)["items"]:
        out.append(ItemResult(first_line + item["line"] - 1, item.get("id"), item["result"], item.get("version"), item.get("field"), item.get("reason")))
    return out


def _too_large(response: httpx.Response) -> bool:
    return response.status_code == 413


def _rejected_alone(line_no: int, line: bytes, response: httpx.Response | None) -> ItemResult:
    """Return the result of a trip the server will not take in any batch (blank, or too large by itself)."""
    trip_id = None
    if line:
        doc = _loads_or_none_quiet(line)
        trip_id = doc.get("id") if isinstance(doc, dict) and isinstance(doc.get("id"), str) else None
    reason = "is an empty line" if response is None else str(_problem(response).get("detail") or "is too large for the server")
    return ItemResult(line_no, trip_id, "rejected", reason=reason)


def _loads_or_none_quiet(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None


def _split(batch: _Batch) -> tuple[list[tuple[int, list[bytes]]], list[ItemResult]]:
    """Return the runs of non-blank lines of a batch (with their first line numbers) and the results of its blank lines."""
    runs: list[tuple[int, list[bytes]]] = []
    blanks: list[ItemResult] = []
    for offset, line in enumerate(batch.lines):
        number = batch.first_line + offset
        if not line:
            blanks.append(_rejected_alone(number, line, None))
        elif runs and runs[-1][0] + len(runs[-1][1]) == number:
            runs[-1][1].append(line)
        else:
            runs.append((number, [line]))
    return runs, blanks


# -- the clients --------------------------------------------------------------


class TripSearchClient:
    """A client of one tripsearch API server (or load balancer)."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retry: Retry = Retry(),
        transport: httpx.BaseTransport | None = None,
        standard_api_key: str | None = None,
    ) -> None:
        self.retry = retry
        self._standard_api_key = standard_api_key  # sent as X-API-Key to the standard covoiturage routes only
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=_auth(token), timeout=timeout, transport=transport)

    def search(self, query: Mapping[str, Any] | Query | None = None, /, **fields: Any) -> SearchResult:
        """Return the trips a query selects; fields as in :func:`tripsearch.parse_query` (``from_`` for ``from``)."""
        return self._run(_search_call(query, fields))

    def places(self, q: str, limit: int = 10) -> list[PlaceSuggestion]:
        """Return the cities whose name starts with ``q``, biggest first."""
        return self._run(_places_call(q, limit))

    def get(self, trip_id: str) -> dict[str, Any]:
        """Return a stored trip document, or raise :class:`NotFound`."""
        return self._run(_get_call(trip_id))

    def upsert(self, trip: TripLike, refresh: Refresh = False) -> ItemResult:
        """Store one trip (``stored`` or ``unchanged``); raise :class:`InvalidTrip` if it breaks a rule."""
        return self._run(_upsert_call(trip, refresh))

    def delete(self, trip_id: str, refresh: Refresh = False, *, version: int | None = None) -> ItemResult:
        """Delete one trip: ``deleted`` or ``not_found``; with ``version``, a delete event that applies only over a lower stored version."""
        return self._run(_delete_call(trip_id, refresh, version))

    def set_occurrence_seats(self, trip_id: str, date: str | dt.date, seats_available: int, refresh: Refresh = False) -> dict[str, Any]:
        """Set the seats left on one date of a regular trip (written as the trip's next version); return that occurrence's new document.

        Raises :class:`NotFound` for an unknown trip, :class:`OccurrenceNotFound`
        for a date it does not run on, :class:`InvalidTrip` for a bad date or
        seat count, :class:`APIError` (409) when other writes kept winning.
        """
        return self._run(_occurrence_seats_call(trip_id, date, seats_available, refresh))

    def bulk(self, trips: Iterable[TripLike], batch_size: int = DEFAULT_BATCH_SIZE, refresh: Refresh = False, max_batch_bytes: int = DEFAULT_BATCH_BYTES) -> list[ItemResult]:
        """Store trips in NDJSON batches; return one result per trip, in order, ``line`` counting from 1."""
        return [item for batch in self.iter_bulk(trips, batch_size, refresh, max_batch_bytes) for item in batch]

    def iter_bulk(self, trips: Iterable[TripLike], batch_size: int = DEFAULT_BATCH_SIZE, refresh: Refresh = False, max_batch_bytes: int = DEFAULT_BATCH_BYTES) -> Iterator[list[ItemResult]]:
        """Like :meth:`bulk`, reading ``trips`` lazily and yielding the results batch by batch (for progress bars)."""
        batcher = _Batcher(batch_size, max_batch_bytes)
        for trip in trips:
            for batch in batcher.add(trip):
                yield self._send_batch(batch, refresh)
        last = batcher.rest()
        if last is not None:
            yield self._send_batch(last, refresh)

    def driver_journeys(
        self,
        departure: tuple[float, float],
        arrival: tuple[float, float],
        departure_date: int | dt.datetime,
        *,
        time_delta: int | None = None,
        departure_radius: float | None = None,
        arrival_radius: float | None = None,
        count: int | None = None,
    ) -> list[dict[str, Any]]:
        """Return the standard covoiturage ``DriverJourney`` objects near ``departure_date`` (Unix seconds or an aware datetime).

        Points are (lat, lon); radii in km and ``time_delta`` in seconds; None leaves the server's default (1 km, 900 s).
        """
        options = {"departureDate": departure_date, "timeDelta": time_delta, "departureRadius": departure_radius, "arrivalRadius": arrival_radius, "count": count}
        return self._run(_standard_call("driver_journeys", self._standard_api_key, _journey_params(departure, arrival, options)))

    def driver_regular_trips(
        self,
        departure: tuple[float, float],
        arrival: tuple[float, float],
        departure_time_of_day: str | dt.time,
        *,
        departure_weekdays: Sequence[str] | None = None,
        time_delta: int | None = None,
        departure_radius: float | None = None,
        arrival_radius: float | None = None,
        min_departure_date: int | None = None,
        max_departure_date: int | None = None,
        count: int | None = None,
    ) -> list[dict[str, Any]]:
        """Return the standard covoiturage regular ``DriverTrip`` objects, with their ``schedules``, whose pickups are near ``departure_time_of_day``.

        Dates are Unix seconds; without them the server looks at the coming four weeks.
        """
        options = {
            "departureTimeOfDay": departure_time_of_day, "departureWeekdays": departure_weekdays, "timeDelta": time_delta,
            "departureRadius": departure_radius, "arrivalRadius": arrival_radius,
            "minDepartureDate": min_departure_date, "maxDepartureDate": max_departure_date, "count": count,
        }  # fmt: skip
        return self._run(_standard_call("driver_regular_trips", self._standard_api_key, _journey_params(departure, arrival, options)))

    def create_alert(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Save an alert for the token's ``sub`` (scope ``alerts:write``); return it (with ``webhook.secret`` if a ``webhook_url`` was given)."""
        return self._run(_json_call("POST", _alert_url(), body=dict(fields)))  # type: ignore[no-any-return]

    def alerts(self) -> list[dict[str, Any]]:
        """Return the caller's alerts, newest first."""
        return self._run(_json_call("GET", _alert_url()))["alerts"]  # type: ignore[no-any-return]

    def get_alert(self, alert_id: str) -> dict[str, Any]:
        """Return one of the caller's alerts, or raise :class:`AlertNotFound`."""
        return self._run(_json_call("GET", _alert_url(alert_id), alert_id))  # type: ignore[no-any-return]

    def delete_alert(self, alert_id: str) -> None:
        """Delete one of the caller's alerts, or raise :class:`AlertNotFound`."""
        self._run(_json_call("DELETE", _alert_url(alert_id), alert_id))

    def alert_matches(self, alert_id: str, cursor: str | None = None, limit: int = 20) -> tuple[list[dict[str, Any]], str | None]:
        """Return a page of an alert's feed, newest first, and the cursor of the next page (None at the end)."""
        page = self._run(_matches_call(alert_id, cursor, limit))
        return page["matches"], page["next_cursor"]

    def stream_alerts(self, last_event_id: str | None = None) -> Iterator[dict[str, Any]]:
        """Yield the events of the caller's alerts as they happen, reconnecting with ``Last-Event-ID`` (none is missed).

        Start after ``last_event_id`` (a ``seq``), or with the next event. The
        iterator never ends by itself; break out of it when done.
        """
        parser = _SSEParser(last_event_id)
        attempt = 0
        while True:
            try:
                with self._http.stream("GET", _alert_url(suffix="/stream"), headers=parser.headers(), timeout=httpx.Timeout(self._http.timeout.connect, read=None)) as response:
                    if response.status_code != 200:
                        response.read()
                        _raise_for(response)
                    attempt = 0
                    for line in response.iter_lines():
                        event = parser.feed(line)
                        if event is not None:
                            yield event
            except httpx.TransportError:
                if attempt >= self.retry.attempts:
                    raise
            time.sleep(self.retry.delay(attempt))
            attempt += 1

    def _send_batch(self, batch: _Batch, refresh: Refresh) -> list[ItemResult]:
        runs, results = _split(batch)
        for first_line, lines in runs:
            results += self._send_lines(first_line, lines, refresh)
        return sorted(results, key=lambda r: r.line)

    def _send_lines(self, first_line: int, lines: list[bytes], refresh: Refresh) -> list[ItemResult]:
        response = self._run(_bulk_call(lines, refresh))
        if not _too_large(response):
            return _read_bulk(response, first_line)
        if len(lines) == 1:
            return [_rejected_alone(first_line, lines[0], response)]
        half = len(lines) // 2  # the server takes less than we sent: halve until it fits
        return self._send_lines(first_line, lines[:half], refresh) + self._send_lines(first_line + half, lines[half:], refresh)

    def _run(self, call: _Call[_T]) -> _T:
        attempt = 0
        while True:
            try:
                response = self._http.request(call.method, call.url, params=call.params, content=call.content, headers=call.headers)
            except httpx.TransportError as exc:
                if attempt >= self.retry.attempts:
                    raise BackendUnavailable(f"cannot reach {self._http.base_url}: {str(exc) or type(exc).__name__}") from exc
                delay = self.retry.delay(attempt)
            else:
                if response.status_code != 503 or attempt >= self.retry.attempts:
                    return call.parse(response)
                delay = self.retry.delay(attempt, _retry_after(response))
            attempt += 1
            time.sleep(delay)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TripSearchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncTripSearchClient:
    """The asyncio variant of :class:`TripSearchClient`: the same methods, awaited."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retry: Retry = Retry(),
        transport: httpx.AsyncBaseTransport | None = None,
        standard_api_key: str | None = None,
    ) -> None:
        self.retry = retry
        self._standard_api_key = standard_api_key  # sent as X-API-Key to the standard covoiturage routes only
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=_auth(token), timeout=timeout, transport=transport)

    async def search(self, query: Mapping[str, Any] | Query | None = None, /, **fields: Any) -> SearchResult:
        """Return the trips a query selects."""
        return await self._run(_search_call(query, fields))

    async def places(self, q: str, limit: int = 10) -> list[PlaceSuggestion]:
        """Return the cities whose name starts with ``q``, biggest first."""
        return await self._run(_places_call(q, limit))

    async def get(self, trip_id: str) -> dict[str, Any]:
        """Return a stored trip document, or raise :class:`NotFound`."""
        return await self._run(_get_call(trip_id))

    async def upsert(self, trip: TripLike, refresh: Refresh = False) -> ItemResult:
        """Store one trip (``stored`` or ``unchanged``); raise :class:`InvalidTrip` if it breaks a rule."""
        return await self._run(_upsert_call(trip, refresh))

    async def delete(self, trip_id: str, refresh: Refresh = False, *, version: int | None = None) -> ItemResult:
        """Delete one trip: ``deleted`` or ``not_found``; with ``version``, a delete event that applies only over a lower stored version."""
        return await self._run(_delete_call(trip_id, refresh, version))

    async def set_occurrence_seats(self, trip_id: str, date: str | dt.date, seats_available: int, refresh: Refresh = False) -> dict[str, Any]:
        """Set the seats left on one date of a regular trip; return that occurrence's new document (see :meth:`TripSearchClient.set_occurrence_seats`)."""
        return await self._run(_occurrence_seats_call(trip_id, date, seats_available, refresh))

    async def bulk(self, trips: Iterable[TripLike] | AsyncIterable[TripLike], batch_size: int = DEFAULT_BATCH_SIZE, refresh: Refresh = False, max_batch_bytes: int = DEFAULT_BATCH_BYTES) -> list[ItemResult]:
        """Store trips in NDJSON batches; return one result per trip, in order."""
        return [item async for batch in self.iter_bulk(trips, batch_size, refresh, max_batch_bytes) for item in batch]

    async def iter_bulk(self, trips: Iterable[TripLike] | AsyncIterable[TripLike], batch_size: int = DEFAULT_BATCH_SIZE, refresh: Refresh = False, max_batch_bytes: int = DEFAULT_BATCH_BYTES) -> AsyncIterator[list[ItemResult]]:
        """Like :meth:`bulk`, reading ``trips`` lazily and yielding the results batch by batch."""
        batcher = _Batcher(batch_size, max_batch_bytes)
        async for trip in _aiter(trips):
            for batch in batcher.add(trip):
                yield await self._send_batch(batch, refresh)
        last = batcher.rest()
        if last is not None:
            yield await self._send_batch(last, refresh)

    async def driver_journeys(
        self,
        departure: tuple[float, float],
        arrival: tuple[float, float],
        departure_date: int | dt.datetime,
        *,
        time_delta: int | None = None,
        departure_radius: float | None = None,
        arrival_radius: float | None = None,
        count: int | None = None,
    ) -> list[dict[str, Any]]:
        """Return the standard covoiturage ``DriverJourney`` objects near ``departure_date`` (Unix seconds or an aware datetime).

        Points are (lat, lon); radii in km and ``time_delta`` in seconds; None leaves the server's default (1 km, 900 s).
        """
        options = {"departureDate": departure_date, "timeDelta": time_delta, "departureRadius": departure_radius, "arrivalRadius": arrival_radius, "count": count}
        return await self._run(_standard_call("driver_journeys", self._standard_api_key, _journey_params(departure, arrival, options)))

    async def driver_regular_trips(
        self,
        departure: tuple[float, float],
        arrival: tuple[float, float],
        departure_time_of_day: str | dt.time,
        *,
        departure_weekdays: Sequence[str] | None = None,
        time_delta: int | None = None,
        departure_radius: float | None = None,
        arrival_radius: float | None = None,
        min_departure_date: int | None = None,
        max_departure_date: int | None = None,
        count: int | None = None,
    ) -> list[dict[str, Any]]:
        """Return the standard covoiturage regular ``DriverTrip`` objects, with their ``schedules``, whose pickups are near ``departure_time_of_day``.

        Dates are Unix seconds; without them the server looks at the coming four weeks.
        """
        options = {
            "departureTimeOfDay": departure_time_of_day, "departureWeekdays": departure_weekdays, "timeDelta": time_delta,
            "departureRadius": departure_radius, "arrivalRadius": arrival_radius,
            "minDepartureDate": min_departure_date, "maxDepartureDate": max_departure_date, "count": count,
        }  # fmt: skip
        return await self._run(_standard_call("driver_regular_trips", self._standard_api_key, _journey_params(departure, arrival, options)))

    async def create_alert(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Save an alert for the token's ``sub`` (scope ``alerts:write``); return it (with ``webhook.secret`` if a ``webhook_url`` was given)."""
        return await self._run(_json_call("POST", _alert_url(), body=dict(fields)))  # type: ignore[no-any-return]

    async def alerts(self) -> list[dict[str, Any]]:
        """Return the caller's alerts, newest first."""
        return (await self._run(_json_call("GET", _alert_url())))["alerts"]  # type: ignore[no-any-return]

    async def get_alert(self, alert_id: str) -> dict[str, Any]:
        """Return one of the caller's alerts, or raise :class:`AlertNotFound`."""
        return await self._run(_json_call("GET", _alert_url(alert_id), alert_id))  # type: ignore[no-any-return]

    async def delete_alert(self, alert_id: str) -> None:
        """Delete one of the caller's alerts, or raise :class:`AlertNotFound`."""
        await self._run(_json_call("DELETE", _alert_url(alert_id), alert_id))

    async def alert_matches(self, alert_id: str, cursor: str | None = None, limit: int = 20) -> tuple[list[dict[str, Any]], str | None]:
        """Return a page of an alert's feed, newest first, and the cursor of the next page (None at the end)."""
        page = await self._run(_matches_call(alert_id, cursor, limit))
        return page["matches"], page["next_cursor"]

    async def stream_alerts(self, last_event_id: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Yield the events of the caller's alerts as they happen, reconnecting with ``Last-Event-ID`` (none is missed)."""
        parser = _SSEParser(last_event_id)
        attempt = 0
        while True:
            try:
                async with self._http.stream("GET", _alert_url(suffix="/stream"), headers=parser.headers(), timeout=httpx.Timeout(self._http.timeout.connect, read=None)) as response:
                    if response.status_code != 200:
                        await response.aread()
                        _raise_for(response)
                    attempt = 0
                    async for line in response.aiter_lines():
                        event = parser.feed(line)
                        if event is not None:
                            yield event
            except httpx.TransportError:
                if attempt >= self.retry.attempts:
                    raise
            await asyncio.sleep(self.retry.delay(attempt))
            attempt += 1

    async def _send_batch(self, batch: _Batch, refresh: Refresh) -> list[ItemResult]:
        runs, results = _split(batch)
        for first_line, lines in runs:
            results += await self._send_lines(first_line, lines, refresh)
        return sorted(results, key=lambda r: r.line)

    async def _send_lines(self, first_line: int, lines: list[bytes], refresh: Refresh) -> list[ItemResult]:
        response = await self._run(_bulk_call(lines, refresh))
        if not _too_large(response):
            return _read_bulk(response, first_line)
        if len(lines) == 1:
            return [_rejected_alone(first_line, lines[0], response)]
        half = len(lines) // 2
        return await self._send_lines(first_line, lines[:half], refresh) + await self._send_lines(first_line + half, lines[half:], refresh)

    async def _run(self, call: _Call[_T]) -> _T:
        attempt = 0
        while True:
            try:
                response = await self._http.request(call.method, call.url, params=call.params, content=call.content, headers=call.headers)
            except httpx.TransportError as exc:
                if attempt >= self.retry.attempts:
                    raise BackendUnavailable(f"cannot reach {self._http.base_url}: {str(exc) or type(exc).__name__}") from exc
                delay = self.retry.delay(attempt)
            else:
                if response.status_code != 503 or attempt >= self.retry.attempts:
                    return call.parse(response)
                delay = self.retry.delay(attempt, _retry_after(response))
            attempt += 1
            await asyncio.sleep(delay)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncTripSearchClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def _aiter(items: Iterable[_T] | AsyncIterable[_T]) -> AsyncIterator[_T]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
