"""``GET /v1/places``: city autocomplete for the From and To boxes."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from tripsearch.errors import BackendUnavailable
from tripsearch.data.places import search_places

from ..deps import HolderDep, SettingsDep
from ..models import PlacesResponse
from ..responses import cached_json, dumps
from . import problems

__all__ = ["router", "MAX_PLACES"]

router = APIRouter(tags=["places"])

MAX_PLACES = 50
_WARM_UP_WAIT_S = 30.0


@router.get(
    "/v1/places",
    summary="Autocomplete a city name",
    response_model=PlacesResponse,
    responses=problems(400, 401, 403, 413, 503),
)
async def places(
    request: Request,
    holder: HolderDep,
    settings: SettingsDep,
    q: Annotated[str, Query(max_length=100, description="What the user typed: a prefix of a city name, accents and case ignored.")] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_PLACES, description="Most places to return.")] = 10,
) -> Response:
    """Return the cities whose name (or another name GeoNames knows) starts with `q`, biggest first.

    Accents, case and punctuation are ignored: `saint etienne` finds
    Saint-Étienne. A blank `q` returns no places. The answer is cacheable
    (`ETag`, `Cache-Control`): the city table never changes while a server runs.
    """
    if not holder.places_loaded.is_set():
        await anyio.to_thread.run_sync(holder.places_loaded.wait, _WARM_UP_WAIT_S)
        if not holder.places_loaded.is_set():
            raise BackendUnavailable("the place index is still loading", retry_after=5.0)
    found = search_places(q, limit)
    body = dumps({"places": [{"name": p.name, "country": p.country, "lat": p.lat, "lon": p.lon, "population": p.population} for p in found]})
    return cached_json(request, body, settings.places_cache_max_age, public=settings.public_search)
