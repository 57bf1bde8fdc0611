"""Compile a search into the Elasticsearch request that fetches its candidates.

The request asks for the trips the embedded index would propose, no more and
no fewer: a trip is posted under (cell, day) for every corridor cell and every
local day it spans, so "some (cell, day) key near ``from`` and some near
``to``" is "a corridor cell near ``from``, a corridor cell near ``to`` and a
local day among :func:`~tripsearch.query.execute.candidate_days`". The cells
come from the same :func:`~tripsearch.index.cells.disk_to_cells`. Published
and not deleted are filtered too (the exact rules would drop the others).

Attribute filters (seats, price, options, rating) are left to the shared
code on purpose: facets are disjunctive (each counts the matches without its
own filter), so the candidates must not be narrowed by any filter a facet
ignores. Everything exact (distance to the route, pickup before dropoff,
pickup time) is decided by :func:`~tripsearch.query.execute.execute` on the
candidates.

>>> from tripsearch.query.model import parse_query
>>> q = parse_query({"from": [48.8566, 2.3522], "to": [45.764, 4.8357], "date": "2026-12-01", "facets": []})
>>> body = compile_candidates(q, page_size=1000)
>>> [next(iter(f)) for f in body["query"]["bool"]["filter"]], body["size"], body["_source"]
(['terms', 'terms', 'terms', 'term', 'term'], 1000, ['compact'])
"""

from __future__ import annotations

from typing import Any

from elasticsearch.dsl import Search

from ..index.cells import disk_to_cells
from ..index.elastic_mapping import cells_to_keywords
from .execute import candidate_days
from .model import Query

__all__ = ["compile_candidates", "CANDIDATE_FIELD", "DEFAULT_PAGE_SIZE"]

DEFAULT_PAGE_SIZE = 5000
# What a candidate brings back: the trip as one compact row of columns, nothing else.
CANDIDATE_FIELD = "compact"


def compile_candidates(query: Query, page_size: int = DEFAULT_PAGE_SIZE) -> dict[str, Any]:
    """Return the request body of the first page of ``query``'s candidates (sorted by ``_doc``; pages add a PIT)."""
    from_cells = disk_to_cells(query.from_point[0], query.from_point[1], query.from_radius_km)
    to_cells = disk_to_cells(query.to_point[0], query.to_point[1], query.to_radius_km)
    search = (
        Search()
        .filter("terms", corridor_cells=cells_to_keywords(from_cells))
        .filter("terms", corridor_cells=cells_to_keywords(to_cells))
        .filter("terms", local_days=candidate_days(query).tolist())
        .filter("term", status="published")
        .filter("term", deleted=False)
        .source([CANDIDATE_FIELD])
        .sort("_doc")
        .extra(size=page_size, track_total_hits=True)
    )
    return search.to_dict()
