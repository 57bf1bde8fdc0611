"""What the API tests share: the test secret, tokens good and bad, a query over the fixtures, trips to write."""

from __future__ import annotations

import base64
import datetime as dt
import time
from typing import Any

import jwt
import orjson

__all__ = [
    "SECRET",
    "REFRESH_INTERVAL_S",
    "LONDON_READING",
    "make_token",
    "alg_none_token",
    "tampered_token",
    "make_trip",
    "make_regular_trip",
    "north_query",
    "AKUREYRI",
    "HUSAVIK",
    "TOKEN_KINDS",
    "token_of_kind",
    "iceland_query",
]

SECRET = "tripsearch-test-secret-0123456789abcdef"
REFRESH_INTERVAL_S = 0.5

# A city pair and day with trips in fixtures/trips-1000.ndjson.
LONDON_READING = {"from": "51.5074,-0.1278", "to": "51.4543,-0.9781", "date": "2026-12-13"}

# Trips the tests write go to Iceland in 2027, where the fixtures have none.
REYKJAVIK = (64.1466, -21.9426)
SELFOSS = (63.9331, -20.9971)


def make_token(scope: str | None = "trips:write", *, expires_in: float = 3600, key: Any = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    """Return a signed JWT granting ``scope`` (none if None), expiring ``expires_in`` seconds from now."""
    payload: dict[str, Any] = {"sub": "indexer-test", "iat": int(time.time()), "exp": int(time.time() + expires_in), **claims}
    if scope is not None:
        payload["scope"] = scope
    return jwt.encode(payload, key, algorithm=algorithm)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def alg_none_token(scope: str = "trips:write") -> str:
    """Return an unsigned token (``alg: none``) that claims ``scope``."""
    header = _b64(orjson.dumps({"alg": "none", "typ": "JWT"}))
    payload = _b64(orjson.dumps({"sub": "mallory", "scope": scope, "exp": int(time.time() + 3600)}))
    return f"{header}.{payload}."


def tampered_token(scope: str = "trips:write") -> str:
    """Return a token whose payload was changed after signing (a read scope raised to ``scope``)."""
    header, _, signature = make_token("trips:read").split(".")
    payload = _b64(orjson.dumps({"sub": "indexer-test", "scope": scope, "exp": int(time.time() + 3600)}))
    return f"{header}.{payload}.{signature}"


TOKEN_KINDS = ("none", "expired", "wrong_signature", "tampered", "alg_none", "wrong_scope", "right_scope")


def token_of_kind(kind: str) -> str | None:
    """Return a token of one kind of the auth matrix (None: no Authorization header)."""
    if kind == "none":
        return None
    if kind == "expired":
        return make_token(expires_in=-3600)
    if kind == "wrong_signature":
        return make_token(key="another-secret-of-at-least-32-bytes!!")
    if kind == "tampered":
        return tampered_token()
    if kind == "alg_none":
        return alg_none_token()
    if kind == "wrong_scope":
        return make_token("trips:read")
    if kind == "right_scope":
        return make_token("trips:read trips:write")
    raise ValueError(kind)


def make_trip(trip_id: str, version: int = 1, day: dt.date = dt.date(2027, 3, 1), hour: int = 9, price: float = 12.0) -> dict[str, Any]:
    """Return a valid trip from Reykjavik to Selfoss, leaving at ``hour`` local time (UTC) on ``day``."""
    leave = dt.datetime(day.year, day.month, day.day, hour, 0, tzinfo=dt.timezone.utc)
    trip = two_stop_trip(trip_id, version, ("Reykjavik", REYKJAVIK), ("Selfoss", SELFOSS), leave, leave + dt.timedelta(hours=1))
    return {**trip, "seats_total": 3, "seats_available": 2, "price": {"amount": price, "currency": "ISK"}}


def two_stop_trip(trip_id: str, version: int, start: tuple[str, tuple[float, float]], end: tuple[str, tuple[float, float]], leave: dt.datetime, arrive: dt.datetime) -> dict[str, Any]:
    """Return the id, version, departure time and stops of a trip from ``start`` to ``end`` (name, (lat, lon))."""
    return {
        "id": trip_id,
        "version": version,
        "departure_time": leave.isoformat(),
        "stops": [
            {"name": start[0], "lat": start[1][0], "lon": start[1][1], "time": leave.isoformat()},
            {"name": end[0], "lat": end[1][0], "lon": end[1][1], "time": arrive.isoformat()},
        ],
    }


# Regular trips the tests write go from Akureyri to Husavik, where no other test writes.
AKUREYRI = (65.6835, -18.0878)
HUSAVIK = (66.0449, -17.3389)


def make_regular_trip(trip_id: str, version: int = 1, *, times: dict[str, str] | None = None, valid_from: str = "2027-01-04", valid_to: str = "2027-06-30",
                      exceptions: list[dict[str, Any]] | None = None, timezone: str = "Europe/Paris", minutes: int = 75, seats: int = 3) -> dict[str, Any]:
    """Return a valid regular trip from Akureyri to Husavik (``minutes`` long), by default Mon-Fri 07:45 and Sat 09:00 in Europe/Paris."""
    times = {"MON": "07:45", "TUE": "07:45", "WED": "07:45", "THU": "07:45", "FRI": "07:45", "SAT": "09:00"} if times is None else times
    first = dt.date.fromisoformat(valid_from)
    leave = dt.datetime.combine(first, dt.time(7, 45), tzinfo=dt.timezone(dt.timedelta(hours=1)))
    arrive = leave + dt.timedelta(minutes=minutes)
    schedule: dict[str, Any] = {"timezone": timezone, "valid_from": valid_from, "valid_to": valid_to, "times": times}
    if exceptions:
        schedule["exceptions"] = exceptions
    return {
        **two_stop_trip(trip_id, version, ("Akureyri", AKUREYRI), ("Husavik", HUSAVIK), leave, arrive),
        "seats_total": seats,
        "seats_available": seats,
        "price": {"amount": 6.5, "currency": "EUR"},
        "driver": {"id": f"driver-{trip_id}", "rating": 4.6},
        "schedule": schedule,
    }


def north_query(day: dt.date) -> dict[str, str]:
    """Return the search that finds :func:`make_regular_trip` occurrences of ``day``."""
    return {"from": f"{AKUREYRI[0]},{AKUREYRI[1]}", "to": f"{HUSAVIK[0]},{HUSAVIK[1]}", "date": day.isoformat(), "facets": "", "limit": "100"}


def iceland_query(day: dt.date = dt.date(2027, 3, 1)) -> dict[str, str]:
    """Return the search that finds :func:`make_trip` trips of ``day``."""
    return {"from": f"{REYKJAVIK[0]},{REYKJAVIK[1]}", "to": f"{SELFOSS[0]},{SELFOSS[1]}", "date": day.isoformat(), "facets": "", "limit": "100"}
