"""Reading saved measurements: the figures ``plan`` and ``report`` use, and the curves between them.

>>> fit = loglog_fit([10_000, 100_000], [1.0, 4.0])
>>> round(fit(1_000_000)[0], 3), fit(1_000_000)[1]
(16.0, True)
>>> fit(50_000)
(2.635..., False)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import orjson

from .errors import CapacityError
from .measure import SCHEMA

__all__ = ["Measurements", "read_json", "loglog_fit", "linear_fit", "rate_at_p99", "Curve"]


def loglog_fit(xs: Sequence[float], ys: Sequence[float]) -> Callable[[float], tuple[float, bool]]:
    """Return f(x) -> (y, extrapolated): piecewise linear in log-log between points, the end slopes beyond them (a power law).

    Beyond the points the exponent is held within [0, 1]: measured noise must
    not project a bigger index to be faster, nor slower than linear in size.
    """
    pts = sorted((float(x), float(y)) for x, y in zip(xs, ys) if x > 0 and y > 0)
    if not pts:
        raise ValueError("no points")

    def f(x: float) -> tuple[float, bool]:
        if len(pts) == 1:
            return pts[0][1], x != pts[0][0]
        lx = math.log(x)
        if x < pts[0][0]:
            (x0, y0), (x1, y1), out = pts[0], pts[1], True
        elif x > pts[-1][0]:
            (x0, y0), (x1, y1), out = pts[-2], pts[-1], True
        else:
            i = next(i for i in range(1, len(pts)) if x <= pts[i][0])
            (x0, y0), (x1, y1), out = pts[i - 1], pts[i], False
        slope = (math.log(y1) - math.log(y0)) / (math.log(x1) - math.log(x0)) if x1 != x0 else 0.0
        if out:
            # beyond the points: a bigger index is never faster, and no slower than in proportion to its size
            slope = min(max(slope, 0.0), 1.0)
        ax, ay = (x1, y1) if x > x1 else (x0, y0)
        return math.exp(math.log(ay) + slope * (lx - math.log(ax))), out

    return f


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Return (intercept, slope) of the least-squares line; one point gives a line through the origin."""
    n = len(xs)
    if n == 0:
        raise ValueError("no points")
    if n == 1:
        return 0.0, float(ys[0]) / float(xs[0]) if xs[0] else 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return my - slope * mx, slope


@dataclass(frozen=True)
class Curve:
    """One HTTP measurement: a server with ``workers`` workers over ``trips`` trips of one backend."""

    backend: str
    trips: int
    workers: int
    data: dict[str, Any]

    @property
    def points(self) -> list[dict[str, Any]]:
        """Open-loop points, by achieved searches/s."""
        return sorted(self.data.get("open_loop", []), key=lambda p: p["searches_per_s"])

    @property
    def saturation(self) -> float:
        return float(self.data["saturation"]["searches_per_s"])


def rate_at_p99(points: Sequence[dict[str, Any]], p99_ms: float) -> tuple[float | None, str]:
    """Return the highest searches/s whose p99 is within ``p99_ms`` on a measured curve, and how it was read.

    Each point is judged by the lowest p99 measured at its load or above:
    other work on the machine only ever adds latency, so a spike at a low
    load that a higher load did not show is interference, not the server.
    Between the last point within the target and the first one above it the
    rate is interpolated linearly in p99; beyond the last point nothing is
    assumed. A point with errors or unanswered calls is over any target.

    >>> pts = [{"searches_per_s": 100, "p99_ms": 10}, {"searches_per_s": 200, "p99_ms": 20}, {"searches_per_s": 300, "p99_ms": 60}]
    >>> rate_at_p99(pts, 40)
    (250.0, 'interpolated between 200 searches/s (p99 20 ms) and 300 searches/s (p99 60 ms)')
    >>> rate_at_p99(pts, 5)[0] is None
    True
    >>> rate_at_p99([{"searches_per_s": 100, "p99_ms": 90}] + pts[1:], 40)[0]  # the spike at 100/s is not the server's
    250.0
    """
    ordered = sorted(points, key=lambda p: p["searches_per_s"])

    def raw(p: dict[str, Any]) -> float:
        return math.inf if p.get("errors") or p.get("dropped") or p.get("p99_ms") is None else float(p["p99_ms"])

    judged: list[float] = []
    best_above = math.inf
    for p in reversed(ordered):
        best_above = min(best_above, raw(p))
        judged.append(best_above)
    judged.reverse()
    overridden = sum(1 for p, j in zip(ordered, judged) if j < raw(p))
    note = f" ({overridden} point(s) judged by a lower p99 measured at a higher load)" if overridden else ""
    last: int | None = None
    for i, p in enumerate(ordered):
        if judged[i] <= p99_ms:
            last = i
            continue
        if last is None:
            return None, f"p99 is {judged[i]:.1f} ms or more already at the lowest measured load ({p['searches_per_s']:,.0f} searches/s){note}"
        lo, y0 = ordered[last], judged[last]
        if math.isfinite(judged[i]):
            t = (p99_ms - y0) / (judged[i] - y0)
            rate = float(lo["searches_per_s"]) + t * (float(p["searches_per_s"]) - float(lo["searches_per_s"]))
            return round(rate, 1), f"interpolated between {lo['searches_per_s']:,.0f} searches/s (p99 {y0:g} ms) and {p['searches_per_s']:,.0f} searches/s (p99 {judged[i]:g} ms){note}"
        return float(lo["searches_per_s"]), f"highest point within the target ({lo['searches_per_s']:,.0f} searches/s, p99 {y0:g} ms); the next one had errors{note}"
    if last is None:
        return None, "no measured points"
    top = ordered[last]
    return float(top["searches_per_s"]), f"every measured point is within the target; the highest ({top['searches_per_s']:,.0f} searches/s, p99 {judged[last]:g} ms) is taken{note}"


def read_json(path: Path, missing: str, invalid: str | None = None) -> Any:
    """Return the JSON document of a saved measurement, or raise :class:`CapacityError`: ``missing`` when there is no such file, ``invalid`` (default: the path is not valid JSON) and the parser's reason when it is not JSON."""
    try:
        return orjson.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise CapacityError(missing) from None
    except orjson.JSONDecodeError as exc:
        raise CapacityError(f"{invalid or f'{path} is not valid JSON'} ({exc})") from None


class Measurements:
    """The JSON ``measure`` saved, with accessors for the figures plans and reports read."""

    def __init__(self, doc: dict[str, Any], path: Path | None = None) -> None:
        if doc.get("schema") != SCHEMA:
            raise CapacityError(f"{path or 'measurements'}: schema {doc.get('schema')!r}, this version reads {SCHEMA}; measure again")
        self.doc = doc
        self.path = path
        self.results: dict[str, dict[str, Any]] = {k: v for k, v in doc.get("results", {}).items() if "error" not in v and "skipped" not in v}

    @classmethod
    def load(cls, path: Path) -> Measurements:
        return cls(read_json(path, f"no measurements at {path}: run `tripsearch capacity measure` first"), Path(path))

    @property
    def machine(self) -> dict[str, Any]:
        return dict(self.doc.get("machine", {}))

    @property
    def complete(self) -> bool:
        return bool(self.doc.get("complete"))

    @property
    def gaps(self) -> list[str]:
        """Steps that are missing or failed."""
        return list(self.doc.get("steps_missing", [])) + list(self.doc.get("steps_failed", []))

    def skipped(self) -> dict[str, str]:
        return {k: v["skipped"] for k, v in self.doc.get("results", {}).items() if "skipped" in v}

    def probes(self, backend: str = "embedded", beside_elasticsearch: bool = False) -> list[dict[str, Any]]:
        """In-process probes of a backend, one per index size, by size; ``beside_elasticsearch``: the one measured next to Elasticsearch first."""
        by_trips: dict[int, dict[str, Any]] = {}
        for key, r in sorted(self.results.items(), key=lambda kv: (kv[0] == "probe:embedded:es-size") != beside_elasticsearch):
            if r.get("kind") == "probe" and r.get("backend") == backend:
                by_trips.setdefault(int(r["trips"]), r)
        return [by_trips[t] for t in sorted(by_trips)]

    def curves(self, backend: str = "embedded") -> list[Curve]:
        out = [Curve(backend, int(r["trips"]), int(r["workers"]), r) for r in self.results.values() if r.get("kind") == "http" and r.get("backend") == backend and r.get("trips")]
        return sorted(out, key=lambda c: (c.trips, c.workers))

    def one(self, kind: str, backend: str | None = None) -> dict[str, Any] | None:
        for r in self.results.values():
            if r.get("kind") == kind and (backend is None or r.get("backend") == backend):
                return r
        return None

    def data_dirs(self) -> list[dict[str, Any]]:
        """Data directories with their trips (from the probe of the same label) and file sizes."""
        out = []
        for key, r in self.results.items():
            if r.get("kind") != "data" or not r.get("sqlite_bytes"):
                continue
            label = key.split(":", 1)[1]
            probe = self.results.get(f"probe:embedded:{label}")
            trips = int(probe["trips"]) if probe else r.get("trips")
            if trips:
                out.append({**r, "trips": int(trips)})
        return sorted(out, key=lambda r: r["trips"])

    def inprocess_latency(self, backend: str = "embedded", facets: bool = True, stat: str = "mean_ms") -> Callable[[float], tuple[float, bool]] | None:
        """Return trips -> (latency ms, extrapolated) from the probes of a backend."""
        probes = self.probes(backend)
        name = "facets" if facets else "no_facets"
        pts = [(p["trips"], p["latency"][name][stat]) for p in probes if name in p.get("latency", {})]
        return loglog_fit([x for x, _ in pts], [y for _, y in pts]) if pts else None

    def worker_memory(self) -> tuple[float, float, str] | None:
        """Return (bytes per worker with no trips, bytes per trip, how) from the workers' resident memory."""
        pts: dict[int, float] = {}
        for c in self.curves("embedded"):
            rss = [r for r in c.data.get("worker_rss_bytes", []) if r]
            if rss:
                pts[c.trips] = max(pts.get(c.trips, 0.0), max(rss))
        if len(pts) >= 2:
            xs = sorted(pts)
            a, b = linear_fit(xs, [pts[x] for x in xs])
            if b > 0:
                return max(a, 0.0), b, f"least-squares line through the largest worker RSS measured after load at {', '.join(f'{x:,}' for x in xs)} trips"
        probes = [p for p in self.probes() if p.get("rss_delta")]
        if len(probes) >= 2:
            _, b = linear_fit([p["trips"] for p in probes], [p["rss_delta"] for p in probes])
            sizes = ", ".join(f"{p['trips']:,}" for p in probes)
            how = f"least-squares slope of the RSS growth of fresh processes opening {sizes} trips"
        elif probes:
            b = probes[0]["rss_delta"] / probes[0]["trips"]
            how = f"RSS growth of a fresh process opening {probes[0]['trips']:,} trips"
        else:
            return None
        if b <= 0:
            return None
        if pts:
            x = max(pts)
            return max(pts[x] - x * b, 0.0), b, f"{how}; the base: worker RSS after load at {x:,} trips minus its trips"
        return float(probes[-1].get("rss_before") or 0), b, f"{how}; the base: the process before opening"
