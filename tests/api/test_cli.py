"""The command line around the API: ``tripsearch index --url`` through the client, and ``serve``'s errors."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import orjson

from .conftest import Server
from .support import make_token, make_trip


def _tripsearch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tripsearch.cli", *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def test_index_through_the_api(api: Server, tmp_path: Path) -> None:
    day = dt.date(2027, 5, 1)
    ids = [f"cli-{uuid.uuid4().hex[:10]}" for _ in range(30)]
    lines = [orjson.dumps(make_trip(i, day=day)) for i in ids]
    lines.insert(10, b'{"id": "cli-bad", "version": 1}')
    path = tmp_path / "trips.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")

    done = _tripsearch("index", str(path), "--url", api.url, "--token", make_token(), "--batch-size", "7")
    assert done.returncode == 0, done.stderr
    assert "stored 30, unchanged 0, rejected 1" in done.stdout
    assert "line 11: rejected" in done.stderr
    again = _tripsearch("index", str(path), "--url", api.url, "--batch-size", "100", env={"TRIPSEARCH_TOKEN": make_token()})
    assert "stored 0, unchanged 30, rejected 1" in again.stdout

    assert all(httpx.get(f"{api.url}/v1/trips/{i}").status_code == 200 for i in ids)


def test_index_without_a_token_fails_cleanly(api: Server, tmp_path: Path) -> None:
    path = tmp_path / "one.ndjson"
    path.write_bytes(orjson.dumps(make_trip("cli-no-token")) + b"\n")
    done = _tripsearch("index", str(path), "--url", api.url, "--quiet", env={"TRIPSEARCH_TOKEN": ""})
    assert done.returncode == 2
    assert "401" in done.stderr and "bearer token" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_refuses_bad_settings_in_one_line() -> None:
    done = _tripsearch("serve", "--port", "0", env={"TRIPSEARCH_JWT_SECRET": "short"})
    assert done.returncode == 2
    assert "TRIPSEARCH_JWT_SECRET must be at least 32 bytes" in done.stderr
    assert "Traceback" not in done.stderr
    done = _tripsearch("serve", "--workers", "0")
    assert done.returncode == 2 and "--workers" in done.stderr
