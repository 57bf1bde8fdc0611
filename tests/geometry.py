"""Awkward trips for the tests: loops, the antimeridian, the poles, midnight, far-from-UTC offsets.

:func:`random_trips` and :func:`random_queries` build randomized data sets
around a chosen kind of place; the named constants are single trips that
the parametrized tests reuse.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from typing import Any

import numpy as np

R = 6371.0088
OFFSETS_MIN = [-12 * 60, -9 * 60 - 30, -3 * 60, 0, 60, 5 * 60 + 45, 9 * 60, 12 * 60 + 45, 14 * 60]
REGIONS = {
    "europe": (46.0, 4.0),
    "antimeridian": (-16.5, 179.6),
    "north_pole": (88.5, 20.0),
    "south_pole": (-89.2, -100.0),
    "arctic": (78.2, 15.6),
    "equator": (0.1, -0.2),
}
BASE_DATE = dt.date(2026, 12, 1)
# Zones whose offsets change in the days of DST_START.. (Europe on 2026-10-25, the USA on 2026-11-01) or are unusual.
DST_ZONES = ["Europe/Paris", "America/New_York", "Asia/Kathmandu", "Pacific/Marquesas", "Pacific/Kiritimati"]
DST_START = dt.datetime(2026, 10, 22, tzinfo=dt.timezone.utc)


def destination(lat: float, lon: float, bearing_deg: float, dist_km: float) -> tuple[float, float]:
    """Return the point reached from (lat, lon) after dist_km on the initial bearing."""
    la, lo, b, d = math.radians(lat), math.radians(lon), math.radians(bearing_deg), dist_km / R
    la2 = math.asin(math.sin(la) * math.cos(d) + math.cos(la) * math.sin(d) * math.cos(b))
    lo2 = lo + math.atan2(math.sin(b) * math.sin(d) * math.cos(la), math.cos(d) - math.sin(la) * math.sin(la2))
    return math.degrees(la2), (math.degrees(lo2) + 540.0) % 360.0 - 180.0


def hav_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    la1, lo1, la2, lo2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * R * math.asin(min(1.0, math.sqrt(h)))


def iso(epoch: int, offset_min: int) -> str:
    tz = dt.timezone(dt.timedelta(minutes=offset_min))
    return dt.datetime.fromtimestamp(epoch, tz).isoformat()


def make_trip(tid: str, route: list[tuple[float, float]], stop_idx: list[int], depart: int, offset_min: int, rng: np.random.Generator, *, with_route: bool = True, speeds_kmh: float = 70.0, **attrs: Any) -> dict[str, Any]:
    """Return a trip dict along ``route`` (lat, lon pairs) with stops at the given vertex indexes."""
    along = [0.0]
    for i in range(1, len(route)):
        along.append(along[-1] + hav_km(route[i - 1], route[i]))
    stops = []
    t = depart
    for k, i in enumerate(stop_idx):
        if k:
            t += int((along[i] - along[stop_idx[k - 1]]) / speeds_kmh * 3600) + int(rng.integers(0, 900))
        lat, lon = route[i]
        if 0 < k < len(stop_idx) - 1:
            lat, lon = destination(lat, lon, float(rng.uniform(0, 360)), float(rng.uniform(0, 3)))
        stops.append({"name": f"stop {k}", "lat": round(lat, 6), "lon": round(lon, 6), "time": iso(t, offset_min)})
    seats_total = int(rng.integers(1, 5))
    status = str(rng.choice(["published"] * 8 + ["full", "cancelled"]))
    doc: dict[str, Any] = {
        "id": tid,
        "version": int(rng.integers(1, 5)),
        "departure_time": stops[0]["time"],
        "stops": stops,
        "seats_total": seats_total,
        "seats_available": 0 if status == "full" else int(rng.integers(0, seats_total + 1)),
        "price": {"amount": round(float(rng.uniform(0, 80)), 2), "currency": str(rng.choice(["EUR", "EUR", "EUR", "GBP"]))},
        "options": {o: bool(rng.random() < p) for o, p in zip(("instant_booking", "pets", "smoking", "women_only", "max_two_back"), (0.6, 0.3, 0.1, 0.1, 0.5))},
        "driver": {"id": f"u-{int(rng.integers(0, 50))}", "rating": None if rng.random() < 0.1 else round(float(rng.uniform(2.5, 5.0)), 1), "verified": bool(rng.random() < 0.5)},
        "status": status,
    }
    if with_route:
        doc["route"] = {"type": "LineString", "coordinates": [[round(lon, 6), round(lat, 6)] for lat, lon in route]}
    doc.update(attrs)
    return doc


def random_route(rng: np.random.Generator, center: tuple[float, float], spread_km: float) -> list[tuple[float, float]]:
    """Return a wandering route near ``center``; sometimes it loops back over itself."""
    start = destination(*center, float(rng.uniform(0, 360)), float(rng.uniform(0, spread_km)))
    pts = [start]
    heading = float(rng.uniform(0, 360))
    for _ in range(int(rng.integers(3, 25))):
        heading += float(rng.normal(0, 35))
        pts.append(destination(*pts[-1], heading, float(rng.uniform(0.5, 25))))
    kind = rng.random()
    if kind < 0.15:  # out and back along the same vertices
        pts = pts + pts[-2::-1]
    elif kind < 0.3:  # a loop that passes its own start again, then goes on
        pts = pts + [pts[0]] + [destination(*pts[0], float(rng.uniform(0, 360)), float(rng.uniform(5, 40)))]
    return pts


def random_trips(region: str, n: int, seed: int) -> list[dict[str, Any]]:
    """Return ``n`` random trips around a region, over a few days, with far-flung UTC offsets and night trips."""
    rng = np.random.default_rng(seed)
    center = REGIONS[region]
    base = int(dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc).timestamp())
    trips = []
    for i in range(n):
        route = random_route(rng, center, 60.0)
        inner = sorted(rng.choice(np.arange(1, len(route) - 1), size=min(int(rng.integers(0, 3)), len(route) - 2), replace=False).tolist())
        stop_idx = [0, *inner, len(route) - 1]
        depart = base + int(rng.integers(-2 * 86400, 5 * 86400)) // 60 * 60
        offset = int(rng.choice(OFFSETS_MIN))
        trips.append(make_trip(f"{region}-{seed}-{i}", route, stop_idx, depart, offset, rng, with_route=bool(rng.random() < 0.9), speeds_kmh=float(rng.uniform(15, 110))))
    return trips


def local_date_near(trip: dict[str, Any], coords: list[list[float]], i: int) -> dt.date:
    """Return, roughly, the trip's local date when it passes coords[i] (to make queries that match)."""
    along = [0.0]
    for k in range(1, len(coords)):
        along.append(along[-1] + hav_km((coords[k - 1][1], coords[k - 1][0]), (coords[k][1], coords[k][0])))
    times = [dt.datetime.fromisoformat(s["time"]) for s in trip["stops"]]
    frac = along[i] / along[-1] if along[-1] > 0 else 0.0
    when = times[0] + (times[-1] - times[0]) * frac
    return when.astimezone(times[0].tzinfo).date()


def random_queries(trips: list[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """Return queries built around the trips' routes (so many match), with random filters, sorts and radii."""
    rng = np.random.default_rng(seed)
    queries = []
    for _ in range(n):
        trip = trips[int(rng.integers(0, len(trips)))]
        coords = trip["route"]["coordinates"] if "route" in trip else [[s["lon"], s["lat"]] for s in trip["stops"]]
        i, j = sorted(rng.integers(0, len(coords), size=2).tolist())
        if rng.random() < 0.2:
            i, j = j, i  # against the direction of travel
        day = local_date_near(trip, coords, i)
        jitter = lambda p: destination(p[1], p[0], float(rng.uniform(0, 360)), float(rng.exponential(4)))  # noqa: E731
        q: dict[str, Any] = {
            "from": list(jitter(coords[i])),
            "to": list(jitter(coords[j])),
            "date": str(day + dt.timedelta(days=int(rng.choice([0, 0, 0, 0, 1, -1])))),
            "from_radius_km": float(rng.choice([0.0, 1.0, 5.0, 10.0, 25.0, 60.0, 100.0, float(rng.uniform(0, 100))])),
            "to_radius_km": float(rng.choice([0.5, 5.0, 10.0, 30.0, 100.0, float(rng.uniform(0, 100))])),
            "sort": str(rng.choice(["relevance", "departure", "price", "pickup_distance"])),
            "limit": int(rng.choice([1, 3, 7, 20, 100])),
        }
        if rng.random() < 0.15:
            q["seats"] = int(rng.integers(1, 4))
        if rng.random() < 0.15:
            a, b = sorted(rng.integers(0, 24 * 60, size=2).tolist())
            if rng.random() < 0.15:
                a, b = b, a  # a window across midnight
            q["time_from"], q["time_to"] = f"{a // 60:02d}:{a % 60:02d}", f"{b // 60:02d}:{b % 60:02d}"
        if rng.random() < 0.15:
            q["max_price"] = round(float(rng.uniform(0, 80)), 2)
        if rng.random() < 0.15:
            q["options"] = sorted(set(rng.choice(["pets", "instant_booking", "max_two_back", "smoking"], size=int(rng.integers(1, 3))).tolist()))
        if rng.random() < 0.15:
            q["min_rating"] = float(rng.choice([3.0, 3.5, 4.0, 4.5, 4.8]))
        if rng.random() < 0.3:
            q["cell_resolution"] = int(rng.integers(0, 16))
        if rng.random() < 0.2:
            q["price_interval"] = float(rng.choice([1.0, 2.5, 10.0, 7.3]))
        queries.append(q)
    return queries


def dst_trips(region: str, n: int, seed: int) -> list[dict[str, Any]]:
    """Return ``n`` random trips around a region from 2026-10-22 for 13 days, each in the UTC offset its zone (DST_ZONES) has when it leaves.

    Trips of one zone before and after a daylight-saving change carry
    different offsets; a trip over the change keeps its departure's.
    """
    rng = np.random.default_rng(seed)
    center = REGIONS[region]
    base = int(DST_START.timestamp())
    trips = []
    for i in range(n):
        route = random_route(rng, center, 60.0)
        inner = sorted(rng.choice(np.arange(1, len(route) - 1), size=min(int(rng.integers(0, 3)), len(route) - 2), replace=False).tolist())
        depart = base + int(rng.integers(0, 13 * 86400)) // 60 * 60
        zone = zoneinfo.ZoneInfo(str(rng.choice(DST_ZONES)))
        offset = dt.datetime.fromtimestamp(depart, zone).utcoffset()
        assert offset is not None
        trips.append(make_trip(f"dst-{region}-{seed}-{i}", route, [0, *inner, len(route) - 1], depart, int(offset.total_seconds()) // 60, rng, speeds_kmh=float(rng.uniform(15, 110))))
    return trips


def time_queries(trips: list[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """Return :func:`random_queries` searching around a time (``departure_time``, ``time_delta``, ``sort=time_distance``) or over days (``date_from``..``date_to``), or both."""
    rng = np.random.default_rng(seed + 1)
    stops = [((stop["lat"], stop["lon"]), int(stop["time"][11:13]) * 60 + int(stop["time"][14:16]), stop["time"][:10]) for trip in trips for stop in trip["stops"]]
    queries = []
    for q in random_queries(trips, n, seed):
        _, near, near_day = min(stops, key=lambda stop: hav_km(stop[0], tuple(q["from"])))  # the local time of the stop nearest from
        if rng.random() < 0.5:
            q["date"] = near_day
        queries.append(vary_time(q, rng, near))
    return queries


def vary_time(q: dict[str, Any], rng: np.random.Generator, near: int | None = None) -> dict[str, Any]:
    """Return ``q`` over a few days (``date_from``..``date_to``), or around a time (often about minute ``near``), or both; sometimes sorted by ``time_distance``."""
    q = dict(q)
    day = dt.date.fromisoformat(q["date"])
    if rng.random() < 0.5:
        first = day - dt.timedelta(days=int(rng.integers(0, 3)))
        del q["date"]
        q["date_from"], q["date_to"] = str(first), str(first + dt.timedelta(days=int(rng.integers(0, 7))))
    if rng.random() < 0.7:
        q.pop("time_from", None)
        q.pop("time_to", None)
        choices = [int(rng.integers(0, 1440)), int(rng.integers(0, 60)), int(rng.integers(1380, 1440))]
        minute = int(rng.choice(choices + ([near, near] if near is not None else [])))
        minute = (minute + int(rng.normal(0, 40))) % 1440
        q["departure_time"] = f"{minute // 60:02d}:{minute % 60:02d}"
        delta = rng.choice([None, 0, 59, 90, 900, 3600, 4 * 3600, 12 * 3600, int(rng.integers(0, 12 * 3600))])
        if delta is not None:
            q["time_delta"] = int(delta)
        if rng.random() < 0.5:
            q["sort"] = "time_distance"
    return q


# Daylight-saving changes of 2026-2027: Europe on 2026-10-25 and 2027-03-28, the United States on 2026-11-01 and 2027-03-14.
DST_CHANGES = [dt.date(2026, 10, 25), dt.date(2026, 11, 1), dt.date(2027, 3, 14), dt.date(2027, 3, 28)]
REGULAR_ZONES = ["Europe/Paris", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata"]


def regular_trips(region: str, n: int, seed: int) -> list[dict[str, Any]]:
    """Return ``n`` random regular trips around a region, each running a few weeks around a daylight-saving change.

    Weekday times include the hours a change skips or repeats (02:30) and
    the edges of the day; exceptions skip dates, move them (also onto
    weekdays without a time) or change their seats. The stops' times carry
    an arbitrary date: only the times between stops count.
    """
    rng = np.random.default_rng(seed)
    center = REGIONS[region]
    trips = []
    for i in range(n):
        route = random_route(rng, center, 60.0)
        inner = sorted(rng.choice(np.arange(1, len(route) - 1), size=min(int(rng.integers(0, 3)), len(route) - 2), replace=False).tolist())
        zone = str(rng.choice(REGULAR_ZONES))
        template = int(dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc).timestamp()) + int(rng.integers(0, 86400)) // 60 * 60
        doc = make_trip(f"reg-{region}-{seed}-{i}", route, [0, *inner, len(route) - 1], template, int(rng.choice(OFFSETS_MIN)), rng, with_route=bool(rng.random() < 0.9), speeds_kmh=float(rng.uniform(15, 110)))
        change = DST_CHANGES[int(rng.integers(0, len(DST_CHANGES)))]
        first = change - dt.timedelta(days=int(rng.integers(0, 15)))
        last = change + dt.timedelta(days=int(rng.integers(0, 15)))
        def some_time() -> str:  # noqa: E306
            pick = rng.random()
            if pick < 0.2:
                return str(rng.choice(["02:30", "01:30", "00:00", "23:59", "03:00", "02:00"]))
            minute = int(rng.integers(0, 24 * 60))
            return f"{minute // 60:02d}:{minute % 60:02d}" + (f":{int(rng.integers(0, 60)):02d}" if rng.random() < 0.1 else "")
        days = rng.choice(WEEKDAY_NAMES, size=int(rng.integers(1, 8)), replace=False).tolist()
        same = some_time()
        times = {d: (same if rng.random() < 0.7 else some_time()) for d in days}
        span = (last - first).days + 1
        exceptions = []
        for k in sorted(set(rng.integers(0, span, size=int(rng.integers(0, 5))).tolist())):
            date = first + dt.timedelta(days=k)
            runs = WEEKDAY_NAMES[date.weekday()] in times
            kind = rng.random()
            if kind < 0.4:
                exceptions.append({"date": str(date), "skip": True})
            elif kind < 0.7 or not runs:
                exc = {"date": str(date), "time": some_time()}
                if rng.random() < 0.3:
                    exc["seats_available"] = int(rng.integers(0, doc["seats_total"] + 1))
                exceptions.append(exc)
            else:
                exceptions.append({"date": str(date), "seats_available": int(rng.integers(0, doc["seats_total"] + 1))})
        runs_on = [first + dt.timedelta(days=k) for k in range(span) if WEEKDAY_NAMES[(first + dt.timedelta(days=k)).weekday()] in times]
        skipped = {dt.date.fromisoformat(e["date"]) for e in exceptions if e.get("skip")}
        if not any("time" in e for e in exceptions) and skipped >= set(runs_on):
            exceptions = [{"date": str(first), "time": some_time()}]  # a schedule must run on some date
        doc["schedule"] = {"timezone": zone, "valid_from": str(first), "valid_to": str(last), "times": times, "exceptions": exceptions}
        trips.append(doc)
    return trips


WEEKDAY_NAMES = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
