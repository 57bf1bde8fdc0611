"""Fixtures of the API tests: real ``tripsearch serve`` processes on a free loopback port.

One factory, :func:`start_api`, starts a server over its own copy of a data
directory loaded with ``fixtures/trips-1000.ndjson``, waits for ``/ready``
and stops it after the session; ``api`` is the shared single-worker server.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import anyio
import httpx
import pytest

import tripsearch
from api.app import create_app
from api.deps import EngineHolder
from api.settings import Settings
from tripsearch.errors import BackendUnavailable
from tripsearch.testing.server import ServerProcess, start_server, worker_pids

from .support import REFRESH_INTERVAL_S, SECRET

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fixtures" / "trips-1000.ndjson"
READY_TIMEOUT_S = 120.0  # a loaded 2-core machine can take a minute to build two workers' place indexes


@dataclass
class Server(ServerProcess):
    """A running ``tripsearch serve``: its address, process, log, data directory and workers."""

    data: Path = Path()
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)

    def client(self, **options: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **options)  # type: ignore[arg-type]


def serve_command(data: Path, workers: int = 1) -> Callable[[int], list[str]]:
    """Return the command of ``tripsearch serve`` over ``data`` on a given port."""
    return lambda port: [sys.executable, "-m", "tripsearch.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--data", str(data), "--workers", str(workers), "--log-level", "warning"]


@pytest.fixture(scope="session")
def loaded_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a data directory holding the 1000 fixture trips (copy it before serving it)."""
    path = tmp_path_factory.mktemp("loaded") / "data"
    engine = tripsearch.open(path, refresh_interval=0)
    try:
        report = engine.upsert(FIXTURE.read_bytes().splitlines(), refresh=True)
        assert report.stored == 1000
        engine.snapshot()  # type: ignore[attr-defined]
    finally:
        engine.close()
    return path


@pytest.fixture(scope="session")
def start_api(loaded_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """Return a factory of servers: ``start_api(workers=2, TRIPSEARCH_X="...")``; all are stopped after the session."""
    servers: list[Server] = []

    def factory(workers: int = 1, **env: str) -> Server:
        home = tmp_path_factory.mktemp(f"server-{len(servers)}")
        data = home / "data"
        shutil.copytree(loaded_data, data)
        server_env = {**os.environ, "TRIPSEARCH_JWT_SECRET": SECRET, "TRIPSEARCH_REFRESH_INTERVAL": str(REFRESH_INTERVAL_S), **env}
        started = start_server(serve_command(data, workers), home, env=server_env, cwd=home, timeout_s=READY_TIMEOUT_S)
        if workers > 1:  # /ready answered by one worker: the others may still be loading (a search there gets 503)
            worker_pids(started, workers, timeout_s=READY_TIMEOUT_S)
        server = Server(started.url, started.process, started.log, data, workers, env)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def api(start_api: Callable[..., Server]) -> Server:
    """Return the shared single-worker server (tests that write use trips of their own)."""
    return start_api()


@pytest.fixture
def http(api: Server) -> Iterator[httpx.Client]:
    with api.client() as client:
        yield client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


InProcess = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def in_process(loaded_data: Path, tmp_path: Path) -> InProcess:
    """Return ``in_process(**settings)``: an app in this process over a copy of the fixtures, and a client of it.

    For settings a test varies (public search off, RS256 keys, ...): cheaper
    than a server process, and the end-to-end tests cover the real server.
    """
    count = 0

    @asynccontextmanager
    async def open_app(opener: Callable[..., Any] = tripsearch.open, wait_ready: bool = True, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        nonlocal count
        count += 1
        data = tmp_path / f"data-{count}"
        shutil.copytree(loaded_data, data)
        options: dict[str, Any] = {"data": str(data), "jwt_secret": SECRET, "refresh_interval": 0.0, **overrides}
        app = create_app(Settings(**options), opener=opener)
        async with app.router.lifespan_context(app):
            holder: EngineHolder = app.state.holder
            deadline = time.monotonic() + READY_TIMEOUT_S
            while wait_ready and not (holder.places_loaded.is_set() and _is_open(holder)):
                assert time.monotonic() < deadline, "the in-process app did not get ready"
                await anyio.sleep(0.05)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://api.test") as client:
                yield client

    return open_app


def _is_open(holder: EngineHolder) -> bool:
    try:
        return holder.engine is not None
    except BackendUnavailable:
        return False
