"""The embedded backend: SQLite for durability, memory-mapped segments shared by all processes for search.

The modules, one job each:

- :mod:`~tripsearch.index.embedded.backend`: :class:`EmbeddedBackend`, the
  contract: writes, the change feed, refreshes, merges and switching;
- :mod:`~tripsearch.index.embedded.store`: the SQLite store, the source of
  truth, and its change feed;
- :mod:`~tripsearch.index.embedded.memory`: the in-memory index of what the
  feed brought since the segment (trip columns, H3 postings);
- :mod:`~tripsearch.index.embedded.segments`: the segment file format, the
  manifest, writing and merging segments;
- :mod:`~tripsearch.index.embedded.shared`: a segment and its delta as one
  view, and a search over both.

The compiled kernels and trip columns the matching rules run on are in
:mod:`tripsearch.core`, shared with the query, the facets, ride alerts and
the Elasticsearch backend; the corridor cells and the page every backend
builds from candidates are in :mod:`tripsearch.index.cells` and
:mod:`tripsearch.index.execute`.
"""

from .backend import DB_NAME, MERGE_MIN_ROWS, MERGE_RATIO, EmbeddedBackend

__all__ = ["DB_NAME", "MERGE_MIN_ROWS", "MERGE_RATIO", "EmbeddedBackend"]
