"""Elasticsearch stops under a running API: 503 with Retry-After within a bounded time, /ready says so, and it recovers by itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

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


@pytest.mark.elasticsearch
def test_api_answers_503_while_elasticsearch_is_down_and_recovers(start_api: Callable[..., Server]) -> None:
    name = f"tripsearch-outage-{os.getpid()}"
    started = es("start", "--name", name)
    if started.returncode != 0:
        reason = f"Elasticsearch did not start: {started.stderr.strip()[-500:]}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    url = json.loads(started.stdout)["urls"][0]
    try:
        engine = tripsearch.open(url, index="outage", number_of_replicas=0)
        engine.upsert([orjson.loads(line) for line in FIXTURE.read_bytes().splitlines()[:300]], refresh=True)
        engine.close()
        server = start_api(TRIPSEARCH_BACKEND_URL=url, TRIPSEARCH_BACKEND_INDEX="outage", TRIPSEARCH_BACKEND_TIMEOUT=str(TIMEOUT_S))
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/v1/search", params=LONDON_READING).status_code == 200

            assert es("stop", "--name", name).returncode == 0
            began = time.monotonic()
            down = client.get("/v1/search", params={**LONDON_READING, "limit": 3})
            took = time.monotonic() - began
            assert down.status_code == 503, down.text
            assert down.headers["content-type"].startswith("application/problem+json")
            assert int(down.headers["Retry-After"]) >= 1
            assert took < 3 * TIMEOUT_S + 5, f"503 took {took:.1f} s"
            assert client.get("/ready").status_code == 503
            assert client.get("/health").status_code == 200

            assert es("start", "--name", name).returncode == 0  # same ports, same data
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if client.get("/v1/search", params=LONDON_READING).status_code == 200:
                    break
                time.sleep(1)
            else:
                raise AssertionError("the API did not recover after Elasticsearch came back")
            assert client.get("/ready").status_code == 200
    finally:
        es("stop", "--name", name, "--clean")
