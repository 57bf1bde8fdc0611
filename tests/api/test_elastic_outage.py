"""Elasticsearch stopped or hung under a running API: 503 with Retry-After within a bounded time, /ready says so, and it recovers by itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import orjson
import pytest

import tripsearch

from .conftest import FIXTURE, Server
from .support import LONDON_READING

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "elasticsearch"
TIMEOUT_S = 2.0  # TRIPSEARCH_BACKEND_TIMEOUT given to the API


def es(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


@contextmanager
def api_over_elasticsearch(start_api: Callable[..., Server], kind: str) -> Iterator[tuple[str, dict[str, Any], httpx.Client]]:
    """Start a one-node cluster of its own, load 300 fixture trips, and yield (cluster name, its state, a client of an API over it)."""
    name = f"tripsearch-{kind}-{os.getpid()}"
    started = es("start", "--name", name)
    if started.returncode != 0:
        reason = f"Elasticsearch did not start: {started.stderr.strip()[-500:]}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    state = json.loads(started.stdout)
    url = state["urls"][0]
    try:
        engine = tripsearch.open(url, index=kind, number_of_replicas=0)
        engine.upsert([orjson.loads(line) for line in FIXTURE.read_bytes().splitlines()[:300]], refresh=True)
        engine.close()
        server = start_api(TRIPSEARCH_BACKEND_URL=url, TRIPSEARCH_BACKEND_INDEX=kind, TRIPSEARCH_BACKEND_TIMEOUT=str(TIMEOUT_S))
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/v1/search", params=LONDON_READING).status_code == 200
            yield name, state, client
    finally:
        es("stop", "--name", name, "--clean")


def assert_unavailable(client: httpx.Client) -> None:
    """A search answers 503 with Retry-After within a bounded time; /ready says not ready; /health stays up."""
    began = time.monotonic()
    down = client.get("/v1/search", params={**LONDON_READING, "limit": 3})
    took = time.monotonic() - began
    assert down.status_code == 503, down.text
    assert down.headers["content-type"].startswith("application/problem+json")
    assert int(down.headers["Retry-After"]) >= 1
    assert took < 3 * TIMEOUT_S + 5, f"503 took {took:.1f} s"
    began = time.monotonic()
    assert client.get("/ready").status_code == 503
    assert time.monotonic() - began < 3 * TIMEOUT_S + 5
    assert client.get("/health").status_code == 200


def assert_recovers(client: httpx.Client) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if client.get("/v1/search", params=LONDON_READING).status_code == 200:
            break
        time.sleep(1)
    else:
        raise AssertionError("the API did not recover after Elasticsearch came back")
    assert client.get("/ready").status_code == 200


@pytest.mark.elasticsearch
def test_api_answers_503_while_elasticsearch_is_down_and_recovers(start_api: Callable[..., Server]) -> None:
    with api_over_elasticsearch(start_api, "outage") as (name, _, client):
        assert es("stop", "--name", name).returncode == 0
        assert_unavailable(client)
        assert es("start", "--name", name).returncode == 0  # same ports, same data
        assert_recovers(client)


@pytest.mark.elasticsearch
def test_api_answers_503_while_elasticsearch_hangs_and_recovers(start_api: Callable[..., Server]) -> None:
    """A node that takes connections but never answers (its JVM stopped with SIGSTOP): the timeouts bound every answer."""
    with api_over_elasticsearch(start_api, "hang") as (_, state, client):
        pid = state["pids"][0]
        os.kill(pid, signal.SIGSTOP)
        try:
            assert_unavailable(client)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert_recovers(client)
