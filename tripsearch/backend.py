"""The contract every backend implements, and the values it returns.

:class:`Backend` is what ``tripsearch.open`` gives: the embedded engine and
the Elasticsearch backend both implement it, and one shared test suite runs
against both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping, NamedTuple, Protocol, Sequence, runtime_checkable

import numpy as np
import orjson

from .errors import InvalidInput, InvalidTrip
from .model import Trip, parse_trips_routes, paused_gc, raw_trip_id
from .data.places import Place, nearest_place
from .query.model import Query

__all__ = ["Backend", "Refresh", "delete_targets", "parse_upserts", "Latest", "ParsedUpserts", "TripInput", "ItemResult", "UpsertReport", "DeleteReport", "Point", "Hit", "SearchResult"]

TripInput = Mapping[str, Any] | Trip | bytes | str


@dataclass(frozen=True, slots=True)
class ItemResult:
    """What happened to one trip of a write: ``line`` counts from 1 in the input."""

    line: int
    id: str | None
    result: Literal["stored", "unchanged", "rejected", "deleted", "not_found"]
    version: int | None = None
    field: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("line", self.line), ("id", self.id), ("result", self.result), ("version", self.version), ("field", self.field), ("reason", self.reason)) if v is not None}

    def __reduce__(self) -> tuple[type[ItemResult], tuple[Any, ...]]:
        # a constructor call: a frozen slotted dataclass otherwise pickles through dataclasses.fields() per item
        # (the indexer worker's writer process answers with one per event: 0.9 against 1.8 us an item to pickle)
        return ItemResult, (self.line, self.id, self.result, self.version, self.field, self.reason)


@dataclass(frozen=True)
class UpsertReport:
    """Per-trip results of an upsert, in input order, with counts."""

    items: tuple[ItemResult, ...]

    def count(self, result: str) -> int:
        return sum(1 for i in self.items if i.result == result)

    @property
    def stored(self) -> int:
        return self.count("stored")

    @property
    def unchanged(self) -> int:
        return self.count("unchanged")

    @property
    def rejected(self) -> int:
        return self.count("rejected")

    def to_dict(self) -> dict[str, Any]:
        return {
            "stored": self.stored,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "items": [i.to_dict() for i in self.items],
        }


@dataclass(frozen=True)
class DeleteReport:
    """Per-id results of a delete: ``deleted`` or ``not_found``."""

    items: tuple[ItemResult, ...]

    @property
    def deleted(self) -> int:
        return sum(1 for i in self.items if i.result == "deleted")

    def to_dict(self) -> dict[str, Any]:
        return {"deleted": self.deleted, "items": [i.to_dict() for i in self.items]}


@dataclass(frozen=True, slots=True)
class Point:
    """A pickup or dropoff: where on the route, how far from what the passenger asked, and when."""

    lat: float
    lon: float
    distance_km: float
    time: str  # ISO 8601 with the trip's UTC offset
    nearest: Place | None = field(default=None, compare=False, repr=False)  # :attr:`place`, when whoever made the point looked it up already

    @property
    def place(self) -> Place:
        """Return the known place nearest to the point, to name it ("near Lyon")."""
        return self.nearest if self.nearest is not None else nearest_place(self.lat, self.lon)

    def to_dict(self) -> dict[str, Any]:
        return self.dict_of(self.lat, self.lon, self.distance_km, self.time, self.place)

    @staticmethod
    def dict_of(lat: float, lon: float, distance_km: float, time: str, place: Place) -> dict[str, Any]:
        """Return what :meth:`to_dict` says of such a point, without making it (a batch of alert matches says it of thousands)."""
        return {"lat": lat, "lon": lon, "distance_km": distance_km, "time": time, "place": {"name": place.name, "country": place.country}}


@dataclass(frozen=True, slots=True)
class Hit:
    """One result: the trip, where and when it picks up and drops off, and its sort key (for the cursor).

    A regular trip's hit is one of its occurrences: ``id`` is the trip's,
    ``occurrence`` the date, and ``source`` that date's document (see
    :func:`~tripsearch.occurrences.occurrence_document`).

    ``source`` is the trip document, or the JSON bytes a backend stored it as:
    ``trip`` decodes those when read, and the HTTP API copies them into its
    answer without decoding (``to_dict(raw=True)``).
    """

    id: str
    score: float
    pickup: Point
    dropoff: Point
    source: dict[str, Any] | bytes
    sort: tuple[Any, ...]
    occurrence: str | None = None  # the date (YYYY-MM-DD) of a regular trip's occurrence; None for a punctual trip

    @property
    def trip(self) -> dict[str, Any]:
        source = self.source
        return orjson.loads(source) if isinstance(source, bytes) else source

    def to_dict(self, raw: bool = False) -> dict[str, Any]:
        """Return the hit as JSON data; with ``raw``, stored JSON stays bytes in an ``orjson.Fragment``."""
        trip = orjson.Fragment(self.source) if raw and isinstance(self.source, bytes) else self.trip
        out = {"id": self.id, "score": self.score, "pickup": self.pickup.to_dict(), "dropoff": self.dropoff.to_dict(), "trip": trip}
        if self.occurrence is not None:
            out["occurrence"] = self.occurrence
        return out


@dataclass(frozen=True)
class SearchResult:
    total: int
    trips: list[Hit]
    facets: dict[str, Any] = field(default_factory=dict)
    next_cursor: str | None = None
    took_ms: float = 0.0
    candidates: int = 0  # trips the index proposed before the exact rules

    def to_dict(self, raw: bool = False) -> dict[str, Any]:
        """Return the result as JSON data (``raw``: see :meth:`Hit.to_dict`)."""
        return {
            "total": self.total,
            "trips": [h.to_dict(raw) for h in self.trips],
            "facets": self.facets,
            "next_cursor": self.next_cursor,
            "took_ms": self.took_ms,
        }


class Latest(NamedTuple):
    """The highest version of an id in one upsert call: its position in the input, the trip, its route and the input as given."""

    pos: int
    trip: Trip
    route: np.ndarray
    raw: TripInput


@dataclass(frozen=True)
class ParsedUpserts:
    """The inputs of an upsert as :func:`parse_upserts` read them, to hand to ``Backend.upsert`` instead of the inputs.

    A wrapper that reads the trips before the backend writes them (the
    alerts matcher) passes them on this way, so they are parsed once.
    """

    parsed: list[Trip | ItemResult]
    latest: dict[str, Latest]


def parse_upserts(trips: Iterable[TripInput] | ParsedUpserts, expect: Sequence[tuple[str, int]] | None = None) -> tuple[list[Trip | ItemResult], dict[str, Latest]]:
    """Parse the inputs of an upsert: each becomes a :class:`Trip` or a ``rejected`` item (``line`` = position + 1).

    Also returns, by id, the input holding its highest version in the call
    (the first of equal versions), the only one a backend needs to write.
    Inputs already parsed (:class:`ParsedUpserts`) are returned as they are.

    ``expect``: the (id, version) each input must carry, as a trip event
    names its trip; an input that carries another is rejected naming ``id``
    or ``version``.
    """
    if isinstance(trips, ParsedUpserts):
        return trips.parsed, trips.latest
    raws = trips if isinstance(trips, list) else list(trips)
    parsed: list[Trip | ItemResult] = []
    latest: dict[str, Latest] = {}
    with paused_gc():
        outcomes = parse_trips_routes(raws)
        if expect is not None:
            _check_expected(outcomes, expect)
        _pick_latest(raws, outcomes, parsed, latest)
    return parsed, latest


def _check_expected(outcomes: list[tuple[Trip, np.ndarray] | InvalidTrip], expect: Sequence[tuple[str, int]]) -> None:
    if len(expect) != len(outcomes):
        raise ValueError(f"expect names {len(expect)} trips for {len(outcomes)} inputs")
    for pos, ((trip_id, version), outcome) in enumerate(zip(expect, outcomes)):
        if isinstance(outcome, InvalidTrip):
            continue
        trip = outcome[0]
        if trip.id != trip_id:
            outcomes[pos] = InvalidTrip("id", f"must equal trip_id {trip_id!r}, got {trip.id!r}")
        elif trip.version != version:
            outcomes[pos] = InvalidTrip("version", f"must equal version {version}, got {trip.version!r}")


def _pick_latest(raws: list[TripInput], outcomes: list[tuple[Trip, np.ndarray] | InvalidTrip], parsed: list[Trip | ItemResult], latest: dict[str, Latest]) -> None:
    for pos, (raw, outcome) in enumerate(zip(raws, outcomes)):
        if isinstance(outcome, InvalidTrip):
            parsed.append(ItemResult(pos + 1, raw_trip_id(raw), "rejected", field=outcome.field or None, reason=outcome.reason))
            continue
        trip, route = outcome
        parsed.append(trip)
        seen = latest.get(trip.id)
        if seen is None or trip.version > seen.trip.version:
            latest[trip.id] = Latest(pos, trip, route, raw)


def delete_targets(ids: Iterable[str | tuple[str, int]]) -> list[tuple[str, int | None]]:
    """Return each delete as (id, version or None), or raise :class:`InvalidInput` naming the bad one."""
    out: list[tuple[str, int | None]] = []
    for pos, item in enumerate(ids):
        if isinstance(item, str):
            out.append((item, None))
            continue
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], int) and not isinstance(item[1], bool):
            if not 0 <= item[1] < 2**63:
                raise InvalidInput(f"ids[{pos}].version", "must be an integer from 0 to 2^63-1")
            out.append((item[0], item[1]))
            continue
        raise InvalidInput(f"ids[{pos}]", "must be a trip id or an (id, version) pair")
    return out


# When a write becomes searchable: ``False`` within a refresh interval; ``True`` through this
# backend object before the call returns; ``"wait_for"`` through every reader of the index
# (other processes included) before the call returns.
Refresh = bool | Literal["wait_for"]


@runtime_checkable
class Backend(Protocol):
    """A trip search engine: durable writes, exact search."""

    def upsert(self, trips: Iterable[TripInput] | ParsedUpserts, refresh: Refresh = False) -> UpsertReport:
        """Store trips whose version is higher than the stored one; report each trip's fate (``refresh``: see :data:`Refresh`).

        ``trips`` may come already parsed (:class:`ParsedUpserts`), as a wrapper that read them hands them on.
        """
        ...

    def delete(self, ids: Iterable[str | tuple[str, int]], refresh: Refresh = False) -> DeleteReport:
        """Delete trips by id, or by (id, version): a versioned delete applies only over a lower stored version."""
        ...

    def get(self, trip_id: str) -> dict[str, Any]:
        """Return a stored trip document, or raise :class:`~tripsearch.errors.NotFound`."""
        ...

    def search(self, query: Query | Mapping[str, Any]) -> SearchResult:
        """Return the trips that match ``query``, ranked and paged, with facets."""
        ...

    def refresh(self) -> None:
        """Make every acknowledged write visible to search now."""
        ...

    def stats(self) -> dict[str, Any]:
        """Return figures about the index (trips, memory, refresh lag, ...)."""
        ...

    def close(self) -> None:
        """Release files, threads and connections."""
        ...
