"""The standard covoiturage answers: engine hits as ``DriverJourney`` objects, and errors in the standard's shape.

A journey is the passenger's part of a trip (for a regular trip, of one
occurrence, whose id is ``trip-id/YYYY-MM-DD``): from the pickup to the dropoff
the engine found, with their coordinates and Unix times, the distance along
the route in metres, the duration in seconds, and that part of the route as
a Google encoded polyline (precision 5). The trip's price, free seats,
driver (alias: the driver's id, the only name a trip carries; grade: the
rating rounded to 1..5) and a ``webUrl`` to the trip on the search page
come with it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Sequence
from urllib.parse import urlencode, urlsplit

import numpy as np
import orjson
from starlette.responses import Response

from tripsearch.backend import Hit
from tripsearch.geo import great_circle_km

from ..problems import PROBLEM_JSON

__all__ = ["driver_journey", "driver_regular_trip", "journey_id", "encode_polyline", "passenger_part", "standard_error", "operator_name", "web_url_base"]

# Below this (km), a point lies on a route segment: pickups and dropoffs are on the route up to rounding.
_ON_SEGMENT_KM = 1e-3


def driver_journey(hit: Hit, operator: str, web_url_base: str, searched: tuple[tuple[float, float], tuple[float, float], float, float]) -> dict[str, Any]:
    """Return the ``DriverJourney`` of a hit; ``searched`` is (departure, arrival, departureRadius, arrivalRadius), for the webUrl."""
    trip = hit.trip
    pickup_at = dt.datetime.fromisoformat(hit.pickup.time)
    dropoff_at = dt.datetime.fromisoformat(hit.dropoff.time)
    stops = trip["stops"]
    points, distance_km = passenger_part(_route_latlon(trip), (hit.pickup.lat, hit.pickup.lon), (hit.dropoff.lat, hit.dropoff.lon))
    amount = float(trip["price"]["amount"])
    journey: dict[str, Any] = {
        "id": journey_id(hit),
        "operator": operator,
        "type": "PLANNED",
        "passengerPickupLat": hit.pickup.lat,
        "passengerPickupLng": hit.pickup.lon,
        "passengerDropLat": hit.dropoff.lat,
        "passengerDropLng": hit.dropoff.lon,
        "passengerPickupDate": int(pickup_at.timestamp()),
        "driverDepartureDate": int(dt.datetime.fromisoformat(trip["departure_time"]).timestamp()),
        "driverDepartureLat": stops[0]["lat"],
        "driverDepartureLng": stops[0]["lon"],
        "driverArrivalLat": stops[-1]["lat"],
        "driverArrivalLng": stops[-1]["lon"],
        "driverDepartureAddress": stops[0]["name"],
        "driverArrivalAddress": stops[-1]["name"],
        "distance": int(round(distance_km * 1000)),
        "duration": int((dropoff_at - pickup_at).total_seconds()),
        "journeyPolyline": encode_polyline(points),
        "availableSeats": trip["seats_available"],
        "price": {"type": "PAYING" if amount > 0 else "FREE", "amount": amount, "currency": trip["price"]["currency"]},
        "driver": _driver(trip.get("driver"), operator),
        "webUrl": _web_url(web_url_base, searched, pickup_at),
    }
    options = trip.get("options") or {}
    journey["preferences"] = {"smoking": bool(options.get("smoking", False)), "animals": bool(options.get("pets", False))}
    return journey


def journey_id(hit: Hit) -> str:
    """Return the standard's journey id of a hit: the trip's id, and ``/`` and the date for a regular trip's occurrence.

    A trip id never holds ``/``, so the ids of an operator's journeys are unique.
    """
    return hit.id if hit.occurrence is None else f"{hit.id}/{hit.occurrence}"


# DriverJourney members that belong to one occurrence: a regular DriverTrip carries them per date, in its schedules.
_PER_JOURNEY = ("id", "type", "passengerPickupDate", "driverDepartureDate", "availableSeats", "price")


def driver_regular_trip(hits: Sequence[Hit], operator: str, web_url_base: str, searched: tuple[tuple[float, float], tuple[float, float], float, float]) -> dict[str, Any]:
    """Return the standard's regular ``DriverTrip`` of one trip's matching occurrences (earliest first), with its ``schedules``.

    The trip's members are those of its first occurrence's journey (the
    places, route part, distance and duration are the same every date); one
    ``Schedule`` per pickup weekday and local time of day lists the dates as
    ``JourneySchedule`` objects, whose ``id`` is the ``driver_journeys`` id.
    """
    journeys = [driver_journey(hit, operator, web_url_base, searched) for hit in hits]
    trip = {key: value for key, value in journeys[0].items() if key not in _PER_JOURNEY}
    schedules: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for hit, journey in zip(hits, journeys):
        at = dt.datetime.fromisoformat(hit.pickup.time)
        schedules.setdefault((at.weekday(), at.strftime("%H:%M:%S")), []).append(
            {key: journey[key] for key in ("id", "passengerPickupDate", "driverDepartureDate", "webUrl", "type")}
        )
    trip["schedules"] = [
        {"passengerPickupDay": _WEEKDAYS[day], "passengerPickupTimeOfDay": time, "journeySchedules": dates}
        for (day, time), dates in sorted(schedules.items())
    ]
    return trip


_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


def _driver(driver: dict[str, Any] | None, operator: str) -> dict[str, Any]:
    if driver is None:  # a trip may leave its driver out; the standard requires one: an anonymous driver
        return {"id": "anonymous", "alias": "anonymous", "operator": operator}
    out: dict[str, Any] = {"id": driver["id"], "alias": driver["id"], "operator": operator}
    rating = driver.get("rating")
    if rating is not None:
        out["grade"] = min(5, max(1, int(round(rating))))
    return out


def _route_latlon(trip: dict[str, Any]) -> np.ndarray:
    """Return the route's vertices as an (n, 2) array of (lat, lon): the route if given, else the stops."""
    route = trip.get("route")
    if route:
        lonlat = np.asarray(route["coordinates"], dtype=np.float64).reshape(-1, 2)
        return lonlat[:, ::-1].copy()
    return np.array([(s["lat"], s["lon"]) for s in trip["stops"]], dtype=np.float64)


def passenger_part(route: np.ndarray, pickup: tuple[float, float], dropoff: tuple[float, float]) -> tuple[list[tuple[float, float]], float]:
    """Return the route from ``pickup`` to ``dropoff`` (both on it) as (lat, lon) points, and its length in km.

    A point lies on the segment where going through it is no longer than the
    segment itself; the pickup takes the first such segment, the dropoff the
    last one after the pickup, as the engine's tie rules do.

    >>> route = np.array([(48.0, 2.0), (48.0, 2.1), (48.0, 2.2)])
    >>> points, km = passenger_part(route, (48.0, 2.05), (48.0, 2.15))
    >>> points, round(km, 2)
    ([(48.0, 2.05), (48.0, 2.1), (48.0, 2.15)], 7.44)
    """
    lat, lon = route[:, 0], route[:, 1]
    seg = great_circle_km(lat[:-1], lon[:-1], lat[1:], lon[1:])
    along = np.concatenate(([0.0], np.cumsum(seg)))

    def place(point: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        to_start = great_circle_km(lat[:-1], lon[:-1], point[0], point[1])
        to_end = great_circle_km(point[0], point[1], lat[1:], lon[1:])
        detour = to_start + to_end - seg
        return np.flatnonzero(detour <= detour.min() + _ON_SEGMENT_KM), along[:-1] + to_start

    pickup_segments, pickup_along = place(pickup)
    first = int(pickup_segments[0])
    dropoff_segments, dropoff_along = place(dropoff)
    after = dropoff_segments[dropoff_along[dropoff_segments] >= pickup_along[first]]
    last = int(after[-1]) if len(after) else int(dropoff_segments[-1])
    inner = [(float(a), float(b)) for a, b in route[first + 1 : last + 1]]
    distance = max(0.0, float(dropoff_along[last] - pickup_along[first]))
    return [pickup, *inner, dropoff], distance


def encode_polyline(points: Sequence[tuple[float, float]]) -> str:
    """Return (lat, lon) points as a Google encoded polyline at precision 5.

    >>> encode_polyline([(38.5, -120.2), (40.7, -120.95), (43.252, -126.453)])  # Google's example
    '_p~iF~ps|U_ulLnnqC_mqNvxq`@'
    """
    out: list[str] = []
    previous = (0, 0)
    for lat, lon in points:
        current = (int(round(lat * 1e5)), int(round(lon * 1e5)))
        for value in (current[0] - previous[0], current[1] - previous[1]):
            value = ~(value << 1) if value < 0 else value << 1
            while value >= 0x20:
                out.append(chr((0x20 | (value & 0x1F)) + 63))
                value >>= 5
            out.append(chr(value + 63))
        previous = current
    return "".join(out)


def _web_url(base: str, searched: tuple[tuple[float, float], tuple[float, float], float, float], pickup_at: dt.datetime) -> str:
    """Return the search page's URL that lists the trip: the searched places and radii, its day and pickup minute."""
    departure, arrival, departure_radius, arrival_radius = searched
    minute = pickup_at.strftime("%H:%M")
    params = {
        "from": f"{departure[0]},{departure[1]}",
        "to": f"{arrival[0]},{arrival[1]}",
        "date": pickup_at.date().isoformat(),
        "from_radius_km": f"{departure_radius:g}",
        "to_radius_km": f"{arrival_radius:g}",
        "time_from": minute,
        "time_to": minute,
    }
    return f"{base.rstrip('/')}/?{urlencode(params, safe=',:')}"


def web_url_base(configured: str | None, request_base: str) -> str:
    """Return the base URL of the search page: the setting, else this server as the request reached it."""
    return configured or request_base


def operator_name(configured: str | None, web_base: str) -> str:
    """Return the operator's domain: the setting, else the host of the search page's URL."""
    return configured or urlsplit(web_base).hostname or "localhost"


def standard_error(response: Response) -> Response:
    """Return an error answer of the standard routes: the problem document with the standard's ``error`` member.

    The standard declares ``{"error": "..."}`` as ``application/json`` for 400;
    for the other statuses it declares no body, so they stay
    ``application/problem+json``. Both carry every problem member too.
    """
    problem = orjson.loads(bytes(response.body))
    body = {"error": problem.get("detail", ""), **problem}
    media_type = "application/json" if response.status_code == 400 else PROBLEM_JSON
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
    return Response(orjson.dumps(body), status_code=response.status_code, headers=headers, media_type=media_type)
