"""The Elasticsearch engine: the :class:`~tripsearch.backend.Backend` contract, each call handed to the module of its job."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

from ...backend import DeleteReport, ParsedUpserts, Refresh, SearchResult, TripInput, UpsertReport
from ...errors import BackendUnavailable, NotFound
from ...model import gc_paused
from ...query.model import Query
from .connection import Connection, error_reason
from .indices import Indices
from .query import DEFAULT_PAGE_SIZE
from .reindex import run_reindex
from .search import run_search
from .writes import Writes

__all__ = ["ElasticBackend", "DEFAULT_INDEX"]

DEFAULT_INDEX = "trips"


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
        self._connection = Connection(url, index, request_timeout, max_retries, page_size)
        self._es = self._connection.es
        self._writes = Writes(self._connection, lambda: self._indices.live_refresh_interval())
        try:
            self._indices = Indices(self._connection, number_of_shards, number_of_replicas, refresh_interval, create)
        except BaseException:
            self._connection.close()
            raise

    # -- what it was opened with ----------------------------------------------

    @property
    def hosts(self) -> list[str]:
        """The addresses of the cluster's nodes."""
        return self._connection.hosts

    @property
    def alias(self) -> str:
        """The alias searched and written through."""
        return self._connection.alias

    @property
    def request_timeout(self) -> float:
        """Seconds a request may take."""
        return self._connection.request_timeout

    @property
    def page_size(self) -> int:
        """Candidates fetched per request."""
        return self._connection.page_size

    @property
    def number_of_shards(self) -> int | None:
        """Primaries of an index this creates (None: the current index's on reindex, else 1)."""
        return self._indices.number_of_shards

    @property
    def number_of_replicas(self) -> int | None:
        """Replicas of an index this creates, and of the open one when given."""
        return self._indices.number_of_replicas

    @property
    def refresh_interval(self) -> float | None:
        """Seconds between refreshes of an index this creates (None: Elasticsearch's default, 0: off)."""
        return self._indices.refresh_interval

    @property
    def create(self) -> bool:
        """Whether opening created the template, the first index and the alias when missing."""
        return self._indices.create

    @property
    def mapping_version(self) -> int:
        """The mapping version of the index behind the alias, as last read."""
        return self._indices.mapping_version

    # -- writes ---------------------------------------------------------------

    @gc_paused  # the batch's decoded trips are freed before the collector runs again
    def upsert(self, trips: Iterable[TripInput] | ParsedUpserts, refresh: Refresh = False) -> UpsertReport:
        """Store every valid trip whose version is higher than the stored one; report each by input line.

        Within one call, the highest version of an id wins; its other lines
        are ``unchanged`` (the final state is that of sending them one by
        one; a lower version sent first would have been ``stored``, then replaced).
        """
        return self._writes.upsert(trips, refresh)

    def delete(self, ids: Iterable[str | tuple[str, int]], refresh: Refresh = False) -> DeleteReport:
        """Delete trips by id, or by (id, version) as an event stream sends them.

        A tombstone keeps the version, so a late lower version cannot bring
        the trip back. An unversioned delete applies to a live trip and keeps
        its version; a versioned one applies over a lower stored version (or
        an unknown trip) and stores its own. A line is ``deleted`` if its id
        was live and got deleted by this call, else ``not_found``, as in the
        embedded backend.
        """
        return self._writes.delete(ids, refresh)

    # -- reads ----------------------------------------------------------------

    def get(self, trip_id: str) -> dict[str, Any]:
        """Return the stored document of a trip, or raise :class:`NotFound`."""
        if not trip_id:
            raise NotFound(trip_id)
        with self._connection.translate("read a trip"):
            resp = self._es.options(ignore_status=404).get(index=self.alias, id=trip_id, source_includes=["trip"])
        if resp.meta.status == 404 and resp.body.get("found") is not False:
            raise BackendUnavailable(f"cannot read a trip: {error_reason(resp.body)}", retry_after=5.0)
        trip = resp.body.get("_source", {}).get("trip") if resp.body.get("found") else None
        if trip is None:  # missing, or a tombstone
            raise NotFound(trip_id)
        return trip  # type: ignore[no-any-return]

    def search(self, query: Query | Mapping[str, Any]) -> SearchResult:
        """Return the matching trips, ranked and paged, with facets."""
        return run_search(self._connection, self._indices, query)

    # -- refresh, stats -------------------------------------------------------

    def refresh(self) -> None:
        """Make every acknowledged write visible to search now."""
        self._connection.refresh()

    def stats(self) -> dict[str, Any]:
        """Return figures about the index and the cluster, and how many candidates searches looked at."""
        with self._connection.translate("read index figures"):
            concrete = self._indices.concrete_index()
            shards, replicas, refresh_s = self._indices.index_settings(concrete)
            health = self._es.cluster.health(index=self.alias)
            occurrence = {"exists": {"field": "trip_id"}}
            live = self._es.count(index=self.alias, query={"bool": {"filter": [{"term": {"deleted": False}}], "must_not": [occurrence]}})["count"]
            occurrences = self._es.count(index=self.alias, query={"bool": {"filter": [{"term": {"deleted": False}}, occurrence]}})["count"]
            tombstones = self._es.count(index=self.alias, query={"bool": {"filter": [{"term": {"deleted": True}}], "must_not": [occurrence]}})["count"]
            nodes = self._es.nodes.info(filter_path="nodes.*.version")
        versions = sorted({n["version"] for n in nodes.get("nodes", {}).values()})
        counters = self._connection.counters()
        return {
            "backend": "elasticsearch",
            "url": ", ".join(self.hosts),
            "index": self.alias,
            "concrete_index": concrete,
            "trips": int(live),
            "occurrences": int(occurrences),
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
        return run_reindex(self._connection, self._indices, number_of_shards, number_of_replicas, keep_old, batch_size, grace_s, progress)

    # -- housekeeping ---------------------------------------------------------

    def close(self) -> None:
        """Close the connections to the cluster."""
        self._writes.close()
        self._connection.close()

    def __enter__(self) -> ElasticBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
