"""One router per resource: search, places, trips, and the operational endpoints."""

from __future__ import annotations

from typing import Any

from ..problems import PROBLEM_JSON

__all__ = ["problems"]


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI ``responses`` entries of error statuses, all ``application/problem+json``."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
        }
        if status == 503:
            entry["headers"] = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}
        out[status] = entry
    return out


_DESCRIPTIONS = {
    400: "The request is malformed or a field is invalid; `detail` and `field` say which.",
    401: "No bearer token, or one that is malformed, expired, tampered with or not signed with an accepted algorithm.",
    403: "The token is valid but does not grant the scope the operation needs.",
    404: "No such trip (or alert of the caller's), or no occurrence of the trip on that date.",
    409: "The caller already has as many active alerts as the server allows; or other writes kept changing the trip meanwhile (`conflict`): read it again and retry.",
    413: "The body is larger than the server takes, or a bulk request has too many lines.",
    422: "The body is well-formed JSON but not an acceptable document (the trip breaks a rule, or it nests too deep).",
    503: "The backend cannot answer now (loading, unreachable, or refusing writes); retry after `Retry-After` seconds.",
}
