"""``GET /v1/search`` and ``POST /v1/search``: the engine's search over HTTP.

The route only moves data: query parameters (or a JSON body) become the
dict :func:`tripsearch.parse_query` reads, and the engine's result becomes
JSON. Validation, matching, ranking, paging and facets are the engine's.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.responses import Response

from tripsearch.backend import Backend, SearchResult
from tripsearch.query.params import params_to_query

from ..bodies import parse_json
from ..deps import EngineDep, SettingsDep
from ..models import SearchResponse, search_parameters
from ..responses import cached_json, dumps
from ..settings import Settings
from . import problems

__all__ = ["router", "query_from_params", "search_body"]

router = APIRouter(tags=["search"])

_IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "The `ETag` of a copy the client holds; if it is still current the answer is 304 with no body.",
    "schema": {"type": "string"},
}
_CACHE_HEADERS = {
    "ETag": {"description": "Weak tag of the body, for `If-None-Match`.", "schema": {"type": "string"}},
    "Cache-Control": {"description": "`public, max-age=N` (TRIPSEARCH_CACHE_MAX_AGE).", "schema": {"type": "string"}},
}


@router.get(
    "/v1/search",
    summary="Search trips (query parameters)",
    response_model=SearchResponse,
    responses={200: {"headers": _CACHE_HEADERS}, 304: {"description": "The client's copy (`If-None-Match`) is current."}, **problems(400, 401, 403, 413, 503)},
    openapi_extra={"parameters": [*search_parameters(), _IF_NONE_MATCH]},
)
async def search_get(request: Request, engine: EngineDep, settings: SettingsDep) -> Response:
    """Return the trips from `from` to `to` on `date`, ranked and paged, with facets.

    Every query field of the engine is a parameter; `options` and `facets`
    take comma lists. The answer is cacheable: it carries `ETag` and
    `Cache-Control: public, max-age=N`, and `If-None-Match` gets 304.
    `Server-Timing: engine;dur=MS` tells how long the engine took.
    """
    result = await _search(engine, query_from_params(request.query_params), settings)
    body, timing = search_body(result)
    return cached_json(request, body, settings.cache_max_age, public=settings.public_search, headers={"Server-Timing": timing})


@router.post(
    "/v1/search",
    summary="Search trips (JSON body)",
    response_model=SearchResponse,
    responses=problems(400, 401, 403, 413, 422, 503),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SearchRequest"}}}}},
)
async def search_post(request: Request, engine: EngineDep, settings: SettingsDep) -> Response:
    """Return the trips a JSON query selects: the same fields as `GET /v1/search`.

    Points may also be `[lat, lon]` arrays, and `options` and `facets` arrays
    of names. POST answers are not cacheable; use GET behind a cache.
    """
    query = parse_json(await request.body(), settings.max_json_depth)
    result = await _search(engine, query, settings)
    body, timing = search_body(result)
    return Response(body, media_type="application/json", headers={"Server-Timing": timing})


def query_from_params(params: QueryParams) -> dict[str, str]:
    """Return the query dict of URL parameters (see :func:`~tripsearch.query.params.params_to_query`)."""
    return params_to_query(params.multi_items())


def search_body(result: SearchResult) -> tuple[bytes, str]:
    """Return the JSON body of a result and its ``Server-Timing`` header.

    The engine's time goes in the header, not the body, so the body (and its
    ETag) only changes when the answer does. Stored trip documents are copied
    in as they are, not decoded and encoded again.
    """
    data: dict[str, Any] = result.to_dict(raw=True)
    took_ms = data.pop("took_ms", result.took_ms)
    return dumps(data), f"engine;dur={took_ms}"


async def _search(engine: Backend, query: Any, settings: Settings) -> SearchResult:
    if settings.backend_url:
        # Elasticsearch: the search waits on the network, so let other requests run meanwhile.
        return await run_in_threadpool(engine.search, query)
    # Embedded: search is CPU work under the GIL. Inline, one worker answered 1.15 to 2 times as
    # many searches per second as in the threadpool, where threads fight over the GIL (docs/api.md).
    return engine.search(query)
