"""Reindex: the next generation of the index, every trip rebuilt from its stored document, then the alias swapped.

The test distribution has no ``_reindex`` API, and rebuilding each document
from its stored trip is what a mapping change needs anyway. Searches never
fail meanwhile; writes pause from the write block to the swap.
docs/elasticsearch.md ("Reindex") has the steps.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import orjson
from elasticsearch import ApiError, TransportError

from ...errors import BackendUnavailable
from ...model import parse_trip
from ..anchors import anchor_places
from .connection import ID_BATCH, Connection, Retryable, chunks, error_reason
from .indices import Indices, index_generation, refresh_interval_setting
from .mapping import MAPPING_VERSION, index_name, tombstone_document
from .regular import index_documents, row_chunks

__all__ = ["run_reindex"]

log = logging.getLogger("tripsearch")

COPY_ROWS = 2000  # index rows built and written at a time (a regular trip's occurrences are rows)


def run_reindex(
    connection: Connection,
    indices: Indices,
    number_of_shards: int | None = None,
    number_of_replicas: int | None = None,
    keep_old: bool = False,
    batch_size: int = 1000,
    grace_s: float | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, Any]:
    """Rebuild the index as its next generation and swap the alias; return a report (see ``ElasticBackend.reindex``)."""
    es = connection.es
    alias = connection.alias
    say = progress or (lambda stage, count: None)
    started = time.perf_counter()
    with connection.translate("reindex"):
        old = indices.concrete_index()
        old_shards, old_replicas, _ = indices.index_settings(old)
        shards = number_of_shards or old_shards
        replicas = number_of_replicas if number_of_replicas is not None else old_replicas
        indices.put_template(shards, replicas)
        new = index_name(alias, index_generation(old, alias) + 1)
        # Loading is faster without replicas and refreshes; both are restored before the swap.
        es.indices.create(index=new, settings={"index.number_of_replicas": 0, "index.refresh_interval": "-1"})
    blocked = False
    swapped = False
    try:
        copied = _copy(connection, old, new, batch_size, lambda n: say("copy", n))
        # A first catch-up while writes go on, so the one under the write block has little left to do.
        caught_up = _catch_up(connection, old, new, lambda n: say("catch up", n))
        with connection.translate("block writes on the old index"):
            # the add-block API, not the setting: it answers only once the writes in flight on the
            # old index's shards are done, so the catch-up below sees every write acknowledged before
            es.indices.add_block(index=old, block="write")
            blocked = True
            paused = time.perf_counter()
            es.indices.refresh(index=old)
        caught_up += _catch_up(connection, old, new, lambda n: say("catch up (writes paused)", n))
        with connection.translate("open the new index"):
            es.indices.put_settings(index=new, settings={"index.number_of_replicas": replicas, "index.refresh_interval": refresh_interval_setting(indices.refresh_interval)})
            es.indices.refresh(index=new)
            es.cluster.health(index=new, wait_for_status="yellow", timeout="60s")
            es.indices.update_aliases(actions=[{"remove": {"index": old, "alias": alias}}, {"add": {"index": new, "alias": alias}}])
            swapped = True
        pause_s = time.perf_counter() - paused
    finally:
        if not swapped:
            try:
                if blocked:
                    es.indices.put_settings(index=old, settings={"index.blocks.write": False})
                es.options(ignore_status=404).indices.delete(index=new)
            except (ApiError, TransportError) as exc:
                log.error("reindex failed and could not clean up (%s): unblock %s and delete %s by hand", exc, old, new)
    if not keep_old:
        time.sleep(connection.request_timeout if grace_s is None else grace_s)
        with connection.translate("delete the old index"):
            es.options(ignore_status=404).indices.delete(index=old)
    indices.mapping_version = MAPPING_VERSION
    indices.anchors = anchor_places().fingerprint
    return {
        "alias": alias,
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


def _copy(connection: Connection, old: str, new: str, batch_size: int, say: Callable[[int], None]) -> int:
    """Copy every document of ``old`` into ``new``, rebuilt from its stored trip; return how many."""
    # A live occurrence is rebuilt with its master, from the stored trip; tombstones are copied as they are.
    live_occurrence = {"bool": {"filter": [{"exists": {"field": "trip_id"}}, {"term": {"deleted": False}}]}}
    body = {"query": {"bool": {"must_not": [live_occurrence]}}, "size": batch_size, "version": True, "_source": ["trip", "deleted", "trip_id"]}
    copied = 0
    with connection.translate("copy the trips"):
        try:
            for page in connection.pit_pages(old, body):
                copied += _write_copies(connection, page, new)
                say(copied)
        except Retryable as exc:
            raise BackendUnavailable(f"cannot copy the trips: {exc}") from None
    return copied


def _catch_up(connection: Connection, old: str, new: str, say: Callable[[int], None]) -> int:
    """Copy the documents whose version in ``old`` differs from ``new`` (written during the copy); return how many."""
    body = {"query": {"match_all": {}}, "size": 5000, "version": True, "_source": ["deleted"]}
    changed = 0
    with connection.translate("catch up with writes made during the copy"):
        try:
            for page in connection.pit_pages(old, body):
                have = connection.versions([h["_id"] for h in page], index=new)
                # A delete keeps the version, so a tombstone differs from the trip it replaced only by its flag.
                stale = [h["_id"] for h in page if have.get(h["_id"]) != (int(h["_version"]), bool(h["_source"].get("deleted")))]
                for chunk in chunks(stale, ID_BATCH):
                    resp = connection.es.mget(index=old, ids=chunk, source_includes=["trip", "deleted", "trip_id"])
                    changed += _write_copies(connection, [d for d in resp["docs"] if d.get("found")], new)
                say(changed)
        except Retryable as exc:
            raise BackendUnavailable(f"cannot catch up: {exc}") from None
    return changed


def _write_copies(connection: Connection, hits: list[dict[str, Any]], new: str) -> int:
    """Write ``hits`` (documents of the old index) into ``new`` at their versions, each trip rebuilt (a regular trip with its occurrences); return how many.

    A live occurrence is skipped: its master brings the occurrences of its version.
    """
    # external_gte: the old index is the truth, and nothing else writes to the new one before the swap
    ops = [
        ({"index": {"_id": h["_id"], "version": int(h["_version"]), "version_type": "external_gte"}}, tombstone_document(h["_id"], h["_source"].get("trip_id")))
        for h in hits
        if h["_source"].get("deleted")
    ]
    live = [(h, parse_trip(h["_source"]["trip"])) for h in hits if not h["_source"].get("deleted") and "trip" in h["_source"]]
    copied = 0
    for batch in row_chunks(live, lambda pair: pair[1], COPY_ROWS):
        docs, occurrence_docs = index_documents([t for _, t in batch], [orjson.dumps(h["_source"]["trip"]) for h, _ in batch])
        for (h, _), doc, occurrence in zip(batch, docs, occurrence_docs):
            version = int(h["_version"])
            ops += [({"index": {"_id": key, "version": version, "version_type": "external_gte"}}, d) for key, d in occurrence]
            ops.append(({"index": {"_id": h["_id"], "version": version, "version_type": "external_gte"}}, doc))
        copied += _bulk_copies(connection, ops, new)
        ops = []
    return copied + (_bulk_copies(connection, ops, new) if ops else 0)


def _bulk_copies(connection: Connection, ops: list[tuple[dict[str, Any], bytes]], new: str) -> int:
    items = connection.bulk(ops, "copy trips", index=new)
    refused = [i for i in items if i["status"] >= 300 and i["status"] != 409]
    if refused:
        raise BackendUnavailable(f"cannot copy trips: Elasticsearch refused {len(refused)} ({error_reason(refused[0])})")
    return len(items)
