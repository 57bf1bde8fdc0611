"""Soak: mixed search and write traffic against `tripsearch serve --workers 2`, bounded in time, on loopback.

No errors, worker memory does not keep growing, and every write
acknowledged during the soak is searchable at the end.
``TRIPSEARCH_SOAK_SECONDS`` sets the length.

Writes may not make searches much slower: the soak alternates windows of
``WINDOW_S`` with and without writes (searches run all along), and the
search p99 of the windows with writes must stay within ``SLOWDOWN_BOUND``
times that of the windows without, plus ``NOISE_MS``. Both figures come from
the same run, interleaved, so a busy machine raises both alike; an absolute
target would flake on a shared CI machine. The long run (600 s, recorded in
benchmarks/README.md, meant for a machine doing nothing else) also holds
the p99 to the API target (25 ms), the figure it exists for::

    TRIPSEARCH_SOAK_SECONDS=600 .venv/bin/python -m pytest tests/api/test_soak.py -s
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from typing import Any, Callable

import httpx
import numpy as np
import orjson
import psutil
import pytest

from tripsearch.capacity.workload import build_workload

from .conftest import FIXTURE, Server
from .support import iceland_query, make_token, make_trip

SOAK_SECONDS = float(os.environ.get("TRIPSEARCH_SOAK_SECONDS", "30"))
SEARCH_RATE = 80.0  # searches per second, open loop: latency is service time, not a queue we build ourselves
WRITE_RATE = 10.0  # single-trip writes per second
P99_TARGET_MS = 25.0
LONG_RUN_S = 300.0  # from this length on, the soak is the benchmark run and holds the p99 to its target
WINDOW_S = 5.0  # the soak alternates windows without and with writes
SLOWDOWN_BOUND = 3.0  # p99 with writes <= SLOWDOWN_BOUND * p99 without + NOISE_MS
NOISE_MS = 10.0  # what chance adds to the p99 of a few hundred samples on a busy machine
DAYS = [dt.date(2027, 3, 1) + dt.timedelta(days=i) for i in range(5)]


def worker_rss(server: Server) -> int:
    parent = psutil.Process(server.process.pid)
    return sum(p.memory_info().rss for p in parent.children(recursive=True))


@pytest.mark.slow
def test_soak_two_workers(start_api: Callable[..., Server]) -> None:
    server = start_api(workers=2)
    trips = [orjson.loads(line) for line in FIXTURE.read_bytes().splitlines()]
    searches = build_workload(trips, 2000, seed=3, facets="all").searches
    token = make_token()
    latencies: list[float] = []
    by_window: dict[bool, list[float]] = {False: [], True: []}  # writing window or not -> search latencies
    errors: list[str] = []
    soak_start = 0.0

    def writing_window() -> bool:
        return int((time.monotonic() - soak_start) / WINDOW_S) % 2 == 1
    acked: dict[str, tuple[int, dt.date]] = {}

    async def searcher(client: httpx.AsyncClient, stop: float) -> None:
        i = 0
        next_at = time.monotonic()
        while time.monotonic() < stop:
            q = searches[i % len(searches)]
            i += 1
            params = {"from": f"{q['from'][0]},{q['from'][1]}", "to": f"{q['to'][0]},{q['to'][1]}", "date": q["date"], **{k: ",".join(v) if isinstance(v, list) else str(v) for k, v in q.items() if k not in ("from", "to", "date", "facets")}}
            asyncio.create_task(one_search(client, params))
            next_at += 1.0 / SEARCH_RATE
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def one_search(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
        writing = writing_window()
        started = time.perf_counter()
        try:
            r = await client.get("/v1/search", params=params)
        except httpx.HTTPError as exc:
            errors.append(f"search: {exc!r}")
            return
        latencies.append((time.perf_counter() - started) * 1000)
        by_window[writing].append(latencies[-1])
        if r.status_code != 200:
            errors.append(f"search {r.status_code}: {r.text[:200]}")

    async def writer(client: httpx.AsyncClient, stop: float) -> None:
        n = 0
        while time.monotonic() < stop:
            if not writing_window():
                await asyncio.sleep(0.05)
                continue
            day = DAYS[n % len(DAYS)]
            tid = f"soak-{n % 300}"  # rewrites too: versions move forward
            version = n + 1
            r = await client.put(f"/v1/trips/{tid}", content=orjson.dumps(make_trip(tid, version, day=day, hour=8 + n % 10)), headers={"Authorization": f"Bearer {token}"})
            if r.status_code == 200:
                acked[tid] = (version, day)
            else:
                errors.append(f"write {r.status_code}: {r.text[:200]}")
            n += 1
            await asyncio.sleep(1.0 / WRITE_RATE)

    async def soak() -> None:
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        async with httpx.AsyncClient(base_url=server.url, timeout=10, limits=limits) as client:
            warm_until = time.monotonic() + 3
            await searcher(client, warm_until)
            await asyncio.sleep(0.5)
            latencies.clear()
            nonlocal rss_start, soak_start
            rss_start = worker_rss(server)
            for window in by_window.values():
                window.clear()
            soak_start = time.monotonic()
            stop = soak_start + SOAK_SECONDS
            await asyncio.gather(searcher(client, stop), writer(client, stop))
            await asyncio.sleep(1.0)  # let the last searches land

    rss_start = 0
    asyncio.run(soak())
    rss_end = worker_rss(server)

    assert not errors, errors[:5]
    assert len(latencies) >= SOAK_SECONDS * SEARCH_RATE * 0.8
    p99 = float(np.percentile(latencies, 99))
    p50, p90 = np.percentile(latencies, [50, 90])
    quiet_p99, writing_p99 = (float(np.percentile(by_window[w], 99)) for w in (False, True))
    bound = SLOWDOWN_BOUND * quiet_p99 + NOISE_MS
    print(f"soak: search p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms over {len(latencies)} searches (target p99 <= {P99_TARGET_MS} ms); "
          f"p99 {writing_p99:.1f} ms with writes, {quiet_p99:.1f} ms without (bound {bound:.1f} ms); "
          f"{len(acked)} trips written, workers' RSS {rss_start / 2**20:.0f} -> {rss_end / 2**20:.0f} MB")
    assert writing_p99 <= bound, f"search p99 {writing_p99:.1f} ms while writing, over {SLOWDOWN_BOUND}x the {quiet_p99:.1f} ms without writes + {NOISE_MS} ms"
    if SOAK_SECONDS >= LONG_RUN_S:
        assert p99 <= P99_TARGET_MS, f"search p99 {p99:.1f} ms over the {P99_TARGET_MS} ms target"
    # memory: the writes add a few hundred trips; the workers must not grow by more than a sliver
    assert rss_end - rss_start < 64 * 2**20, f"workers grew from {rss_start >> 20} MB to {rss_end >> 20} MB"
    # every acknowledged write is searchable, through both workers, at its latest version
    time.sleep(1.5)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for day in DAYS:
            expected = {tid for tid, (_, d) in acked.items() if d == day}
            for _ in range(4):  # several calls: keep-alive off, so they spread over the two workers
                found = set()
                cursor = None
                while True:
                    params = {**iceland_query(day), **({"cursor": cursor} if cursor else {})}
                    body = client.get("/v1/search", params=params, headers={"Connection": "close"}).json()
                    found |= {h["id"] for h in body["trips"] if h["id"].startswith("soak-") and h["trip"]["version"] == acked[h["id"]][0]}
                    cursor = body["next_cursor"]
                    if not cursor:
                        break
                assert expected <= found, f"{day}: {len(expected - found)} acknowledged writes not found"
