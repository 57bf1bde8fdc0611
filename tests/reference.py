"""Brute-force reference of the matching rules, written from the rules, not from the engine.

Plain Python and the math module, one trip and one segment at a time, no
index, no numpy: slow and obviously right. Its one shortcut skips a route
that a cap around it puts farther than the radius from a search's end
(:func:`beyond`); ``tests/test_kernels.py`` checks that it never skips a
route :func:`closest` finds within the radius. The engine must return exactly
what :func:`search` returns here, for every query, including totals, order,
pages and facet counts.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from dataclasses import dataclass
from typing import Any

import h3

R = 6371.0088
OPTIONS = ("instant_booking", "pets", "smoking", "women_only", "max_two_back")


def unit(lat: float, lon: float) -> tuple[float, float, float]:
    la, lo = math.radians(lat), math.radians(lon)
    return (math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la))


def cross(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def norm(a):
    return math.sqrt(dot(a, a))


def angle(a, b) -> float:
    return math.atan2(norm(cross(a, b)), dot(a, b))


def q7(x: float) -> float:
    """The canonical coordinate: a multiple of 1e-7 degree."""
    return round(x * 1e7) / 1e7


@dataclass
class RefTrip:
    doc: dict[str, Any]
    pts: list[tuple[float, float, float]]
    cum: list[float]
    stop_along: list[float]
    stop_time: list[int]
    offset: int
    cap: tuple[tuple[float, float, float], float] | None = None  # route_cap, computed when first asked


def route_cap(ref: RefTrip) -> tuple[tuple[float, float, float], float]:
    """Return a cap holding every point of the route: its centre and its angular radius.

    A point of a segment is at most half the segment's length from one of
    its ends, so it is within the farthest vertex's angle plus half the
    longest segment of any centre (the triangle inequality on the sphere).
    """
    if ref.cap is None:
        total = tuple(sum(p[k] for p in ref.pts) for k in range(3))
        size = norm(total)
        centre = (total[0] / size, total[1] / size, total[2] / size) if size > 1e-9 else ref.pts[0]
        half = max((angle(a, b) / 2 for a, b in zip(ref.pts, ref.pts[1:])), default=0.0)
        ref.cap = (centre, max(angle(centre, p) for p in ref.pts) + half)
    return ref.cap


def beyond(ref: RefTrip, x, km: float) -> bool:
    """Whether no point of the route is within ``km`` of x, by its cap (1 km to spare): :func:`closest` would measure more than ``km``."""
    centre, radius = route_cap(ref)
    return (angle(x, centre) - radius) * R > km + 1.0


def closest(ref: RefTrip, x, last: bool) -> tuple[float, float, tuple]:
    """(distance km, along km, point) of the route point closest to x; ties earliest (or latest)."""
    cands = []
    for i, p in enumerate(ref.pts):
        cands.append((angle(x, p), ref.cum[i], p))
    for i in range(len(ref.pts) - 1):
        a, b = ref.pts[i], ref.pts[i + 1]
        n = cross(a, b)
        nn = norm(n)
        if nn <= 1e-15:
            continue
        n = (n[0] / nn, n[1] / nn, n[2] / nn)
        d = dot(x, n)
        c = (x[0] - d * n[0], x[1] - d * n[1], x[2] - d * n[2])
        cn = norm(c)
        if cn <= 1e-15:
            continue
        c = (c[0] / cn, c[1] / cn, c[2] / cn)
        if dot(cross(a, c), n) > 0 and dot(cross(c, b), n) > 0:
            seg = ref.cum[i + 1] - ref.cum[i]
            cands.append((angle(x, c), ref.cum[i] + min(angle(a, c) * R, seg), c))
    best = min(cands, key=lambda t: (t[0], -t[1] if last else t[1]))
    return best[0] * R, best[1], best[2]


def make_ref(doc: dict[str, Any]) -> RefTrip:
    if doc.get("route"):
        coords = [(q7(lat), q7(lon)) for lon, lat in doc["route"]["coordinates"]]
    else:
        coords = [(q7(s["lat"]), q7(s["lon"])) for s in doc["stops"]]
    pts = [unit(la, lo) for la, lo in coords]
    cum = [0.0]
    for i in range(1, len(pts)):
        cum.append(cum[-1] + angle(pts[i - 1], pts[i]) * R)
    dep = dt.datetime.fromisoformat(doc["departure_time"])
    ref = RefTrip(doc, pts, cum, [], [int(dt.datetime.fromisoformat(s["time"]).timestamp()) for s in doc["stops"]], int(dep.utcoffset().total_seconds()))
    length = cum[-1]
    along = []
    stops = doc["stops"]
    for k, s in enumerate(stops):
        if k == 0:
            a = 0.0
        elif k == len(stops) - 1:
            a = length
        else:
            a = closest(ref, unit(q7(s["lat"]), q7(s["lon"])), last=False)[1]
        if along:
            a = max(a, along[-1])
        along.append(a)
    along[-1] = max(along[-1], length)
    ref.stop_along = along
    return ref


WEEKDAYS = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]


def occurrence_docs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """A regular trip's occurrences as punctual trip documents, id ``trip id + "\\x1f" + date``; ``[doc]`` for a punctual trip.

    On each date from valid_from to valid_to: the weekday's time, unless an
    exception skips the date or gives another time (which may add a date);
    the departure is that wall-clock time in the schedule's zone (a time a
    spring change skips is read with the offset before it, a repeated one is
    the first); every stop follows as long after as in the document; an
    exception may set the date's seats_available.
    """
    schedule = doc.get("schedule")
    if schedule is None:
        return [doc]
    zone = zoneinfo.ZoneInfo(schedule["timezone"])
    exceptions = {e["date"]: e for e in schedule.get("exceptions", [])}
    first = dt.datetime.fromisoformat(doc["stops"][0]["time"])
    after = [dt.datetime.fromisoformat(s["time"]) - first for s in doc["stops"]]
    out = []
    day = dt.date.fromisoformat(schedule["valid_from"])
    while day <= dt.date.fromisoformat(schedule["valid_to"]):
        exc = exceptions.get(day.isoformat(), {})
        time = exc.get("time") or schedule["times"].get(WEEKDAYS[day.weekday()])
        if time is not None and not exc.get("skip", False):
            hms = [int(x) for x in time.split(":")] + [0]
            wall = dt.datetime(day.year, day.month, day.day, hms[0], hms[1], hms[2])
            # fold=0: the first of a repeated time; for a skipped time, the offset before the change
            departure = wall.replace(tzinfo=zone).astimezone(dt.timezone.utc)
            occ = dict(doc, id=f"{doc['id']}\x1f{day.isoformat()}")
            del occ["schedule"]
            occ["stops"] = [dict(s, time=(departure + a).astimezone(zone).isoformat()) for s, a in zip(doc["stops"], after)]
            occ["departure_time"] = occ["stops"][0]["time"]
            if exc.get("seats_available") is not None:
                occ["seats_available"] = exc["seats_available"]
            out.append(occ)
        day += dt.timedelta(days=1)
    return out


def make_refs(doc: dict[str, Any]) -> list[RefTrip]:
    """The reference trips of a stored document: itself, or a regular trip's occurrences (sharing one route, see :func:`search`)."""
    refs: list[RefTrip] = []
    for occ in occurrence_docs(doc):
        if not refs:
            refs.append(make_ref(occ))
            continue
        dep = dt.datetime.fromisoformat(occ["departure_time"])
        first = refs[0]
        refs.append(RefTrip(occ, first.pts, first.cum, first.stop_along, [int(dt.datetime.fromisoformat(s["time"]).timestamp()) for s in occ["stops"]], int(dep.utcoffset().total_seconds())))
    return refs


def time_at(ref: RefTrip, p: float) -> int:
    s, t = ref.stop_along, ref.stop_time
    i = max(k for k in range(len(s)) if s[k] <= p) if s[0] <= p else 0
    if i == len(s) - 1:
        return t[-1]
    frac = (p - s[i]) / (s[i + 1] - s[i]) if s[i + 1] > s[i] else 0.0
    frac = min(max(frac, 0.0), 1.0)
    return math.floor(t[i] + (t[i + 1] - t[i]) * frac)


@dataclass
class RefHit:
    id: str
    pickup_km: float
    dropoff_km: float
    pickup_time: int
    local_day: int
    local_minute: int
    pickup_point: tuple
    dropoff_point: tuple
    doc: dict[str, Any]
    passes: dict[str, bool]
    search_day: int  # the local day, or with departure_time the day whose departure_time is nearest
    time_distance: int  # minutes from departure_time on the search day (0 without departure_time)

    def key(self, sort: str) -> tuple:
        price = float(self.doc["price"]["amount"])
        primary = {
            "relevance": self.pickup_km + self.dropoff_km,
            "departure": float(self.pickup_time),
            "price": price,
            "pickup_distance": self.pickup_km,
            "time_distance": float(self.time_distance),
        }[sort]
        return (primary, self.pickup_time, self.id)


def day_of(date: str) -> int:
    return (dt.date.fromisoformat(date) - dt.date(1970, 1, 1)).days


def minutes(hhmm: str | None) -> int | None:
    if hhmm is None:
        return None
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def query_days(q: dict[str, Any]) -> tuple[int, int]:
    """The first and last day of a query: ``date``, or ``date_from``..``date_to``."""
    return day_of(q.get("date_from", q.get("date"))), day_of(q.get("date_to", q.get("date")))


def evaluate(ref: RefTrip, q: dict[str, Any], seen: dict[tuple[int, bool], tuple[float, float, tuple]] | None = None) -> RefHit | None:
    """Every rule but the date, time and attribute filters as booleans; None when the geometry fails.

    ``seen`` keeps the closest points of routes already measured for this
    query: a regular trip's occurrences share one route.
    """
    doc = ref.doc
    if doc["status"] != "published":
        return None
    x = unit(*q["from"])
    y = unit(*q["to"])
    if beyond(ref, x, q.get("from_radius_km", 10.0)) or beyond(ref, y, q.get("to_radius_km", 10.0)):
        return None  # the route is far from one end: the geometry fails below, only later
    seen = {} if seen is None else seen
    if (id(ref.pts), False) not in seen:
        seen[(id(ref.pts), False)] = closest(ref, x, last=False)
        seen[(id(ref.pts), True)] = closest(ref, y, last=True)
    pd, pa, pp = seen[(id(ref.pts), False)]
    dd, da, dp = seen[(id(ref.pts), True)]
    if pd > q.get("from_radius_km", 10.0) or dd > q.get("to_radius_km", 10.0) or not pa < da:
        return None
    t = time_at(ref, pa)
    local = t + ref.offset
    lday, lmin = local // 86400, (local % 86400) // 60
    if q.get("departure_time") is not None:
        # The day whose departure_time is nearest the pickup (half-way: the later one), in local minutes since 1970.
        m = local // 60
        target = minutes(q["departure_time"])
        sday = min((m // 1440 + k for k in (-1, 0, 1)), key=lambda d: (abs(m - (d * 1440 + target)), -d))
        distance = abs(m - (sday * 1440 + target))
        time_ok = distance <= q.get("time_delta", 900) // 60
    else:
        lo, hi = minutes(q.get("time_from")), minutes(q.get("time_to"))
        lo = 0 if lo is None else lo
        hi = 1439 if hi is None else hi
        time_ok = lo <= lmin <= hi if lo <= hi else (lmin >= lo or lmin <= hi)
        sday, distance = lday, 0
    first, last = query_days(q)
    rating = (doc.get("driver") or {}).get("rating")
    opts = doc.get("options") or {}
    passes = {
        "date": first <= sday <= last,
        "time": time_ok,
        "price": q.get("max_price") is None or doc["price"]["amount"] <= q["max_price"],
        "options": all(opts.get(o, False) for o in q.get("options", [])),
        "rating": q.get("min_rating") is None or (rating is not None and rating >= q["min_rating"]),
        "seats": doc["seats_available"] >= q.get("seats", 1),
    }
    return RefHit(doc["id"], pd, dd, t, lday, lmin, pp, dp, doc, passes, sday, distance)


def search(refs: list[RefTrip], q: dict[str, Any]) -> tuple[list[RefHit], list[RefHit]]:
    """Return (all matches in order, every geometric match with its filter booleans)."""
    seen: dict[tuple[int, bool], tuple[float, float, tuple]] = {}
    evaluated = [h for h in (evaluate(r, q, seen) for r in refs) if h is not None]
    hits = [h for h in evaluated if all(h.passes.values())]
    hits.sort(key=lambda h: h.key(q.get("sort", "relevance")))
    return hits, evaluated


def facets(evaluated: list[RefHit], q: dict[str, Any]) -> dict[str, Any]:
    """Facet counts by brute force: each facet drops its own filter."""

    def without(name: str | None) -> list[RefHit]:
        return [h for h in evaluated if all(v for k, v in h.passes.items() if k != name)]

    out: dict[str, Any] = {}
    hours = [0] * 24
    tod = {"night": 0, "morning": 0, "afternoon": 0, "evening": 0}
    for h in without("time"):
        hours[h.local_minute // 60] += 1
        tod[["night", "morning", "afternoon", "evening"][h.local_minute // 360]] += 1
    out["departure_hour"] = hours
    out["time_of_day"] = tod
    interval = q.get("price_interval", 5.0)
    per_cur: dict[str, dict[str, Any]] = {}
    for h in without("price"):
        amount = h.doc["price"]["amount"]
        cur = per_cur.setdefault(h.doc["price"]["currency"], {"count": 0, "amounts": [], "buckets": {}})
        cur["count"] += 1
        cur["amounts"].append(amount)
        k = math.floor(amount / interval)
        cur["buckets"][k] = cur["buckets"].get(k, 0) + 1
    out["price"] = {
        c: {"count": v["count"], "min": min(v["amounts"]), "max": max(v["amounts"]), "avg": round(math.fsum(v["amounts"]) / v["count"], 2), "buckets": dict(sorted(v["buckets"].items()))}
        for c, v in per_cur.items()
    }
    out["options"] = {o: sum(1 for h in without("options") if (h.doc.get("options") or {}).get(o, False)) for o in OPTIONS}
    seats: dict[int, int] = {}
    for h in without("seats"):
        seats[h.doc["seats_available"]] = seats.get(h.doc["seats_available"], 0) + 1
    out["seats_available"] = dict(sorted(seats.items()))
    ratings = [(h.doc.get("driver") or {}).get("rating") for h in without("rating")]
    out["driver_rating"] = [sum(1 for r in ratings if r is not None and r >= t) for t in (4.5, 4.0, 3.5, 3.0)] + [len(ratings)]
    res = q.get("cell_resolution", 7)
    for name, attr in (("pickup_cells", "pickup_point"), ("dropoff_cells", "dropoff_point")):
        cells: dict[str, int] = {}
        for h in without(None):
            x, y, z = getattr(h, attr)
            lat = math.degrees(math.asin(min(1.0, max(-1.0, z))))
            lon = math.degrees(math.atan2(y, x))
            cell = h3.latlng_to_cell(lat, lon, res)
            cells[cell] = cells.get(cell, 0) + 1
        out[name] = cells
    first, last = query_days(q)
    date_hits = without("date")
    out["dates"] = [sum(1 for h in date_hits if h.search_day == day) for day in range(first - 3, last + 4)]
    return out


def alert_day(ref: RefTrip, alert: dict[str, Any]) -> int | None:
    """Return the day (days since 1970-01-01) on which the search of ``alert``'s fields returns the trip, or None.

    An alert (``date`` or ``date_from``..``date_to`` plus search fields)
    matches a trip when the search of one of its days does; the pickup falls
    on one local day, so at most one day answers.
    """
    first = day_of(alert.get("date_from", alert.get("date")))
    last = day_of(alert.get("date_to", alert.get("date")))
    fields = {k: v for k, v in alert.items() if k not in ("date", "date_from", "date_to")}
    hit = evaluate(ref, {**fields, "date": "1970-01-01"})
    if hit is None or not all(v for k, v in hit.passes.items() if k != "date"):
        return None
    return hit.local_day if first <= hit.local_day <= last else None
