"""Operational endpoints: ``/health`` (the process answers), ``/ready`` (it can serve) and ``/metrics``."""

from __future__ import annotations

import os

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse, Response

from tripsearch.errors import BackendUnavailable

from ..deps import HolderDep
from ..metrics import CONTENT_TYPE_LATEST, Metrics
from ..models import Health, Ready
from ..responses import json_response
from . import problems

__all__ = ["router"]

router = APIRouter(tags=["operations"])

_NO_STORE = {"Cache-Control": "no-store"}


@router.get("/health", summary="Liveness", response_model=Health, responses=problems(400, 413))
async def health() -> Response:
    """Answer 200 while the process runs, even before the index is loaded."""
    return json_response({"status": "ok", "pid": os.getpid()}, headers=_NO_STORE)


@router.get("/ready", summary="Readiness", response_model=Ready, responses=problems(400, 413, 503))
async def ready(holder: HolderDep) -> Response:
    """Answer 200 when the backend answers and the indexes (trips and places) are loaded; 503 otherwise."""
    engine = holder.engine
    if not holder.places_loaded.is_set():
        raise BackendUnavailable("the place index is loading", retry_after=1.0)
    try:
        stats = await run_in_threadpool(engine.stats)
    except BackendUnavailable:
        raise
    except Exception as exc:  # whatever the backend raised, this worker cannot serve: say so, do not crash
        raise BackendUnavailable(f"the backend does not answer ({type(exc).__name__})", retry_after=1.0) from None
    body = {"status": "ready", "backend": stats.get("backend"), "trips": stats.get("trips"), "refresh_lag_s": stats.get("refresh_lag_s")}
    return json_response(body, headers=_NO_STORE)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "The Prometheus text format."}, **problems(400, 413)},
)
async def metrics(request: Request) -> Response:
    """Return request counts and latency histograms per route, and figures of the index, in the Prometheus text format."""
    registry: Metrics = request.app.state.metrics
    body = await run_in_threadpool(registry.exposition)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers=_NO_STORE)
