"""The Elasticsearch backend: the same contract and the same results as the embedded one.

Open it with ``tripsearch.open("http://host:9200")`` (or several addresses
separated by commas). The trips live in a versioned index (``trips-000001``)
behind an alias (``trips``) made from an index template; ``tripsearch
reindex`` builds the next generation and swaps the alias (:meth:`ElasticBackend.reindex`).

- Writes go through ``_bulk`` with ``version_type=external``: the trip
  version is the document version, so Elasticsearch itself keeps the highest
  one. A delete leaves a tombstone document at the trip's version
  (``external_gte``), so a late lower version cannot bring the trip back.
- A regular trip is one search document per occurrence and a master
  document holding the stored trip; a new version (or a delete) retires
  the occurrences it no longer has with tombstones at its version
  (:mod:`~tripsearch.index.elastic.regular`).
- A search between two anchor places (cities of 100,000 inhabitants or
  more, radii up to 25 km) runs entirely in the shards: every trip holds
  its exact pickup, times and order at the anchors near its route, so one
  request returns the sorted page after the cursor, the exact total and the
  facets (:mod:`~tripsearch.index.elastic.anchored`).
- Any other search compiles to a :class:`~tripsearch.index.elastic.query.SearchPlan`:
  the shards keep only the trips whose route may match (cells near both
  places in order along the route, route points near both, the day, the
  filters no facet leaves out) and count, for the ``dates`` facet, the
  trips of the other days that certainly match; the trips they cannot
  decide come back as compact rows (with a point in time when there is
  more than one page), turned into :class:`~tripsearch.core.columns.TripColumns`,
  then decided, ranked, paged and faceted by the shared
  :func:`~tripsearch.index.execute.execute`. Only the page of hits is
  fetched in full (``mget``).
- Every client error is translated in one place: a cluster that cannot
  answer gives :class:`~tripsearch.errors.BackendUnavailable` within
  ``request_timeout`` (times ``1 + max_retries`` at worst).

The modules, one job each:

- :mod:`~tripsearch.index.elastic.backend`: :class:`ElasticBackend`, the
  contract, each call handed to the module of its job;
- :mod:`~tripsearch.index.elastic.connection`: the client, the translation
  of its errors, the counters of ``stats()``, and the requests several jobs
  share (searches paged from a point in time, ``_bulk``, versions, ``mget``);
- :mod:`~tripsearch.index.elastic.indices`: the alias, the template, the
  settings and the mapping version of the index behind it;
- :mod:`~tripsearch.index.elastic.writes`: upserts and deletes;
- :mod:`~tripsearch.index.elastic.regular`: regular trips' documents and
  how a version replaces their occurrences;
- :mod:`~tripsearch.index.elastic.search`: a search, from the compiled plan
  to the page of hits;
- :mod:`~tripsearch.index.elastic.reindex`: the next generation of the
  index and the alias swap;
- :mod:`~tripsearch.index.elastic.encoding` and
  :mod:`~tripsearch.index.elastic.anchors` (what the searchable fields
  mean), :mod:`~tripsearch.index.elastic.mapping` (the mapping, the
  template and the documents), :mod:`~tripsearch.index.elastic.query` and
  :mod:`~tripsearch.index.elastic.anchored` (a search compiled to requests,
  and an anchored one's answer read back): what the index holds and how it
  is asked.

See docs/elasticsearch.md for the design, the proofs of exactness, and
shard sizing.
"""

from .backend import DEFAULT_INDEX, ElasticBackend

__all__ = ["ElasticBackend", "DEFAULT_INDEX"]
