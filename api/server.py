"""``tripsearch serve``: run the API under uvicorn, with one or several worker processes.

Workers are separate processes (the GIL makes threads of little help for
search, which is CPU work). Each builds its app from environment variables
(``api.app:create_app`` as a factory), opens the backend itself and follows
the shared store, so the flags given here reach the workers through the
environment. With several workers, metrics are shared through
prometheus_client's multiprocess directory, a temporary directory this
process creates and removes.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from .settings import Settings, SettingsError

__all__ = ["serve", "ready_line", "APP_FACTORY"]

APP_FACTORY = "api.app:create_app"
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_WORKER_HEALTHCHECK_S = 30
_READY_POLL_S = 0.2


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    data: str | None = None,
    backend: str | None = None,
    workers: int = 1,
    log_level: str = "warning",
) -> int:
    """Serve the API until interrupted; return the exit status.

    ``data`` and ``backend`` override ``TRIPSEARCH_DATA`` and
    ``TRIPSEARCH_BACKEND_URL``; every other setting comes from the
    environment (see :class:`api.settings.Settings`).
    """
    if workers < 1:
        raise SettingsError("--workers must be at least 1")
    if not 0 <= port <= 65535:
        raise SettingsError("--port must be from 0 to 65535")
    if data is not None:
        os.environ["TRIPSEARCH_DATA"] = data
    if backend:
        os.environ["TRIPSEARCH_BACKEND_URL"] = backend
    settings = Settings.from_env()  # refuse bad settings here, once, rather than in every worker
    if port != 0:
        _announce_when_ready(host, port, settings, workers)
    metrics_dir = None
    if workers > 1:
        metrics_dir = tempfile.mkdtemp(prefix="tripsearch-metrics-")
        os.environ[_MULTIPROC_ENV] = metrics_dir
    try:
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level.lower(),
            server_header=False,
            timeout_graceful_shutdown=10,
            # A worker answers the supervisor's ping from a thread, which needs the GIL: building the
            # place index (the first time on a machine: tripsearch.data.stored) holds it up to half a second at a time, longer on a loaded machine, and
            # uvicorn's default of 5 s then kills and restarts workers before they are ready.
            timeout_worker_healthcheck=_WORKER_HEALTHCHECK_S,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def ready_line(url: str, settings: Settings, workers: int) -> str:
    """Return the line ``serve`` prints once the API answers: where, on what, with how many workers."""
    if settings.backend_url:
        backend = f"elasticsearch {settings.backend_url} (alias {settings.backend_index})"
    else:
        backend = f"embedded, data {Path(settings.data).absolute()}"
    return f"tripsearch: ready on {url}/ (search page; API docs {url}/docs), backend {backend}, {workers} worker{'s' if workers != 1 else ''}"


def _announce_when_ready(host: str, port: int, settings: Settings, workers: int) -> None:
    """Print :func:`ready_line` once ``/ready`` answers 200, from a daemon thread (uvicorn keeps the main one)."""
    shown_host = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, f"[{host}]" if ":" in host else host)
    url = f"http://{shown_host}:{port}"

    def wait() -> None:
        with httpx.Client(timeout=2.0) as client:
            while True:
                try:
                    if client.get(f"{url}/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(_READY_POLL_S)
        print(ready_line(url, settings, workers), file=sys.stdout, flush=True)

    threading.Thread(target=wait, name="announce-ready", daemon=True).start()
