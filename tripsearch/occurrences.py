"""The trips a regular trip makes: one punctual trip per date of its schedule.

A regular trip (a :class:`~tripsearch.model.Trip` with a ``schedule``) is
stored once and searched as its occurrences: on each date the schedule
runs, the trip leaves at that date's local time in the schedule's time zone
and reaches each stop as long after as its stops' times say. Every index
holds one row per occurrence, keyed by :func:`occurrence_key`, so the
matching rules, ranking and facets apply to occurrences as to any trip, and
facets count occurrences.

Local times are wall-clock times: 07:45 in Europe/Paris is 07:45+01:00 in
winter and 07:45+02:00 in summer. A time that does not exist on a date (in
the hour a spring change skips) is read with the offset before the change,
as ``datetime`` does (02:30 becomes 03:30+02:00); a time that exists twice
(in the hour an autumn change repeats) is the first of the two.

>>> from tripsearch.model import parse_trip
>>> trip = parse_trip({"id": "c-1", "version": 1, "departure_time": "2027-03-26T07:45:00+01:00",
...     "stops": [{"name": "Lyon", "lat": 45.764, "lon": 4.8357, "time": "2027-03-26T07:45:00+01:00"},
...               {"name": "Grenoble", "lat": 45.1885, "lon": 5.7245, "time": "2027-03-26T09:00:00+01:00"}],
...     "seats_total": 3, "seats_available": 3, "price": {"amount": 8.0},
...     "schedule": {"timezone": "Europe/Paris", "valid_from": "2027-03-26", "valid_to": "2027-03-29",
...                  "times": {"FRI": "07:45", "MON": "07:45"}, "exceptions": [{"date": "2027-03-29", "seats_available": 1}]}})
>>> [(split_key(o.id)[1], o.departure_time.isoformat(), o.stops[1].time.isoformat(), o.seats_available) for o in occurrences(trip)]
[('2027-03-26', '2027-03-26T07:45:00+01:00', '2027-03-26T09:00:00+01:00', 3), ('2027-03-29', '2027-03-29T07:45:00+02:00', '2027-03-29T09:00:00+02:00', 1)]
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Sequence, TypeVar

from .model import Stop, Trip, parse_time_of_day, schedule_dates, schedule_zone, trip_to_dict

__all__ = ["KEY_SEPARATOR", "occurrence_key", "split_key", "trip_id_of", "occurrences", "occurrence_of", "occurrence_document", "index_trips"]

T = TypeVar("T")
# Trip ids hold no control character, so a key with this one is an occurrence's and splits one way only.
KEY_SEPARATOR = "\x1f"


def occurrence_key(trip_id: str, date: dt.date) -> str:
    """Return the index key of a regular trip's occurrence on ``date``."""
    return f"{trip_id}{KEY_SEPARATOR}{date.isoformat()}"


def split_key(key: str) -> tuple[str, str | None]:
    """Return (trip id, occurrence date as YYYY-MM-DD or None) of an index key.

    >>> split_key("t-1"), split_key(occurrence_key("t-1", dt.date(2027, 1, 4)))
    (('t-1', None), ('t-1', '2027-01-04'))
    """
    trip_id, sep, date = key.partition(KEY_SEPARATOR)
    return trip_id, (date if sep else None)


def trip_id_of(key: str) -> str:
    """Return the trip id of an index key (the key itself for a punctual trip)."""
    return key.partition(KEY_SEPARATOR)[0]


def occurrences(trip: Trip) -> list[Trip]:
    """Return the occurrences of a regular trip as punctual trips keyed by :func:`occurrence_key`; ``[trip]`` for a punctual trip."""
    if trip.schedule is None:
        return [trip]
    return [_occurrence(trip, date, time, seats, occurrence_key(trip.id, date)) for date, time, seats in schedule_dates(trip.schedule)]


def occurrence_of(trip: Trip, date: dt.date) -> Trip | None:
    """Return the occurrence of a regular trip on ``date`` (its id stays the trip's), or None if it does not run then."""
    assert trip.schedule is not None
    for day, time, seats in schedule_dates(trip.schedule):
        if day == date:
            return _occurrence(trip, date, time, seats, trip.id)
    return None


def occurrence_document(trip: Trip, date: dt.date) -> dict[str, Any]:
    """Return the wire document of one occurrence: the regular trip's, with that date's times and seats, and ``occurrence``.

    It keeps the ``schedule``, so a reader sees both the trip of the day and the week's plan.
    """
    occurrence = occurrence_of(trip, date)
    if occurrence is None:
        raise ValueError(f"trip {trip.id!r} does not run on {date.isoformat()}")
    doc = trip_to_dict(occurrence)
    doc["schedule"] = trip_to_dict(trip)["schedule"]
    doc["occurrence"] = date.isoformat()
    return doc


def index_trips(trips: Sequence[Trip], routes: Sequence[T] | None = None) -> tuple[Sequence[Trip], Sequence[T] | None]:
    """Return what an index holds for some trips, and their routes: punctual trips as they are, regular trips as their occurrences."""
    if all(t.schedule is None for t in trips):
        return trips, routes
    out: list[Trip] = []
    out_routes: list[T] = []
    for pos, trip in enumerate(trips):
        made = occurrences(trip)
        out.extend(made)
        if routes is not None:
            out_routes.extend([routes[pos]] * len(made))
    return out, (out_routes if routes is not None else None)


def _occurrence(trip: Trip, date: dt.date, time: str, seats: int | None, key: str) -> Trip:
    assert trip.schedule is not None
    zone = schedule_zone(trip.schedule)
    # in UTC: an aware datetime plus a timedelta moves the wall clock, not time, across a daylight-saving change
    departure = dt.datetime.combine(date, parse_time_of_day(time, "schedule"), tzinfo=zone).astimezone(dt.timezone.utc)
    first = trip.stops[0].time
    stops = [Stop(s.name, s.lat, s.lon, (departure + (s.time - first)).astimezone(zone)) for s in trip.stops]
    return Trip(
        id=key,
        version=trip.version,
        departure_time=stops[0].time,
        stops=stops,
        seats_total=trip.seats_total,
        seats_available=trip.seats_available if seats is None else seats,
        price=trip.price,
        options=trip.options,
        driver=trip.driver,
        status=trip.status,
        route=trip.route,
        schedule=None,
    )
