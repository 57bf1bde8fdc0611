"""Every API route and every client method is documented; the api package's doctests run."""

from __future__ import annotations

import doctest
import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from api.settings import Settings
from tripsearch.client import AsyncTripSearchClient, TripSearchClient

DOC = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
PATHS = create_app(Settings()).openapi()["paths"]
OPERATIONS = [(method.upper(), path, operation) for path, item in PATHS.items() for method, operation in item.items()]


def test_the_routes_are_the_contract() -> None:
    assert {f"{m} {p}" for m, p, _ in OPERATIONS} == {
        "GET /v1/search",
        "POST /v1/search",
        "GET /v1/places",
        "PUT /v1/trips/{trip_id}",
        "GET /v1/trips/{trip_id}",
        "DELETE /v1/trips/{trip_id}",
        "POST /v1/trips/_bulk",
        "PATCH /v1/trips/{trip_id}/occurrences/{date}",
        "POST /v1/alerts",
        "GET /v1/alerts",
        "GET /v1/alerts/{alert_id}",
        "DELETE /v1/alerts/{alert_id}",
        "GET /v1/alerts/{alert_id}/matches",
        "GET /v1/alerts/stream",
        "GET /health",
        "GET /ready",
        "GET /metrics",
        "GET /standard/v1/driver_journeys",
        "GET /standard/v1/driver_regular_trips",
        "GET /standard/v1/passenger_journeys",
        "GET /standard/v1/passenger_regular_trips",
        "GET /standard/v1/status",
    }


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_every_route_is_documented(method: str, path: str, operation: dict[str, Any]) -> None:
    assert f"`{method} {path}" in DOC, f"docs/api.md does not list {method} {path}"
    assert operation.get("summary"), f"{method} {path} has no summary"
    assert operation.get("description"), f"{method} {path} has no description (the handler's docstring)"


@pytest.mark.parametrize("cls", [TripSearchClient, AsyncTripSearchClient])
def test_every_client_method_is_documented(cls: type) -> None:
    for name, member in inspect.getmembers(cls, inspect.isfunction):
        if name.startswith("_") or name == "close":
            continue
        assert member.__doc__, f"{cls.__name__}.{name} has no docstring"
        assert f"{name}(" in DOC or f"`{name}" in DOC, f"docs/api.md does not mention {cls.__name__}.{name}"


def test_the_sync_and_async_clients_have_the_same_methods() -> None:
    def public(cls: type) -> dict[str, list[str]]:
        return {name: list(inspect.signature(member).parameters) for name, member in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")}

    assert public(TripSearchClient) == public(AsyncTripSearchClient)


@pytest.mark.parametrize("module", ["api.settings", "api.problems", "api.bodies", "api.responses", "api.occurrence_seats"])
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_docs_page_loads_swagger_from_this_server(http) -> None:  # type: ignore[no-untyped-def]
    page = http.get("/docs")
    assert page.status_code == 200
    assert "/docs/files/swagger-ui-bundle.js" in page.text and "cdn" not in page.text.lower()
    js = http.get("/docs/files/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    assert http.get("/docs/files/secret.txt").status_code == 404
    # ReDoc would load its script from a CDN: it is not served.
    assert http.get("/redoc").status_code == 404
