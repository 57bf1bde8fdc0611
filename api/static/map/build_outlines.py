"""Build ``countries.json``, the country outlines the search page draws, from world-atlas's TopoJSON.

Usage (from the repository root; needs only the project's virtualenv and npm)::

    cd /tmp && npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz
    .venv/bin/python api/static/map/build_outlines.py /tmp/package/countries-50m.json > api/static/map/countries.json

Each TopoJSON arc (a stretch of coastline or border shared by the countries
on both sides) is simplified once, with Douglas-Peucker, finer inside the
Europe box than elsewhere; rings are then rebuilt from the simplified arcs,
so neighbours still share their border exactly. Coordinates are written as
integers in hundredths of a degree, each ring's first point absolute and
the next ones as differences, which keeps the file small.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from shapely import LineString

QUANTUM = 100  # integer units per degree
EUROPE = (-32.0, 27.0, 70.0, 82.0)  # lon_min, lat_min, lon_max, lat_max: drawn with the finer tolerance
TOLERANCE_EUROPE = 0.01  # degrees
TOLERANCE_ELSEWHERE = 0.12

Point = tuple[float, float]


def decode_arcs(topology: dict[str, Any]) -> list[list[Point]]:
    """Return the topology's arcs as absolute (lon, lat) points (TopoJSON arcs are quantized and delta-encoded)."""
    (sx, sy), (tx, ty) = topology["transform"]["scale"], topology["transform"]["translate"]
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)
    return arcs


def simplify_arc(points: list[Point]) -> list[Point]:
    """Return the arc simplified with the tolerance of where it lies; its two ends are kept."""
    if len(points) <= 2:
        return points
    lons = [p[0] for p in points]
    lats = [p[1] for p in points]
    in_europe = max(lons) >= EUROPE[0] and min(lons) <= EUROPE[2] and max(lats) >= EUROPE[1] and min(lats) <= EUROPE[3]
    tolerance = TOLERANCE_EUROPE if in_europe else TOLERANCE_ELSEWHERE
    return [(float(x), float(y)) for x, y in LineString(points).simplify(tolerance, preserve_topology=False).coords]


def ring_from_arcs(indexes: list[int], arcs: list[list[Point]]) -> list[Point]:
    """Return the ring a TopoJSON arc list describes (a negative index ~i is arc i reversed)."""
    ring: list[Point] = []
    for index in indexes:
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        ring.extend(arc if not ring else arc[1:])  # consecutive arcs share their joining point
    return ring


def encode_ring(ring: list[Point]) -> list[int] | None:
    """Return the ring as flat deltas of quantized lon, lat; None if it shrinks below a triangle."""
    flat: list[int] = []
    last: tuple[int, int] | None = None
    count = 0
    for lon, lat in ring:
        q = (round(lon * QUANTUM), round(lat * QUANTUM))
        if q == last:
            continue
        flat.extend(q if last is None else (q[0] - last[0], q[1] - last[1]))
        last = q
        count += 1
    return flat if count >= 4 else None


def build(topology: dict[str, Any]) -> dict[str, Any]:
    """Return the outlines document: one list of rings per country, named."""
    arcs = [simplify_arc(arc) for arc in decode_arcs(topology)]
    countries = []
    for geometry in topology["objects"]["countries"]["geometries"]:
        polygons = geometry.get("arcs") or []
        if geometry["type"] == "Polygon":
            polygons = [polygons]
        rings = [encoded for polygon in polygons for indexes in polygon if (encoded := encode_ring(ring_from_arcs(indexes, arcs)))]
        if rings:
            countries.append({"name": geometry.get("properties", {}).get("name", ""), "rings": rings})
    return {
        "source": "world-atlas 2.0.2 countries-50m.json: Natural Earth 1:50m Admin 0 countries (public domain), simplified by build_outlines.py",
        "quantum": QUANTUM,
        "encoding": "each ring: lon0, lat0, then dlon, dlat pairs; integers in 1/quantum degree",
        "countries": countries,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: build_outlines.py COUNTRIES-50M.JSON > countries.json", file=sys.stderr)
        return 2
    document = build(json.loads(Path(argv[0]).read_text()))
    sys.stdout.write(json.dumps(document, separators=(",", ":"), ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
