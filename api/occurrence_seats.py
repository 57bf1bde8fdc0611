"""Changing the seats of one occurrence of a regular trip: read, change that date's exception, write the next version.

A booking on one date takes a seat on that date only. The change is a
write like any other: the stored document with that date's exception
carrying the new ``seats_available`` (its ``time`` or ``skip`` kept), at
``version + 1``, so the versioning rule every backend follows decides
between concurrent writers. When another write stored that version (or a
higher one) first, the change is made again on what it stored, a few
times, then refused with 409: it never overwrites a write it has not seen.

Only the :class:`~tripsearch.backend.Backend` contract is used (``get`` and
``upsert``), so it works on every backend.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from tripsearch.backend import Backend, Refresh
from tripsearch.errors import InvalidTrip
from tripsearch.model import MAX_SEATS, parse_trip
from tripsearch.occurrences import occurrence_document, occurrence_of

from .problems import Problem

__all__ = ["ATTEMPTS", "OccurrenceNotFound", "parse_occurrence_date", "parse_seats_body", "set_occurrence_seats", "with_occurrence_seats"]

ATTEMPTS = 3  # writes tried before answering 409 when concurrent writers keep storing the next version first
_MAX_VERSION = 2**63 - 1


class OccurrenceNotFound(Problem):
    """The trip exists but has no occurrence on that date (a one-off trip, or a date its schedule does not run)."""

    def __init__(self, detail: str) -> None:
        super().__init__(404, detail, code="occurrence_not_found", field="date")


def parse_occurrence_date(text: str) -> dt.date:
    """Return the date of ``.../occurrences/{date}``, or raise :class:`InvalidTrip` naming ``date``.

    >>> parse_occurrence_date("2027-01-11")
    datetime.date(2027, 1, 11)
    >>> parse_occurrence_date("11/01/2027")
    Traceback (most recent call last):
    ...
    tripsearch.errors.InvalidTrip: date: must be a date YYYY-MM-DD, got '11/01/2027'
    """
    try:
        if len(text) != 10:
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidTrip("date", f"must be a date YYYY-MM-DD, got {text[:40]!r}") from None


def parse_seats_body(body: Any) -> int:
    """Return ``seats_available`` of a PATCH body, or raise :class:`InvalidTrip` naming the field.

    >>> parse_seats_body({"seats_available": 2})
    2
    >>> parse_seats_body({"seats_available": "2"})
    Traceback (most recent call last):
    ...
    tripsearch.errors.InvalidTrip: seats_available: must be an integer from 0 to the trip's seats_total
    """
    if not isinstance(body, dict):
        raise InvalidTrip("", 'the body must be a JSON object such as {"seats_available": 1}')
    for key in body:
        if key != "seats_available":
            raise InvalidTrip(str(key)[:60], "is not a known field; only seats_available can be changed per occurrence")
    if "seats_available" not in body:
        raise InvalidTrip("seats_available", "is required")
    seats = body["seats_available"]
    if isinstance(seats, bool) or not isinstance(seats, int) or not 0 <= seats <= MAX_SEATS:
        raise InvalidTrip("seats_available", "must be an integer from 0 to the trip's seats_total")
    return seats


def with_occurrence_seats(doc: dict[str, Any], date: dt.date, seats: int) -> dict[str, Any]:
    """Return a copy of a stored regular trip's document, at the next version, whose occurrence on ``date`` has ``seats`` left.

    Raises :class:`OccurrenceNotFound` when the trip does not run on ``date``,
    :class:`InvalidTrip` when ``seats`` is more than its ``seats_total``.

    >>> doc = {"id": "c-1", "version": 4, "departure_time": "2027-01-04T07:45:00+01:00",
    ...     "stops": [{"name": "Lyon", "lat": 45.764, "lon": 4.8357, "time": "2027-01-04T07:45:00+01:00"},
    ...               {"name": "Grenoble", "lat": 45.1885, "lon": 5.7245, "time": "2027-01-04T09:00:00+01:00"}],
    ...     "seats_total": 3, "seats_available": 3, "price": {"amount": 8.0},
    ...     "schedule": {"timezone": "Europe/Paris", "valid_from": "2027-01-04", "valid_to": "2027-01-15",
    ...                  "times": {"MON": "07:45", "TUE": "07:45"}, "exceptions": [{"date": "2027-01-11", "time": "08:15"}]}}
    >>> new = with_occurrence_seats(doc, dt.date(2027, 1, 11), 1)
    >>> new["version"], new["schedule"]["exceptions"]
    (5, [{'date': '2027-01-11', 'time': '08:15', 'seats_available': 1}])
    >>> with_occurrence_seats(doc, dt.date(2027, 1, 12), 0)["schedule"]["exceptions"][-1]
    {'date': '2027-01-12', 'seats_available': 0}
    """
    trip = parse_trip(doc)
    if trip.schedule is None:
        raise OccurrenceNotFound(f"date: trip {trip.id!r} is a one-off trip, it has no occurrences; change its seats_available with PUT")
    if occurrence_of(trip, date) is None:
        raise OccurrenceNotFound(f"date: trip {trip.id!r} does not run on {date.isoformat()} (its schedule runs from {trip.schedule.valid_from} to {trip.schedule.valid_to})")
    if seats > trip.seats_total:
        raise InvalidTrip("seats_available", f"must be from 0 to seats_total ({trip.seats_total})")
    if trip.version >= _MAX_VERSION:
        raise Problem(409, f"trip {trip.id!r} is at the highest version (2^63-1); it cannot be changed", code="version_exhausted")
    new = copy.deepcopy(doc)
    new["version"] = trip.version + 1
    schedule = new["schedule"]
    exceptions: list[dict[str, Any]] = list(schedule.get("exceptions") or [])
    wanted = date.isoformat()
    for i, exc in enumerate(exceptions):
        if dt.date.fromisoformat(str(exc["date"])) == date:
            exceptions[i] = {**exc, "date": wanted, "seats_available": seats}
            break
    else:
        exceptions.append({"date": wanted, "seats_available": seats})
    schedule["exceptions"] = exceptions
    return new


def set_occurrence_seats(engine: Backend, trip_id: str, date: dt.date, seats: int, refresh: Refresh = False) -> dict[str, Any]:
    """Store the trip's next version with ``seats`` left on ``date``; return that occurrence's new document.

    Raises :class:`~tripsearch.errors.NotFound` for an unknown trip,
    :class:`OccurrenceNotFound` for a date it does not run on, and a 409
    :class:`Problem` when concurrent writes keep storing the next version first.
    """
    for _ in range(ATTEMPTS):
        doc = engine.get(trip_id)
        new = with_occurrence_seats(doc, date, seats)
        item = engine.upsert([new], refresh=refresh).items[0]
        if item.result == "stored":
            return occurrence_document(parse_trip(new), date)
        if item.result == "rejected":  # the stored document was valid, and so is one seat count changed within seats_total
            raise InvalidTrip(item.field or "", item.reason or "is not a valid trip")
    raise Problem(
        409,
        f"trip {trip_id!r} was changed by other writes {ATTEMPTS} times while its seats on {date.isoformat()} were being set; read it again and retry",
        code="conflict",
    )

