"""The connection to the cluster: one client, its errors translated, its requests counted.

Every job of the backend (:mod:`~tripsearch.index.elastic.indices`,
:mod:`~tripsearch.index.elastic.writes`, :mod:`~tripsearch.index.elastic.search`,
:mod:`~tripsearch.index.elastic.reindex`) talks to Elasticsearch through one
:class:`Connection`. It owns the client and the alias, turns every client
exception into :class:`~tripsearch.errors.BackendUnavailable`
(:meth:`Connection.translate`), counts what searches cost the cluster and
the wire, and sends the requests that several jobs share: searches (one,
several in one round trip, or every page from a point in time), ``_bulk``,
the versions of ids, and the trips of a result page.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import orjson
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, Elasticsearch, TransportError
from elasticsearch.serializer import NdjsonSerializer, OrjsonSerializer

from ...errors import BackendUnavailable, TripSearchError

__all__ = ["Connection", "Retryable", "error_reason", "chunks", "ID_BATCH"]

PIT_KEEP_ALIVE = "1m"
BULK_MAX_BYTES = 8 << 20  # per _bulk request, far below http.max_content_length (100 MB)
ID_BATCH = 1000  # ids per mget


# What a search reads of an msearch answer: every other key is left out by Elasticsearch, so fewer
# bytes cross the wire and fewer objects are made here.
_MSEARCH_FIELDS = [
    "took",
    "responses.error",
    "responses.hits.total",
    "responses.hits.hits.fields",
    "responses.hits.hits._source",
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


class _OrjsonNdjsonSerializer(NdjsonSerializer):
    """The NDJSON serializer (``_msearch`` and ``_bulk`` bodies) with orjson: the client's own uses the standard library's ``json``."""

    def json_dumps(self, data: Any) -> bytes:
        return orjson.dumps(data, default=self.default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)

    def json_loads(self, data: bytes) -> Any:
        return orjson.loads(data)


class Retryable(Exception):
    """A search failed in a way that trying again through the alias may fix (its index went away, a shard copy failed)."""


class Connection:
    """The client of one cluster, used through one alias.

    ``url`` is one address, several separated by commas, or a sequence of
    them. Every request waits at most ``request_timeout`` seconds;
    connection errors are retried ``max_retries`` times (on another node
    when there are several), timeouts never. ``page_size`` is the number of
    hits read per page when a body gives no ``size``.
    """

    def __init__(self, url: str | Sequence[str], alias: str, request_timeout: float, max_retries: int, page_size: int) -> None:
        self.hosts = [h.strip() for h in url.split(",")] if isinstance(url, str) else list(url)
        self.alias = alias
        self.request_timeout = request_timeout
        self.page_size = page_size
        try:
            self.es = Elasticsearch(
                self.hosts,
                request_timeout=request_timeout,
                max_retries=max_retries,
                retry_on_timeout=False,
                serializers={"application/json": _MeasuringSerializer(), NdjsonSerializer.mimetype: _OrjsonNdjsonSerializer()},
            )
        except ValueError as exc:  # the client checks addresses before any request
            raise BackendUnavailable(f"cannot use Elasticsearch at {url!r}: {exc}", retry_after=60.0) from None
        self._counters_lock = threading.Lock()
        self._counters = {"searches": 0, "anchored": 0, "fetched": 0, "candidates": 0, "matches": 0, "es_requests": 0, "shard_searches": 0, "took_ms": 0, "fetched_bytes": 0}

    @contextmanager
    def translate(self, action: str) -> Iterator[None]:
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
            raise BackendUnavailable(f"cannot {action}: Elasticsearch answered {status} {exc.error}: {error_reason(exc.body) or exc.message}", retry_after=retry_after) from None

    # -- counters -------------------------------------------------------------

    def count(self, **figures: int) -> None:
        """Add to the counters (``searches``, ``fetched``, ``es_requests``, ...) that ``stats()`` reports."""
        with self._counters_lock:
            for name, value in figures.items():
                self._counters[name] += value

    def counters(self) -> dict[str, int]:
        """Return the counters as they are now."""
        with self._counters_lock:
            return dict(self._counters)

    # -- searches -------------------------------------------------------------

    def search(self, **request: Any) -> Any:
        """Send one search request, counting what it cost the cluster (``took``) and the wire (bytes)."""
        try:
            resp = self.es.search(**request, allow_partial_search_results=False)
        except ApiError as exc:
            raise Retryable(error_reason(exc.body) or exc.message) from None
        size = _MeasuringSerializer.last_size()
        self.count(es_requests=1, shard_searches=1, took_ms=int(resp.get("took", 0)), fetched_bytes=size)
        return resp

    def msearch(self, bodies: list[dict[str, Any]]) -> list[Any]:
        """Send several searches in one round trip; return their answers, counted as :meth:`search` counts."""
        searches: list[dict[str, Any]] = []
        for body in bodies:
            searches += [{"index": self.alias, "allow_partial_search_results": False}, body]
        try:
            resp = self.es.msearch(searches=searches, filter_path=_MSEARCH_FIELDS)
        except ApiError as exc:
            raise Retryable(error_reason(exc.body) or exc.message) from None
        answers = resp["responses"]
        failed = [a for a in answers if "error" in a]
        if failed:
            raise Retryable(error_reason(failed[0]))
        self.count(es_requests=1, shard_searches=len(bodies), took_ms=int(resp.get("took", 0)), fetched_bytes=_MeasuringSerializer.last_size())
        return list(answers)

    def hits(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Return every hit of ``body``."""
        return self.all_hits(body, self.search(index=self.alias, body=body))

    def all_hits(self, body: dict[str, Any], first: Any) -> list[dict[str, Any]]:
        """Return every hit of ``body``, given the answer to its first page."""
        hits: list[dict[str, Any]] = first["hits"].get("hits", [])  # absent when none (filter_path)
        if first["hits"]["total"]["value"] <= len(hits):
            return hits
        # More than one page: start again from a point in time, so the pages agree with each other.
        hits = []
        for page in self.pit_pages(self.alias, {k: v for k, v in body.items() if k != "aggs"}):
            hits.extend(page)
        return hits

    def pit_pages(self, index: str, body: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Yield the hits of ``body`` on ``index`` page by page, consistently (point in time + ``search_after``)."""
        size = body.get("size", self.page_size)
        pit = self.es.open_point_in_time(index=index, keep_alive=PIT_KEEP_ALIVE)["id"]
        try:
            page_body = {k: v for k, v in body.items() if k not in ("sort", "track_total_hits")}
            page_body.update(sort=[{"_shard_doc": "asc"}], track_total_hits=False, size=size)
            while True:
                page_body["pit"] = {"id": pit, "keep_alive": PIT_KEEP_ALIVE}
                resp = self.search(body=page_body)
                pit = resp.get("pit_id", pit)
                page = resp["hits"]["hits"]
                if page:
                    yield page
                if len(page) < size:
                    return
                page_body["search_after"] = page[-1]["sort"]
        finally:
            try:
                self.es.close_point_in_time(id=pit)
            except (ApiError, TransportError):
                pass  # it expires by itself after PIT_KEEP_ALIVE

    # -- documents ------------------------------------------------------------

    def fetch_docs(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Return the stored trip of each id that has one (tombstones have none), by id."""
        with self.translate("read the trips of a result page"):
            resp = self.es.mget(index=self.alias, ids=ids, source_includes=["trip"])
        self.count(es_requests=1, fetched_bytes=_MeasuringSerializer.last_size())
        return {d["_id"]: d["_source"]["trip"] for d in resp["docs"] if d.get("found") and "trip" in d.get("_source", {})}

    def versions(self, ids: list[str], index: str | None = None) -> dict[str, tuple[int, bool]]:
        """Return (version, deleted) of each id that has a document (live or tombstone)."""
        return {key: (version, deleted) for key, (version, deleted, _) in self.kinds(ids, index).items()}

    def kinds(self, ids: list[str], index: str | None = None) -> dict[str, tuple[int, bool, bool]]:
        """Return (version, deleted, regular) of each id that has a document: ``regular`` for the master of a regular trip (real time)."""
        out: dict[str, tuple[int, bool, bool]] = {}
        for chunk in chunks(ids, ID_BATCH):
            with self.translate("read trip versions"):
                resp = self.es.mget(index=index or self.alias, ids=chunk, source_includes=["deleted", "regular"])
            for doc in resp["docs"]:
                if doc.get("found"):
                    source = doc.get("_source", {})
                    out[doc["_id"]] = (int(doc["_version"]), bool(source.get("deleted")), bool(source.get("regular")))
        return out

    def bulk(self, ops: list[tuple[dict[str, Any], bytes]], action: str, index: str | None = None, wait_for_s: float = 0.0) -> list[dict[str, Any]]:
        """Send index operations in as few ``_bulk`` requests as fit; return each operation's result, in order.

        With ``wait_for_s`` (the index's refresh interval), each request
        answers once a periodic refresh made its writes searchable
        (Elasticsearch's ``refresh=wait_for``), and may take that much longer.

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
                results.extend(self._send_bulk(body, action, index, wait_for_s))
                body, size = [], 0
            body.append(line)
            size += len(line)
        if body:
            results.extend(self._send_bulk(body, action, index, wait_for_s))
        return results

    def _send_bulk(self, lines: list[bytes], action: str, index: str | None, wait_for_s: float) -> list[dict[str, Any]]:
        es = self.es.options(request_timeout=self.request_timeout + wait_for_s) if wait_for_s else self.es
        with self.translate(action):
            resp = es.bulk(operations=b"".join(lines), index=index or self.alias, refresh="wait_for" if wait_for_s else None)  # type: ignore[arg-type]
        items = [next(iter(i.values())) for i in resp["items"]]
        if resp.get("errors"):
            busy = [i for i in items if _unavailable(i)]
            if busy:
                raise BackendUnavailable(f"cannot {action}: Elasticsearch refused {len(busy)} of {len(items)} writes for now ({error_reason(busy[0])}); send them again", retry_after=1.0)
        return items

    def refresh(self) -> None:
        """Make every acknowledged write to the alias visible to search now."""
        with self.translate("refresh the index"):
            self.es.indices.refresh(index=self.alias)

    def close(self) -> None:
        """Close the client's connections."""
        self.es.close()


def _unavailable(item: dict[str, Any]) -> bool:
    """Return whether a bulk item failed because the cluster cannot take it now (rather than because of the item)."""
    status = item.get("status", 200)
    kind = (item.get("error") or {}).get("type")
    return status == 429 or status >= 500 or kind == "cluster_block_exception" or kind == "index_not_found_exception"


def error_reason(body: Any) -> str:
    """Return the reason in an error answer or bulk item, innermost cause first.

    >>> error_reason({"error": {"type": "illegal_argument_exception", "reason": "bad", "caused_by": {"reason": "why"}}})
    'bad: why'
    >>> error_reason({"status": 409, "error": {"type": "version_conflict_engine_exception"}}), error_reason(None)
    ('version_conflict_engine_exception', '')
    """
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


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    """Yield ``items`` in lists of at most ``size``."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
