"""A query as the URL parameters of ``GET /v1/search``, and back.

The one text form of a query that the HTTP client, the load generator and
the API share: points as ``LAT,LON``, lists as comma lists.

>>> query_to_params({"from": [48.85, 2.35], "to": [45.76, 4.83], "date": "2026-12-01", "facets": [], "options": ["pets"]})
{'from': '48.85,2.35', 'to': '45.76,4.83', 'date': '2026-12-01', 'facets': '', 'options': 'pets'}
>>> params_to_query([("from", "48.85,2.35"), ("options", "pets"), ("options", "smoking")])
{'from': '48.85,2.35', 'options': 'pets,smoking'}
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Mapping

from ..errors import InvalidQuery
from .model import Query

__all__ = ["query_to_params", "params_to_query", "LIST_FIELDS"]

# Fields that take a comma list; repeating the parameter (?options=pets&options=smoking) adds to it.
LIST_FIELDS = frozenset({"options", "facets"})


def query_to_params(query: Mapping[str, Any] | Query) -> dict[str, str]:
    """Return the URL parameters of a query (a :class:`Query` or the dict :func:`parse_query` reads); fields set to None are left out."""
    fields = query.to_dict() if isinstance(query, Query) else query
    return {("from" if key == "from_" else key): _param_text(value) for key, value in fields.items() if value is not None}


def params_to_query(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Return the query dict of URL parameters: repeated list fields are joined, other repeats refused."""
    query: dict[str, str] = {}
    for key, value in items:
        if key not in query:
            query[key] = value
        elif key in LIST_FIELDS:
            query[key] = f"{query[key]},{value}"
        else:
            raise InvalidQuery(key[:40], "is given more than once")
    return query


def _param_text(value: Any) -> str:
    """Return a query field's text form: points as ``LAT,LON``, lists as comma lists."""
    if isinstance(value, Mapping) and "lat" in value and "lon" in value:
        return f"{value['lat']},{value['lon']}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
