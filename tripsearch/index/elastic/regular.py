"""Regular trips on Elasticsearch: a master document per trip, a search document per occurrence, and how a version replaces them.

A punctual trip is one document, ``_id`` = trip id. A regular trip is a
*master* document at ``_id`` = trip id (``regular``: the stored trip, for
``get`` and reindex; no status, so no search matches it) and one search
document per occurrence, ``_id`` = :func:`~tripsearch.occurrences.occurrence_key`,
naming its trip in ``trip_id``; every one is written at the trip's version
(external versioning). The cluster we run has no ``_delete_by_query`` (nor
scripts), and Elasticsearch's own deletes forget their version after
``index.gc_deletes``; so an occurrence a newer version (or a delete) no
longer has is *retired*: overwritten by a tombstone at that version, which
a late lower version cannot undo.

The write protocol (docs/elasticsearch.md, "Regular trips") keeps one rule:
occurrences are written before their master, so whoever writes a master
after another finds the other's occurrences in a search after a refresh.

- The writer of version V that stored its master retires the live
  occurrences of versions below V (:func:`retire_occurrences`), when a
  version was stored before (the master write "updated" a document, or
  the document it replaced was a regular trip's master).
- A writer whose occurrences went out but whose master did not (a version
  at least as high was stored meanwhile, or the master was refused)
  retires its own occurrences at its version (:func:`retire_own`), unless
  the stored master is its very version, alive (a duplicate write).
- A delete retires the occurrences of the version it buries, and those
  below.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence, TypeVar

from ...errors import BackendUnavailable
from ...model import Trip, schedule_dates
from ...occurrences import occurrences
from .connection import Connection, chunks, error_reason
from .mapping import master_document, tombstone_document, trips_to_documents

__all__ = ["index_documents", "row_chunks", "retire_occurrences", "retire_own", "OccurrenceDocs"]

T = TypeVar("T")

# A regular trip's occurrence documents: (key, document), in date order.
OccurrenceDocs = list[tuple[str, bytes]]
_TRIPS_PER_SEARCH = 1000


def index_documents(trips: Sequence[Trip], sources: Sequence[bytes]) -> tuple[list[bytes], list[OccurrenceDocs]]:
    """Return the document at each trip's id (a punctual trip's search document, a regular trip's master) and each trip's occurrence documents (none for a punctual trip)."""
    if all(t.schedule is None for t in trips):
        return trips_to_documents(trips, sources), [[] for _ in trips]
    punctual = [i for i, t in enumerate(trips) if t.schedule is None]
    searched = dict(zip(punctual, trips_to_documents([trips[i] for i in punctual], [sources[i] for i in punctual])))
    made = [occurrences(t) if t.schedule is not None else [] for t in trips]
    flat = [o for os in made for o in os]
    flat_docs = iter(trips_to_documents(flat, [None] * len(flat)))
    docs = [searched[i] if t.schedule is None else master_document(t.id, sources[i]) for i, t in enumerate(trips)]
    return docs, [[(o.id, next(flat_docs)) for o in os] for os in made]


def row_chunks(items: Sequence[T], trip_of: Callable[[T], Trip], rows: int) -> Iterator[list[T]]:
    """Yield ``items`` in lists of at most ``rows`` index rows (a regular trip counts its master and its occurrences; one with more is a list of its own)."""
    chunk: list[T] = []
    size = 0
    for item in items:
        trip = trip_of(item)
        n = 1 if trip.schedule is None else 1 + sum(1 for _ in schedule_dates(trip.schedule))
        if chunk and size + n > rows:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += n
    if chunk:
        yield chunk


def retire_occurrences(connection: Connection, below: dict[str, int], inclusive: bool, wait_s: float = 0.0) -> int:
    """Tombstone the live occurrences of each trip whose version is below ``below[trip id]`` (or equal, with ``inclusive``), at that version; return how many.

    A refresh first makes every occurrence written before now searchable
    (occurrences go out before their master: those of every master stored
    before the caller's are). A tombstone that meets a higher version (409)
    is dropped: that version's writer decides.
    """
    if not below:
        return 0
    connection.refresh()
    ops: list[tuple[dict[str, Any], bytes]] = []
    for ids in chunks(sorted(below), _TRIPS_PER_SEARCH):
        body = {
            "query": {"bool": {"filter": [{"terms": {"trip_id": ids}}, {"term": {"deleted": False}}]}},
            "size": connection.page_size,
            "version": True,
            "_source": False,
            "docvalue_fields": ["trip_id"],
        }
        with connection.translate("find the occurrences a version replaces"):
            hits = connection.hits(body)
        for h in hits:
            tid = h["fields"]["trip_id"][0]
            version = below[tid]
            if int(h["_version"]) < version or (inclusive and int(h["_version"]) == version):
                kind = "external_gte" if inclusive else "external"
                ops.append(({"index": {"_id": h["_id"], "version": version, "version_type": kind}}, tombstone_document(h["_id"], tid)))
    return _tombstones(connection, ops, wait_s)


def retire_own(connection: Connection, written: dict[str, tuple[int, list[str]]], wait_s: float = 0.0) -> int:
    """Tombstone the occurrences a writer sent whose master it did not store (``written``: trip id -> (version, keys)), unless that version is stored alive; return how many."""
    if not written:
        return 0
    stored = connection.kinds(list(written))
    ops = [
        ({"index": {"_id": key, "version": version, "version_type": "external_gte"}}, tombstone_document(key, tid))
        for tid, (version, keys) in written.items()
        if stored.get(tid, (None, True, False))[:2] != (version, False)
        for key in keys
    ]
    return _tombstones(connection, ops, wait_s)


def _tombstones(connection: Connection, ops: list[tuple[dict[str, Any], bytes]], wait_s: float) -> int:
    done = 0
    for item in connection.bulk(ops, "retire occurrences", None, wait_s):
        if item["status"] < 300:
            done += 1
        elif item["status"] != 409:
            raise BackendUnavailable(f"cannot retire an occurrence: Elasticsearch refused the tombstone ({error_reason(item)})")
    return done
