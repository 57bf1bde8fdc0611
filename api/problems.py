"""Error responses as RFC 9457 problem details (``application/problem+json``).

Every error the API returns is one of these. ``type`` is ``about:blank``
(the HTTP status says what kind of error it is), ``title`` the status
phrase, ``detail`` a sentence for a person that names the field, and two
extension members help programs: ``code`` (a stable short name such as
``invalid_query``) and ``field`` (the input field at fault, when there is one).

>>> response = problem_response(400, "limit: must be from 1 to 100, got 500", code="invalid_query", field="limit")
>>> response.status_code, response.media_type
(400, 'application/problem+json')
>>> response.body
b'{"type":"about:blank","title":"Bad Request","status":400,"detail":"limit: must be from 1 to 100, got 500","code":"invalid_query","field":"limit"}'
"""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import Mapping

import orjson
from starlette.responses import Response

__all__ = ["PROBLEM_JSON", "Problem", "problem_response", "retry_after_header"]

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error the API answers with a problem document; raise it from routes and dependencies."""

    def __init__(self, status: int, detail: str, *, code: str, field: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code
        self.field = field
        self.headers = dict(headers or {})

    def response(self) -> Response:
        return problem_response(self.status, self.detail, code=self.code, field=self.field, headers=self.headers)


def problem_response(status: int, detail: str, *, code: str, field: str | None = None, headers: Mapping[str, str] | None = None) -> Response:
    """Return a ``application/problem+json`` response."""
    body: dict[str, object] = {"type": "about:blank", "title": _title(status), "status": status, "detail": detail, "code": code}
    if field:
        body["field"] = field
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=PROBLEM_JSON)


def retry_after_header(seconds: float) -> dict[str, str]:
    """Return a ``Retry-After`` header of whole seconds, at least 1."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
