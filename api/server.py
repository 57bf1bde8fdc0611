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
import tempfile

import uvicorn

from .settings import Settings, SettingsError

__all__ = ["serve", "APP_FACTORY"]

APP_FACTORY = "api.app:create_app"
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_WORKER_HEALTHCHECK_S = 30


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
    Settings.from_env()  # refuse bad settings here, once, rather than in every worker
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
            # place index holds it up to half a second at a time, longer on a loaded machine, and
            # uvicorn's default of 5 s then kills and restarts workers before they are ready.
            timeout_worker_healthcheck=_WORKER_HEALTHCHECK_S,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
