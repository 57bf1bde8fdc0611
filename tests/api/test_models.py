"""The API's request models say what the engine checks: same fields, defaults, bounds and names (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest

from api.models import AlertRequest, Facets, SearchRequest, Trip, TripFilters, TripOptions
from tripsearch.alerts.model import SEARCH_FIELDS
from tripsearch.errors import InvalidQuery
from tripsearch.model import OPTION_NAMES, STATUSES
from tripsearch.query.model import FACET_NAMES, QUERY_DEFAULTS, SORTS, parse_query

REQUIRED = {"from": [48.8566, 2.3522], "to": [45.764, 4.8357], "date": "2026-12-01"}
SEARCH = SearchRequest.model_json_schema(by_alias=True)["properties"]
# Fields that need another to be given: time_delta is the width of the window around departure_time.
COMPANIONS: dict[str, dict[str, Any]] = {"time_delta": {"departure_time": "08:00"}}


def _bounded() -> list[tuple[str, str, Any]]:
    out = []
    for name, prop in SEARCH.items():
        for variant in prop.get("anyOf", [prop]):
            for key in ("minimum", "maximum"):
                if key in variant:
                    out.append((name, key, variant))
    return out


def test_the_search_request_has_the_engine_fields_and_defaults() -> None:
    assert set(SEARCH) == set(REQUIRED) | set(QUERY_DEFAULTS)
    defaults = {name: prop["default"] for name, prop in SEARCH.items() if prop.get("default") is not None}
    assert parse_query({**REQUIRED, **defaults}) == parse_query(REQUIRED)
    assert set(defaults) == {name for name, value in QUERY_DEFAULTS.items() if value not in (None, ())}


@pytest.mark.parametrize(("name", "key", "variant"), _bounded(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_bound_of_the_search_request_is_the_engine_bound(name: str, key: str, variant: dict[str, Any]) -> None:
    bound = variant[key]
    step = 1 if variant.get("type") == "integer" else max(abs(bound) * 1e-6, 1e-6)
    beyond = bound + step if key == "maximum" else bound - step
    query = {**REQUIRED, **COMPANIONS.get(name, {})}
    assert parse_query({**query, name: bound}) is not None
    with pytest.raises(InvalidQuery) as refused:
        parse_query({**query, name: beyond})
    assert refused.value.field == name


def test_names_come_from_the_engine() -> None:
    assert SEARCH["sort"]["enum"] == list(SORTS)
    assert list(Facets.model_fields) == list(FACET_NAMES)
    assert list(TripOptions.model_fields) == list(OPTION_NAMES)
    assert Trip.model_json_schema()["properties"]["status"]["enum"] == list(STATUSES)


def test_searches_and_alerts_share_their_filter_fields() -> None:
    shared = [field.alias or name for name, field in TripFilters.model_fields.items()]
    assert shared == ["from", "to", "date", *SEARCH_FIELDS[2:]]
    assert SearchRequest.model_fields.keys() >= TripFilters.model_fields.keys() <= AlertRequest.model_fields.keys()
