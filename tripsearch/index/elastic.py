"""The Elasticsearch backend: the same contract and the same results as the embedded one.

Open it with ``tripsearch.open("http://host:9200")`` (or several addresses
separated by commas). The trips live in a versioned index (``trips-000001``)
behind an alias (``trips``) made from an index template; ``tripsearch
reindex`` builds the next generation and swaps the alias (:meth:`ElasticBackend.reindex`).

- Writes go through ``_bulk`` with ``version_type=external``: the trip
  version is the document version, so Elasticsearch itself keeps the highest
  one. A delete leaves a tombstone document at the trip's version
  (``external_gte``), so a late lower version cannot bring the trip back.
- A search compiles to a :class:`~tripsearch.index.elastic_query.SearchPlan`:
  the shards keep only the trips whose route may match (cells near both
  places in order along the route, route points near both, the day, the
  filters no facet leaves out) and count, for the ``dates`` facet, the
  trips of the other days that certainly match; the trips they cannot
  decide come back as compact rows (with a point in time when there is
  more than one page), turned into :class:`~tripsearch.columns.TripColumns`,
  then decided, ranked, paged and faceted by the shared
  :func:`~tripsearch.query.execute.execute`. Only the page of hits is
  fetched in full (``mget``).
- Every client error is translated here: a cluster that cannot answer gives
  :class:`~tripsearch.errors.BackendUnavailable` within ``request_timeout``
  (times ``1 + max_retries`` at worst).

See docs/elasticsearch.md for the design, the proofs of exactness, and
shard sizing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import orjson
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, Elasticsearch, TransportError
from elasticsearch.serializer import OrjsonSerializer
from numpy.typing import NDArray

from ..backend import DeleteReport, ItemResult, SearchResult, TripInput, UpsertReport, delete_targets, parse_upserts
from ..columns import TripColumns
from ..errors import BackendUnavailable, NotFound, TripSearchError
from ..model import Trip, parse_trip, trip_to_json
from ..query.execute import execute
from ..query.matching import Windows
from ..query.model import Query, parse_query
from .cells import disk_to_cells
from .elastic_mapping import (
    MAPPING_VERSION,
    CompactFormatError,
    Corridor,
    compact_to_columns,
    index_name,
    index_template,
    mapping_version,
    template_name,
    tombstone_document,
    trips_to_documents,
)
from .elastic_query import CERTAIN_DATES, DEFAULT_PAGE_SIZE, SearchPlan, compile_search

__all__ = ["ElasticBackend", "DEFAULT_INDEX", "corridor_windows"]

log = logging.getLogger("tripsearch")

DEFAULT_INDEX = "trips"
PIT_KEEP_ALIVE = "1m"
BULK_MAX_BYTES = 8 << 20  # per _bulk request, far below http.max_content_length (100 MB)
BULK_MAX_TRIPS = 1000
BULK_IN_FLIGHT = 2  # bulk requests sent and not yet answered, per upsert call
ID_BATCH = 1000  # ids per mget
DELETE_ATTEMPTS = 3


# What a search reads of an msearch answer: every other key is left out by Elasticsearch, so fewer
# bytes cross the wire and fewer objects are made here.
_MSEARCH_FIELDS = [
    "took",
    "responses.error",
    "responses.hits.total",
    "responses.hits.hits.fields",
    "responses.aggregations",
]


class _MeasuringSerializer(OrjsonSerializer):
    """The client's JSON serializer, remembering per thread the size of the last answer it read (answers come chunked)."""

    _local = threading.local()

    def loads(self, data: bytes) -> Any:
        _MeasuringSerializer._local.size = len(data)
        return super().loads(data)

    @classmethod
    def last_size(cls) -> int:
        return int(getattr(cls._local, "size", 0))


class _Retry(Exception):
    """A search failed in a way that trying again through the alias may fix (its index went away, a shard copy failed)."""


class ElasticBackend:
    """A trip search engine over an Elasticsearch index alias.

    ``number_of_shards`` and ``number_of_replicas`` apply to the index this
    creates (the first one, or the next one on :meth:`reindex`); when the
    index exists, an explicit ``number_of_replicas`` is applied to it and a
    different ``number_of_shards`` only logs that a reindex is needed.
    ``refresh_interval`` (seconds; 0 turns periodic refresh off, as in the
    embedded backend) likewise applies to new indices. With ``create=False``
    a missing alias is an error instead of a new empty index.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        index: str = DEFAULT_INDEX,
        number_of_shards: int | None = None,
        number_of_replicas: int | None = None,
        refresh_interval: float | None = None,
        request_timeout: float = 5.0,
        max_retries: int = 1,
        page_size: int = DEFAULT_PAGE_SIZE,
        create: bool = True,
    ) -> None:
        self.hosts = [h.strip() for h in url.split(",")] if isinstance(url, str) else list(url)
        self.alias = index
        self.number_of_shards = number_of_shards
        self.number_of_replicas = number_of_replicas
        self.refresh_interval = refresh_interval
        self.request_timeout = request_timeout
        self.page_size = page_size
        self.create = create
        try:
            self._es = Elasticsearch(
                self.hosts,
                request_timeout=request_timeout,
                max_retries=max_retries,
                retry_on_timeout=False,
                serializer=_MeasuringSerializer(),
            )
        except ValueError as exc:  # the client checks addresses before any request
            raise BackendUnavailable(f"cannot use Elasticsearch at {url!r}: {exc}", retry_after=60.0) from None
        self._counters_lock = threading.Lock()
        self._bulk_pool: ThreadPoolExecutor | None = None
        self._counters = {"searches": 0, "fetched": 0, "candidates": 0, "matches": 0, "es_requests": 0, "took_ms": 0, "fetched_bytes": 0}
        try:
            self.mapping_version = self._open_index()
        except BaseException:
            self._es.close()
            raise

    # -- the index ------------------------------------------------------------

    def _open_index(self) -> int:
        """Create the template, the first index and the alias if missing; return the mapping version of the index."""
        with self._translate("open the index"):
            if self.create and self._alias_target() is None:
                self._put_template()
                try:
                    self._es.indices.create(index=index_name(self.alias, 1), aliases={self.alias: {}})
                except ApiError as exc:
                    if exc.error != "resource_already_exists_exception":
                        raise
                    # another process created it first, alias included (one request)
            concrete = self._concrete_index()
            mapping = self._es.indices.get_mapping(index=concrete)[concrete]["mappings"]
            self._adjust_settings(concrete)
        version = mapping_version(mapping)
        if version != MAPPING_VERSION:
            log.warning("index %s has mapping version %d, this code searches version %d: run `tripsearch reindex` (searches fail until then)", concrete, version, MAPPING_VERSION)
        return version

    def _concrete_index(self) -> str:
        """Return the index behind the alias."""
        target = self._alias_target()
        if target is None:
            raise BackendUnavailable(f"the alias {self.alias!r} does not exist", retry_after=5.0)
        return target

    def _alias_target(self) -> str | None:
        """Return the index behind the alias, or None if there is no alias (nor index) of that name."""
        resp = self._es.options(ignore_status=404).indices.get_alias(name=self.alias)
        if resp.meta.status == 404:
            if self._es.indices.exists(index=self.alias):
                raise BackendUnavailable(f"{self.alias!r} is an index, not an alias: tripsearch keeps its trips in versioned indices behind an alias", retry_after=60.0)
            return None
        names = sorted(resp.body)
        if len(names) != 1:
            raise BackendUnavailable(f"the alias {self.alias!r} points to {len(names)} indices ({', '.join(names)}); it must point to one", retry_after=60.0)
        return names[0]

    def _put_template(self, shards: int | None = None, replicas: int | None = None) -> None:
        body = index_template(
            self.alias,
            shards=shards or self.number_of_shards or 1,
            replicas=replicas if replicas is not None else (self.number_of_replicas if self.number_of_replicas is not None else 1),
            refresh_interval=_interval(self.refresh_interval),
        )
        self._es.indices.put_index_template(name=template_name(self.alias), **body)

    def _index_settings(self, index: str) -> tuple[int, int, float]:
        """Return the shards, replicas and refresh interval (seconds, 0 when off) of an index."""
        found = self._es.indices.get_settings(index=index, name="index.number_of_*,index.refresh_interval", flat_settings=True, include_defaults=True)[index]
        settings = {**found.get("defaults", {}), **found["settings"]}
        return int(settings["index.number_of_shards"]), int(settings["index.number_of_replicas"]), _seconds(settings.get("index.refresh_interval", "1s"))

    def _adjust_settings(self, index: str) -> None:
        if self.number_of_shards is None and self.number_of_replicas is None:
            return
        shards, replicas, _ = self._index_settings(index)
        if self.number_of_replicas is not None and replicas != self.number_of_replicas:
            self._es.indices.put_settings(index=index, settings={"index.number_of_replicas": self.number_of_replicas})
        if self.number_of_shards is not None and shards != self.number_of_shards:
            log.warning("index %s has %d shards, not %d: run `tripsearch reindex --shards %d` to change it", index, shards, self.number_of_shards, self.number_of_shards)

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        """Turn every client exception into :class:`BackendUnavailable`, saying what could not be done and why."""
        try:
            yield
        except TripSearchError:
            raise
        except ConnectionTimeout:
            raise BackendUnavailable(f"cannot {action}: Elasticsearch did not answer within {self.request_timeout:g} s", retry_after=self.request_timeout) from None
        except TransportError as exc:
            raise BackendUnavailable(f"cannot {action}: Elasticsearch at {', '.join(self.hosts)} cannot be reached ({exc.message})", retry_after=1.0) from None
        except ApiError as exc:
            status = exc.meta.status
            retry_after = 5.0 if status in (429, 503) else 1.0
            raise BackendUnavailable(f"cannot {action}: Elasticsearch answered {status} {exc.error}: {_reason(exc.body) or exc.message}", retry_after=retry_after) from None

    # -- writes ---------------------------------------------------------------

    def upsert(self, trips: Iterable[TripInput], refresh: bool = False) -> UpsertReport:
        """Store every valid trip whose version is higher than the stored one; report each by input line.

        Within one call, the highest version of an id wins; its other lines
        are ``unchanged`` (the final state is that of sending them one by
        one; a lower version sent first would have been ``stored``, then replaced).
        """
        parsed, latest = parse_upserts(trips)
        winners = [(w.pos, w.trip, w.raw) for w in latest.values()]
        results: dict[int, dict[str, Any]] = {}
        # Documents are built here while the cluster indexes the chunks before (the request waits
        # without the GIL): the two overlap, and at most BULK_IN_FLIGHT chunks wait at a time.
        in_flight: deque[tuple[list[int], Future[list[dict[str, Any]]]]] = deque()
        try:
            for chunk in _chunks(winners, BULK_MAX_TRIPS):
                docs = trips_to_documents([t for _, t, _ in chunk], [_source(raw, t) for _, t, raw in chunk])
                ops = [({"index": {"_id": t.id, "version": t.version, "version_type": "external"}}, doc) for (_, t, _), doc in zip(chunk, docs)]
                in_flight.append(([p for p, _, _ in chunk], self._writer().submit(self._bulk, ops, "store trips")))
                while len(in_flight) > BULK_IN_FLIGHT:
                    positions, done = in_flight.popleft()
                    results.update(zip(positions, done.result()))
            while in_flight:
                positions, done = in_flight.popleft()
                results.update(zip(positions, done.result()))
        finally:
            for _, pending in in_flight:
                pending.cancel()
        items = [entry if isinstance(entry, ItemResult) else _upsert_item(pos + 1, entry, results.get(pos)) for pos, entry in enumerate(parsed)]
        if refresh and winners:
            self.refresh()
        return UpsertReport(tuple(items))

    def _writer(self) -> ThreadPoolExecutor:
        with self._counters_lock:
            if self._bulk_pool is None:
                self._bulk_pool = ThreadPoolExecutor(max_workers=BULK_IN_FLIGHT, thread_name_prefix="tripsearch-bulk")
            return self._bulk_pool

    def delete(self, ids: Iterable[str | tuple[str, int]], refresh: bool = False) -> DeleteReport:
        """Delete trips by id, or by (id, version) as an event stream sends them.

        A tombstone keeps the version, so a late lower version cannot bring
        the trip back. An unversioned delete applies to a live trip and keeps
        its version; a versioned one applies over a lower stored version (or
        an unknown trip) and stores its own. A line is ``deleted`` if its id
        was live and got deleted by this call, else ``not_found``, as in the
        embedded backend.
        """
        wanted = delete_targets(ids)
        lines: dict[str, list[int | None]] = {}
        for tid, version in wanted:
            if tid:
                lines.setdefault(tid, []).append(version)
        deleted: set[str] = set()
        pending = list(lines)
        for _ in range(DELETE_ATTEMPTS):
            stored = self._versions(pending)
            plans = {tid: plan for tid in pending if (plan := _tombstone_plan(stored.get(tid), lines[tid])) is not None}
            ops = [({"index": {"_id": tid, "version": version, "version_type": kind}}, tombstone_document(tid)) for tid, (version, kind, _) in plans.items()]
            pending = []
            for (tid, (_, _, was_live)), item in zip(plans.items(), self._bulk(ops, "delete trips")):
                if item["status"] < 300:
                    if was_live:
                        deleted.add(tid)
                elif item["status"] == 409:
                    pending.append(tid)  # another version was stored meanwhile: decide again over it
                else:
                    raise BackendUnavailable(f"cannot delete trip {tid!r}: Elasticsearch refused the tombstone ({_reason(item)})")
            if not pending:
                break
        if pending:
            raise BackendUnavailable(f"trips {pending[:5]} changed during the delete {DELETE_ATTEMPTS} times; retry", retry_after=0.1)
        items = [ItemResult(pos + 1, tid, "deleted" if tid in deleted else "not_found", version) for pos, (tid, version) in enumerate(wanted)]
        if refresh:
            self.refresh()
        return DeleteReport(tuple(items))

    def _versions(self, ids: list[str], index: str | None = None) -> dict[str, tuple[int, bool]]:
        """Return (version, deleted) of each id that has a document (live or tombstone)."""
        out: dict[str, tuple[int, bool]] = {}
        for chunk in _chunks(ids, ID_BATCH):
            with self._translate("read trip versions"):
                resp = self._es.mget(index=index or self.alias, ids=chunk, source_includes=["deleted"])
            for doc in resp["docs"]:
                if doc.get("found"):
                    out[doc["_id"]] = (int(doc["_version"]), bool(doc.get("_source", {}).get("deleted")))
        return out

    def _bulk(self, ops: list[tuple[dict[str, Any], bytes]], action: str, index: str | None = None) -> list[dict[str, Any]]:
        """Send index operations in as few ``_bulk`` requests as fit; return each operation's result, in order.

        Items refused because the cluster cannot take writes now (a write
        block during a reindex, a full queue, a missing shard) make the whole
        call :class:`BackendUnavailable`: resending the same batch is safe,
        since versions make every write idempotent.
        """
        results: list[dict[str, Any]] = []
        body: list[bytes] = []
        size = 0
        for meta, doc in ops:
            line = orjson.dumps(meta) + b"\n" + doc + b"\n"
            if body and size + len(line) > BULK_MAX_BYTES:
                results.extend(self._send_bulk(body, action, index))
                body, size = [], 0
            body.append(line)
            size += len(line)
        if body:
            results.extend(self._send_bulk(body, action, index))
        return results

    def _send_bulk(self, lines: list[bytes], action: str, index: str | None) -> list[dict[str, Any]]:
        with self._translate(action):
            resp = self._es.bulk(operations=b"".join(lines), index=index or self.alias)  # type: ignore[arg-type]
        items = [next(iter(i.values())) for i in resp["items"]]
        if resp.get("errors"):
            busy = [i for i in items if _unavailable(i)]
            if busy:
                raise BackendUnavailable(f"cannot {action}: Elasticsearch refused {len(busy)} of {len(items)} writes for now ({_reason(busy[0])}); send them again", retry_after=1.0)
        return items

    # -- reads ----------------------------------------------------------------

    def get(self, trip_id: str) -> dict[str, Any]:
        """Return the stored document of a trip, or raise :class:`NotFound`."""
        if not trip_id:
            raise NotFound(trip_id)
        with self._translate("read a trip"):
            resp = self._es.options(ignore_status=404).get(index=self.alias, id=trip_id, source_includes=["trip"])
        if resp.meta.status == 404 and resp.body.get("found") is not False:
            raise BackendUnavailable(f"cannot read a trip: {_reason(resp.body)}", retry_after=5.0)
        trip = resp.body.get("_source", {}).get("trip") if resp.body.get("found") else None
        if trip is None:  # missing, or a tombstone
            raise NotFound(trip_id)
        return trip  # type: ignore[no-any-return]

    def search(self, query: Query | Mapping[str, Any]) -> SearchResult:
        """Return the matching trips, ranked and paged, with facets."""
        started = time.perf_counter()
        q = parse_query(query)
        self._check_mapping()
        hits, certain_dates = self._plan_hits(compile_search(q, self.page_size))
        cols, corridor = self._columns(hits)
        rows, windows = corridor_windows(
            corridor,
            disk_to_cells(q.from_point[0], q.from_point[1], q.from_radius_km),
            disk_to_cells(q.to_point[0], q.to_point[1], q.to_radius_km),
        )
        result = execute(q, cols, rows, self._fetch_docs, started, windows, certain_dates)
        with self._counters_lock:
            self._counters["searches"] += 1
            self._counters["fetched"] += len(cols)
            self._counters["candidates"] += result.candidates
            self._counters["matches"] += result.total
        return result

    def _check_mapping(self) -> None:
        """Refuse to search an index of another mapping version (its fields mean other things), reading it again first."""
        if self.mapping_version == MAPPING_VERSION:
            return
        with self._translate("read the mapping"):
            concrete = self._concrete_index()
            self.mapping_version = mapping_version(self._es.indices.get_mapping(index=concrete)[concrete]["mappings"])
        if self.mapping_version != MAPPING_VERSION:
            raise BackendUnavailable(
                f"index {concrete} has mapping version {self.mapping_version} and this tripsearch searches version {MAPPING_VERSION}: run `tripsearch reindex`",
                retry_after=60.0,
            )

    def _plan_hits(self, plan: SearchPlan) -> tuple[list[dict[str, Any]], dict[int, int]]:
        """Return the trips a search plan fetches (its candidates, then its band) and the shards' certain counts per day.

        A search whose index went away under it (a reindex deletes the old
        index after swapping the alias) or whose shard copy failed is tried
        once more; partial results are never used, since the trips fetched
        and counted must hold every match.
        """
        bodies = [plan.candidates] if plan.band is None else [plan.candidates, plan.band]
        for attempt in (1, 2):
            try:
                with self._translate("search"):
                    answers = self._msearch(bodies)
                    aggs: dict[str, Any] = answers[0].get("aggregations", {})
                    hits = [h for body, answer in zip(bodies, answers) for h in self._all_hits(body, answer)]
                break
            except _Retry as exc:
                if attempt == 2:
                    raise BackendUnavailable(f"cannot search: {exc}", retry_after=1.0) from None
        certain: dict[int, int] = {}
        if CERTAIN_DATES in aggs:
            certain = {int(day): int(b["doc_count"]) for day, b in aggs[CERTAIN_DATES]["certain"]["days"]["buckets"].items()}
        return hits, certain

    def _columns(self, hits: list[dict[str, Any]]) -> tuple[TripColumns, Corridor]:
        """Return fetched trips as columns in id order (so no result depends on shard order)."""
        try:
            rows = sorted((h["fields"]["id"][0], h["fields"]["compact"][0]) for h in hits)
            return compact_to_columns([tid for tid, _ in rows], [blob for _, blob in rows])
        except (CompactFormatError, KeyError) as exc:
            raise BackendUnavailable(f"cannot search: index {self.alias!r} holds trips this version cannot read ({exc}); run `tripsearch reindex`", retry_after=60.0) from None

    def _search(self, **request: Any) -> Any:
        """Send one search request, counting what it cost the cluster (``took``) and the wire (bytes)."""
        try:
            resp = self._es.search(**request, allow_partial_search_results=False)
        except ApiError as exc:
            raise _Retry(_reason(exc.body) or exc.message) from None
        size = _MeasuringSerializer.last_size()
        with self._counters_lock:
            self._counters["es_requests"] += 1
            self._counters["took_ms"] += int(resp.get("took", 0))
            self._counters["fetched_bytes"] += size
        return resp

    def _msearch(self, bodies: list[dict[str, Any]]) -> list[Any]:
        """Send several searches in one round trip; return their answers, counted as :meth:`_search` counts."""
        searches: list[dict[str, Any]] = []
        for body in bodies:
            searches += [{"index": self.alias, "allow_partial_search_results": False}, body]
        try:
            resp = self._es.msearch(searches=searches, filter_path=_MSEARCH_FIELDS)
        except ApiError as exc:
            raise _Retry(_reason(exc.body) or exc.message) from None
        answers = resp["responses"]
        failed = [a for a in answers if "error" in a]
        if failed:
            raise _Retry(_reason(failed[0]))
        with self._counters_lock:
            self._counters["es_requests"] += 1
            self._counters["took_ms"] += int(resp.get("took", 0))
            self._counters["fetched_bytes"] += _MeasuringSerializer.last_size()
        return list(answers)

    def _hits(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Return every hit of ``body``."""
        return self._all_hits(body, self._search(index=self.alias, body=body))

    def _all_hits(self, body: dict[str, Any], first: Any) -> list[dict[str, Any]]:
        """Return every hit of ``body``, given the answer to its first page."""
        hits: list[dict[str, Any]] = first["hits"].get("hits", [])  # absent when none (filter_path)
        if first["hits"]["total"]["value"] <= len(hits):
            return hits
        # More than one page: start again from a point in time, so the pages agree with each other.
        hits = []
        for page in self._pit_pages(self.alias, {k: v for k, v in body.items() if k != "aggs"}):
            hits.extend(page)
        return hits

    def _pit_pages(self, index: str, body: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Yield the hits of ``body`` on ``index`` page by page, consistently (point in time + ``search_after``)."""
        size = body.get("size", self.page_size)
        pit = self._es.open_point_in_time(index=index, keep_alive=PIT_KEEP_ALIVE)["id"]
        try:
            page_body = {k: v for k, v in body.items() if k not in ("sort", "track_total_hits")}
            page_body.update(sort=[{"_shard_doc": "asc"}], track_total_hits=False, size=size)
            while True:
                page_body["pit"] = {"id": pit, "keep_alive": PIT_KEEP_ALIVE}
                resp = self._search(body=page_body)
                pit = resp.get("pit_id", pit)
                page = resp["hits"]["hits"]
                if page:
                    yield page
                if len(page) < size:
                    return
                page_body["search_after"] = page[-1]["sort"]
        finally:
            try:
                self._es.close_point_in_time(id=pit)
            except (ApiError, TransportError):
                pass  # it expires by itself after PIT_KEEP_ALIVE

    def _fetch_docs(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        with self._translate("read the trips of a result page"):
            resp = self._es.mget(index=self.alias, ids=ids, source_includes=["trip"])
        with self._counters_lock:
            self._counters["es_requests"] += 1
            self._counters["fetched_bytes"] += _MeasuringSerializer.last_size()
        return {d["_id"]: d["_source"]["trip"] for d in resp["docs"] if d.get("found") and "trip" in d.get("_source", {})}

    # -- refresh, stats -------------------------------------------------------

    def refresh(self) -> None:
        """Make every acknowledged write visible to search now."""
        with self._translate("refresh the index"):
            self._es.indices.refresh(index=self.alias)

    def stats(self) -> dict[str, Any]:
        """Return figures about the index and the cluster, and how many candidates searches looked at."""
        with self._translate("read index figures"):
            concrete = self._concrete_index()
            shards, replicas, refresh_s = self._index_settings(concrete)
            health = self._es.cluster.health(index=self.alias)
            live = self._es.count(index=self.alias, query={"term": {"deleted": False}})["count"]
            tombstones = self._es.count(index=self.alias, query={"term": {"deleted": True}})["count"]
            nodes = self._es.nodes.info(filter_path="nodes.*.version")
        versions = sorted({n["version"] for n in nodes.get("nodes", {}).values()})
        with self._counters_lock:
            counters = dict(self._counters)
        return {
            "backend": "elasticsearch",
            "url": ", ".join(self.hosts),
            "index": self.alias,
            "concrete_index": concrete,
            "trips": int(live),
            "tombstones": int(tombstones),
            "shards": shards,
            "replicas": replicas,
            "elasticsearch_version": ", ".join(versions),
            "health": health["status"],
            "refresh_interval_s": refresh_s,
            "nodes": health["number_of_nodes"],
            "mapping_version": self.mapping_version,
            "page_size": self.page_size,
            "request_timeout_s": self.request_timeout,
            **counters,
            "candidates_per_match": round(counters["candidates"] / counters["matches"], 3) if counters["matches"] else None,
        }

    # -- reindex --------------------------------------------------------------

    def reindex(
        self,
        number_of_shards: int | None = None,
        number_of_replicas: int | None = None,
        keep_old: bool = False,
        batch_size: int = 1000,
        grace_s: float | None = None,
        progress: Callable[[str, int], None] | None = None,
    ) -> dict[str, Any]:
        """Rebuild the index as its next generation (new settings, current mapping) and swap the alias.

        1. Copy every document from a point in time of the old index, each
           trip rebuilt from its stored document, with the same external
           version (tombstones included). Writes go on meanwhile.
        2. Catch up: compare every id's version (and tombstone flag) in both
           indices and copy what changed during step 1; then block writes on
           the old index (writers get ``BackendUnavailable`` and retry) and
           catch up once more with what changed meanwhile.
        3. Swap the alias in one atomic request. Searches answer throughout,
           first from the old index, then from the new one; writes pause
           from the block to the swap.

        The old index is deleted unless ``keep_old``, ``grace_s`` seconds
        after the swap (default: ``request_timeout``) so that searches still
        reading it can finish (one that does not is tried again on the new
        index). On failure before the swap, the new index is deleted and the
        old one unblocked.
        """
        say = progress or (lambda stage, count: None)
        started = time.perf_counter()
        with self._translate("reindex"):
            old = self._concrete_index()
            old_shards, old_replicas, _ = self._index_settings(old)
            shards = number_of_shards or old_shards
            replicas = number_of_replicas if number_of_replicas is not None else old_replicas
            self._put_template(shards, replicas)
            new = index_name(self.alias, _generation(old, self.alias) + 1)
            # Loading is faster without replicas and refreshes; both are restored before the swap.
            self._es.indices.create(index=new, settings={"index.number_of_replicas": 0, "index.refresh_interval": "-1"})
        blocked = False
        swapped = False
        try:
            copied = self._copy(old, new, batch_size, lambda n: say("copy", n))
            # A first catch-up while writes go on, so the one under the write block has little left to do.
            caught_up = self._catch_up(old, new, lambda n: say("catch up", n))
            with self._translate("block writes on the old index"):
                self._es.indices.put_settings(index=old, settings={"index.blocks.write": True})
                blocked = True
                paused = time.perf_counter()
                self._es.indices.refresh(index=old)
            caught_up += self._catch_up(old, new, lambda n: say("catch up (writes paused)", n))
            with self._translate("open the new index"):
                self._es.indices.put_settings(index=new, settings={"index.number_of_replicas": replicas, "index.refresh_interval": _interval(self.refresh_interval)})
                self._es.indices.refresh(index=new)
                self._es.cluster.health(index=new, wait_for_status="yellow", timeout="60s")
                self._es.indices.update_aliases(actions=[{"remove": {"index": old, "alias": self.alias}}, {"add": {"index": new, "alias": self.alias}}])
                swapped = True
            pause_s = time.perf_counter() - paused
        finally:
            if not swapped:
                try:
                    if blocked:
                        self._es.indices.put_settings(index=old, settings={"index.blocks.write": False})
                    self._es.options(ignore_status=404).indices.delete(index=new)
                except (ApiError, TransportError) as exc:
                    log.error("reindex failed and could not clean up (%s): unblock %s and delete %s by hand", exc, old, new)
        if not keep_old:
            time.sleep(self.request_timeout if grace_s is None else grace_s)
            with self._translate("delete the old index"):
                self._es.options(ignore_status=404).indices.delete(index=old)
        self.mapping_version = MAPPING_VERSION
        return {
            "alias": self.alias,
            "from": old,
            "to": new,
            "copied": copied,
            "caught_up": caught_up,
            "old_deleted": not keep_old,
            "shards": shards,
            "replicas": replicas,
            "mapping_version": MAPPING_VERSION,
            "write_pause_s": round(pause_s, 3),
            "took_s": round(time.perf_counter() - started, 3),
        }

    def _copy(self, old: str, new: str, batch_size: int, say: Callable[[int], None]) -> int:
        """Copy every document of ``old`` into ``new``, rebuilt from its stored trip; return how many."""
        body = {"query": {"match_all": {}}, "size": batch_size, "version": True, "_source": ["trip", "deleted"]}
        copied = 0
        with self._translate("copy the trips"):
            try:
                for page in self._pit_pages(old, body):
                    copied += self._write_copies(page, new)
                    say(copied)
            except _Retry as exc:
                raise BackendUnavailable(f"cannot copy the trips: {exc}") from None
        return copied

    def _catch_up(self, old: str, new: str, say: Callable[[int], None]) -> int:
        """Copy the documents whose version in ``old`` differs from ``new`` (written during the copy); return how many."""
        body = {"query": {"match_all": {}}, "size": 5000, "version": True, "_source": ["deleted"]}
        changed = 0
        with self._translate("catch up with writes made during the copy"):
            try:
                for page in self._pit_pages(old, body):
                    have = self._versions([h["_id"] for h in page], index=new)
                    # A delete keeps the version, so a tombstone differs from the trip it replaced only by its flag.
                    stale = [h["_id"] for h in page if have.get(h["_id"]) != (int(h["_version"]), bool(h["_source"].get("deleted")))]
                    for chunk in _chunks(stale, ID_BATCH):
                        resp = self._es.mget(index=old, ids=chunk, source_includes=["trip", "deleted"])
                        changed += self._write_copies([d for d in resp["docs"] if d.get("found")], new)
                    say(changed)
            except _Retry as exc:
                raise BackendUnavailable(f"cannot catch up: {exc}") from None
        return changed

    def _write_copies(self, hits: list[dict[str, Any]], new: str) -> int:
        live = [h for h in hits if not h["_source"].get("deleted")]
        trips = [parse_trip(h["_source"]["trip"]) for h in live]
        docs = dict(zip((h["_id"] for h in live), trips_to_documents(trips, [orjson.dumps(h["_source"]["trip"]) for h in live])))
        ops = []
        for h in hits:
            doc = docs.get(h["_id"]) or tombstone_document(h["_id"])
            # external_gte: the old index is the truth, and nothing else writes to the new one before the swap
            ops.append(({"index": {"_id": h["_id"], "version": int(h["_version"]), "version_type": "external_gte"}}, doc))
        items = self._bulk(ops, "copy trips", index=new)
        refused = [i for i in items if i["status"] >= 300 and i["status"] != 409]
        if refused:
            raise BackendUnavailable(f"cannot copy trips: Elasticsearch refused {len(refused)} ({_reason(refused[0])})")
        return len(items)

    # -- housekeeping ---------------------------------------------------------

    def close(self) -> None:
        """Close the connections to the cluster."""
        if self._bulk_pool is not None:
            self._bulk_pool.shutdown(wait=True)
        self._es.close()

    def __enter__(self) -> ElasticBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def corridor_windows(corridor: Corridor, from_cells: NDArray[np.uint64], to_cells: NDArray[np.uint64]) -> tuple[NDArray[np.int64], Windows]:
    """Return the rows whose corridor passes near ``from`` and then near ``to``, with their segment windows.

    The rule of the embedded index (:meth:`~tripsearch.index.memory.IndexView.candidates`):
    a route's window near a point spans the segments of all its corridor
    cells around that point, and the pickup window must not start after the
    dropoff window ends.
    """
    n = len(corridor.start) - 1
    owner = np.repeat(np.arange(n), np.diff(corridor.start))
    windows = []
    for cells in (from_cells, to_cells):
        near = np.isin(corridor.cells, cells)
        lo = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        hi = np.full(n, -1, dtype=np.int64)
        np.minimum.at(lo, owner[near], corridor.seg_lo[near])
        np.maximum.at(hi, owner[near], corridor.seg_hi[near])
        windows.append((lo, hi))
    (f_lo, f_hi), (t_lo, t_hi) = windows
    rows = np.flatnonzero((f_hi >= 0) & (t_hi >= 0) & (f_lo <= t_hi)).astype(np.int64)
    return rows, Windows(f_lo[rows], f_hi[rows], t_lo[rows], t_hi[rows])


def _interval(seconds: float | None) -> str | None:
    """Return a refresh interval setting: None leaves Elasticsearch's default, 0 turns periodic refresh off."""
    if seconds is None:
        return None
    return "-1" if seconds <= 0 else f"{max(1, round(seconds * 1000))}ms"


def _seconds(value: str) -> float:
    """Return an Elasticsearch time value ("1s", "500ms", "-1") in seconds; 0 for "-1" (off)."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    for unit in ("ms", "s", "m", "h", "d"):
        if value.endswith(unit) and value[: -len(unit)].replace(".", "", 1).isdigit():
            return float(value[: -len(unit)]) * units[unit]
    return 0.0


def _generation(index: str, alias: str) -> int:
    tail = index.removeprefix(alias + "-")
    return int(tail) if tail.isdigit() else 0


def _unavailable(item: dict[str, Any]) -> bool:
    """Return whether a bulk item failed because the cluster cannot take it now (rather than because of the item)."""
    status = item.get("status", 200)
    kind = (item.get("error") or {}).get("type")
    return status == 429 or status >= 500 or kind == "cluster_block_exception" or kind == "index_not_found_exception"


def _reason(body: Any) -> str:
    """Return the reason in an error answer or bulk item, innermost cause first."""
    if not isinstance(body, Mapping):
        return str(body) if body else ""
    error = body.get("error", body)
    if not isinstance(error, Mapping):
        return str(error)
    reason = str(error.get("reason") or error.get("type") or "")
    cause = error.get("caused_by")
    if isinstance(cause, Mapping) and cause.get("reason"):
        reason = f"{reason}: {cause['reason']}"
    return reason


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _tombstone_plan(stored: tuple[int, bool] | None, versions: list[int | None]) -> tuple[int, str, bool] | None:
    """Return the tombstone that the delete lines of one id leave over its stored (version, deleted), or None.

    The lines apply in order, by the store's rule: an unversioned delete
    applies to a live trip and keeps its version; a versioned one applies
    over a lower stored version or an unknown trip. Returns the tombstone's
    version, the version type that writes it only over what was read
    (``external_gte`` to keep the stored version, ``external`` to raise it)
    and whether a live trip was deleted. A version below 0 is never written:
    no upsert can be below it, so such a tombstone has no effect.
    """
    state = stored
    was_live = False
    for version in versions:
        if version is None:
            if state is None or state[1]:
                continue
            version = state[0]
        elif state is not None and version <= state[0]:
            continue
        was_live = was_live or (state is not None and not state[1])
        state = (version, True)
    if state is None or state == stored or state[0] < 0:
        return None
    return state[0], "external_gte" if stored is not None and state[0] == stored[0] else "external", was_live


def _upsert_item(line: int, trip: Trip, result: dict[str, Any] | None) -> ItemResult:
    """Return the fate of one upserted line from its bulk result (None: another line of its id won)."""
    if result is not None and result["status"] < 300:
        return ItemResult(line, trip.id, "stored", trip.version)
    if result is not None and result["status"] != 409:
        return ItemResult(line, trip.id, "rejected", trip.version, reason=f"Elasticsearch refused it: {_reason(result)}")
    return ItemResult(line, trip.id, "unchanged", trip.version, reason="a version at least as high is stored")


def _source(raw: TripInput, trip: Trip) -> bytes:
    """Return the trip as ``get`` will return it: JSON text as given (as the embedded store keeps it), anything else encoded."""
    if isinstance(raw, bytes):
        text = raw.strip()
        if b"\n" not in text and b"\r" not in text:  # a _bulk line must stay one line
            return text
        return orjson.dumps(orjson.loads(text))
    return trip_to_json(trip)
