"""Human-readable text of a search result, for the command line."""

from __future__ import annotations

from typing import Any

from ..backend import SearchResult

__all__ = ["render_result", "render_facets"]


def render_result(result: SearchResult, dated: bool = False) -> str:
    """Return a table of the hits followed by the facets; ``dated`` shows the pickup's date too (a search over several days).

    A regular trip's occurrence shows as its id, ``@`` and the date's month and day.
    """
    lines = [f"{result.total} trips match ({result.took_ms:.1f} ms, {result.candidates} candidates)"]
    if result.trips:
        when = 12 if dated else 6
        # "near": the known city nearest to the pickup or dropoff point.
        header = f"{'id':<18} {'pickup':<{when}} {'near':<18} {'walk':>6}  {'dropoff':<6} {'near':<18} {'walk':>6}  {'price':>10} {'seats':>5} {'rating':>6}"
        lines += ["", header, "-" * len(header)]
        for hit in result.trips:
            trip = hit.trip
            price = trip.get("price", {})
            rating = (trip.get("driver") or {}).get("rating")
            name = hit.id if hit.occurrence is None else f"{hit.id[:12]}@{hit.occurrence[5:]}"
            pickup = f"{hit.pickup.time[5:10]} {hit.pickup.time[11:16]}" if dated else hit.pickup.time[11:16]
            lines.append(
                f"{name[:18]:<18} {pickup:<{when}} {hit.pickup.place.name[:18]:<18} {hit.pickup.distance_km:>5.1f}k  "
                f"{hit.dropoff.time[11:16]:<6} {hit.dropoff.place.name[:18]:<18} {hit.dropoff.distance_km:>5.1f}k  "
                f"{price.get('amount', 0):>6.2f} {price.get('currency', ''):<3} {trip.get('seats_available', ''):>5} {rating if rating is not None else '-':>6}"
            )
    if result.next_cursor:
        lines += ["", f"more: --cursor {result.next_cursor}"]
    if result.facets:
        lines += ["", render_facets(result.facets)]
    return "\n".join(lines)


def _bar(count: int, top: int, width: int = 20) -> str:
    return "#" * (round(width * count / top) if top else 0)


def render_facets(facets: dict[str, Any]) -> str:
    """Return the facets as short labelled blocks."""
    out: list[str] = []
    if "dates" in facets:
        out.append("dates:          " + "  ".join(f"{b['date'][5:]} {b['count']}" for b in facets["dates"]))
    if "time_of_day" in facets:
        out.append("time of day:    " + "  ".join(f"{b['key']} {b['count']}" for b in facets["time_of_day"]))
    if "departure_hour" in facets:
        out.append("departure hour: " + " ".join(f"{b['hour']}h:{b['count']}" for b in facets["departure_hour"] if b["count"]))
    if "price" in facets:
        for cur in facets["price"]["currencies"]:
            out.append(f"price {cur['currency']}:      {cur['count']} trips, min {cur['min']:.2f}, avg {cur['avg']:.2f}, max {cur['max']:.2f}")
            top = max(b["count"] for b in cur["buckets"])
            for b in cur["buckets"]:
                out.append(f"  {b['from']:>8.2f}-{b['to']:<8.2f} {b['count']:>6} {_bar(b['count'], top)}")
    if "options" in facets:
        out.append("options:        " + "  ".join(f"{k} {v}" for k, v in facets["options"].items()))
    if "seats_available" in facets:
        out.append("seats left:     " + "  ".join(f"{b['seats']}: {b['count']}" for b in facets["seats_available"]))
    if "driver_rating" in facets:
        out.append("driver rating:  " + "  ".join(f"{'>= ' + str(b['min']) if b['min'] is not None else 'any'}: {b['count']}" for b in facets["driver_rating"]))
    for name in ("pickup_cells", "dropoff_cells"):
        if name in facets:
            cells = facets[name]
            shown = ", ".join(f"{c['cell']} ({c['lat']:.3f},{c['lon']:.3f}) {c['count']}" for c in cells[:5])
            out.append(f"{name.replace('_', ' ')}:   {len(cells)} cells; top: {shown}")
    return "\n".join(out)
