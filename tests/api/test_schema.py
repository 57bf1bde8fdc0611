"""Property-based fuzzing of every endpoint from the OpenAPI document (schemathesis), anonymous and with a write token.

Whatever the input, valid or not: never a 5xx (but the 501 of a route
documented as not implemented), and every answer (status, content type,
headers, body) is one the schema documents.
"""

from __future__ import annotations

from typing import Any, Callable

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.settings import Settings

from .conftest import Server
from .support import make_token

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance, response_schema_conformance]
MAX_EXAMPLES = 30


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: Any, value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


@pytest.fixture(scope="module")
def fuzzed_api(start_api: Callable[..., Server]) -> Server:
    """A server of its own: the fuzzer's writes must not disturb other tests."""
    return start_api()


# The document is the app's own, built without starting it; a test checks the server serves the same one.
OPENAPI = create_app(Settings()).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)


def test_the_server_serves_this_document(fuzzed_api: Server) -> None:
    assert httpx.get(f"{fuzzed_api.url}/openapi.json").json() == OPENAPI


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_every_endpoint_answers_as_documented(case: Any, fuzzed_api: Server) -> None:
    # A route documented to answer 501 (the standard's passenger routes) is held to its documented statuses only.
    checks = [c for c in CHECKS if c is not not_a_server_error] if "501" in case.operation.definition.raw["responses"] else CHECKS
    # Each generated request is sent twice: without a token, then with one that may write.
    for headers in ({}, {"Authorization": f"Bearer {make_token('trips:read trips:write')}"}):
        case.call_and_validate(base_url=fuzzed_api.url, headers=headers, checks=checks)
