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


def test_search_around_a_time_over_several_days_shows_occurrences(tmp_path: Path) -> None:
    import tripsearch

    from .support import AKUREYRI, HUSAVIK, make_regular_trip

    data = tmp_path / "data"
    engine = tripsearch.open(data, refresh_interval=0)
    try:
        engine.upsert([make_regular_trip("cli-daily", exceptions=[{"date": "2027-01-05", "time": "08:15"}])], refresh=True)
        engine.snapshot()  # type: ignore[attr-defined]
    finally:
        engine.close()
    where = ["--from", f"{AKUREYRI[0]},{AKUREYRI[1]}", "--to", f"{HUSAVIK[0]},{HUSAVIK[1]}", "--data", str(data), "--facets", "none"]
    done = _tripsearch("search", *where, "--date-from", "2027-01-04", "--date-to", "2027-01-06", "--departure-time", "08:10", "--time-delta", "1800", "--sort", "time_distance")
    assert done.returncode == 0, done.stderr
    rows = [line.split()[:3] for line in done.stdout.splitlines() if line.startswith("cli-daily")]
    assert rows == [["cli-daily@01-05", "01-05", "08:15"], ["cli-daily@01-04", "01-04", "07:45"], ["cli-daily@01-06", "01-06", "07:45"]]
    as_json = orjson.loads(_tripsearch("search", *where, "--date", "2027-01-05", "--json").stdout)
    assert [(h["id"], h["occurrence"]) for h in as_json["trips"]] == [("cli-daily", "2027-01-05")]
    refused = _tripsearch("search", *where, "--date-from", "2027-01-04", "--sort", "time_distance")
    assert refused.returncode == 2 and "--date-to" in refused.stderr and "Traceback" not in refused.stderr
