"""An HTTP load generator for the tripsearch API, on loopback only.

It replays a :class:`~tripsearch.capacity.workload.Workload` (searches, page-2 cursor
follows and place autocompletes) against ``tripsearch serve`` and reports
searches/s and latency percentiles. Two ways to load:

- **closed loop** (``concurrency=C``): C connections, each sending its next
  call as soon as the last one answered. It finds the most a server can do
  (saturation), but its latencies hide queueing: a slow server slows the
  client down too.
- **open loop** (``rate=R``): calls arrive at R per second (Poisson arrivals
  from a seeded generator) whatever the server does, and each latency counts
  from the moment the call was due, so waiting for a free connection counts
  too (no coordinated omission). This is the latency a user sees at that
  traffic, and what capacity planning reads.

A page-2 follow is sent on the same connection right after its first page
answers, with the ``next_cursor`` of that answer, as a user clicking "next"
would; it is counted as a search of its own.

The client is raw asyncio streams (HTTP/1.1 keep-alive, uvloop when
installed), far cheaper per request than a full HTTP client, and
:func:`run_load` runs it in a separate process so it never shares a GIL with
the caller. Every run is bounded in time and in count, and only loopback
addresses are accepted: this tool must never flood another machine.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import collections
import ipaddress
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence
from urllib.parse import quote, urlencode, urlsplit

import numpy as np
import orjson

from .. import aio
from ..errors import TripSearchError
from ..query.params import query_to_params
from .workload import Workload

__all__ = ["LoadSpec", "LoadResult", "NotLoopback", "LoadFailed", "check_loopback", "workload_calls", "run_load", "run_load_here"]

# A call: (kind, path, follow the cursor to page 2). Kinds: "search", "places" (and "page2" in results).
Call = tuple[str, str, bool]


class NotLoopback(TripSearchError, ValueError):
    """The target is not a loopback address: the load generator refuses it."""


class LoadFailed(TripSearchError):
    """The load generator process failed (the reason is its last error line)."""


@dataclass(frozen=True)
class LoadSpec:
    """One load run: where, what, how hard and for how long."""

    url: str
    calls: list[Call]
    concurrency: int | None = None  # closed loop
    rate: float | None = None  # open loop, calls per second
    duration_s: float = 5.0
    warmup_s: float = 1.0
    max_requests: int = 1_000_000  # counted calls, a bound beside the duration
    max_connections: int = 256  # open loop: connections it may open
    timeout_s: float = 30.0  # per request
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.concurrency is None) == (self.rate is None):
            raise ValueError("give either concurrency (closed loop) or rate (open loop)")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.rate is not None and not self.rate > 0:
            raise ValueError("rate must be above 0")
        if not self.calls:
            raise ValueError("the workload has no calls")
        if self.duration_s <= 0 or self.warmup_s < 0 or self.max_requests < 1:
            raise ValueError("duration must be above 0, warm-up at least 0, max_requests at least 1")


@dataclass
class LoadResult:
    """What one run measured. Latencies in ms; ``searches`` counts first pages and page-2 follows."""

    mode: str
    concurrency: int | None
    offered_rate: float | None
    duration_s: float
    requests: int
    searches: int
    places: int
    page2: int
    errors: int
    dropped: int  # open loop: calls due in the window that had not answered by the end
    statuses: dict[str, int]
    searches_per_s: float
    requests_per_s: float
    latency_ms: dict[str, float]  # every request: p50, p90, p99, max, mean
    by_kind: dict[str, dict[str, float]] = field(default_factory=dict)  # search, page2, places, and searches (search + page2)
    client_cpu_s: float = 0.0
    client_cpu_share: float = 0.0  # of one core
    connections: int = 0
    first_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadResult:
        return cls(**data)


def check_loopback(url: str) -> tuple[str, int, str]:
    """Return (address to connect to, port, Host header) of ``url``, or raise :class:`NotLoopback`.

    >>> check_loopback("http://127.0.0.1:8000")
    ('127.0.0.1', 8000, '127.0.0.1:8000')
    >>> check_loopback("http://example.com")
    Traceback (most recent call last):
    ...
    tripsearch.capacity.loadgen.NotLoopback: refusing http://example.com: the load generator only targets loopback addresses (127.0.0.0/8, ::1)
    """
    parts = urlsplit(url)
    refusal = f"refusing {url}: the load generator only targets loopback addresses (127.0.0.0/8, ::1)"
    if parts.scheme != "http" or not parts.hostname:
        raise NotLoopback(f"refusing {url}: give an http://127.0.0.1:PORT address")
    host = parts.hostname
    port = parts.port or 80
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if host != "localhost":  # no DNS: a name could resolve anywhere tomorrow
            raise NotLoopback(refusal) from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
    if not addresses or not all(a.is_loopback for a in addresses):
        raise NotLoopback(refusal)
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(addresses[0]), port, netloc


def workload_calls(workload: Workload, seed: int = 0, places_limit: int = 10) -> list[Call]:
    """Return the workload's calls as request paths, in the workload's shuffled order."""
    calls: list[Call] = []
    for kind, item in workload.mixed(seed):
        if kind == "search":
            query, follow = item
            calls.append(("search", "/v1/search?" + urlencode(query_to_params(query)), bool(follow)))
        else:
            calls.append(("places", "/v1/places?" + urlencode({"q": item, "limit": places_limit}), False))
    return calls


# -- the client ---------------------------------------------------------------


class _Connection:
    def __init__(self, host: str, port: int, host_header: str) -> None:
        self.host, self.port = host, port
        self.head = f"Host: {host_header}\r\nUser-Agent: tripsearch-loadgen\r\n\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, path: str) -> tuple[int, bytes]:
        """Send ``GET path``; return (status, body). One reconnect if a kept-alive connection was closed by the server."""
        for attempt in (0, 1):
            fresh = self.writer is None
            if fresh:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None and self.writer is not None
            try:
                self.writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self.head)
                return await self._response()
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if fresh or attempt:
                    raise
        raise AssertionError("unreachable")

    async def _response(self) -> tuple[int, bytes]:
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        chunked = close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(data[:-2])
            body = b"".join(parts)
        else:
            body = await self.reader.readexactly(length or 0)
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class _Recorder:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = {"search": [], "page2": [], "places": []}
        self.statuses: dict[str, int] = {}
        self.errors = 0
        self.first_error: str | None = None

    def add(self, kind: str, seconds: float, status: int | str) -> None:
        self.latencies[kind].append(seconds * 1000.0)
        key = str(status)
        self.statuses[key] = self.statuses.get(key, 0) + 1
        if not (isinstance(status, int) and 200 <= status < 300):
            self.errors += 1
            if self.first_error is None:
                self.first_error = f"{kind}: {status}"


_FAILURES = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, TimeoutError)


async def _call(conn: _Connection, call: Call, due: float, rec: _Recorder | None, timeout_s: float) -> None:
    """Send one call (and its page-2 follow); latency counts from ``due``; ``rec`` None during the warm-up."""
    kind, path, follow = call
    try:
        async with asyncio.timeout(timeout_s):
            status, body = await conn.request(path)
    except _FAILURES as exc:
        conn.close()
        if rec is not None:
            rec.add(kind, time.perf_counter() - due, type(exc).__name__)
        return
    if rec is not None:
        rec.add(kind, time.perf_counter() - due, status)
    if follow and status == 200:
        cursor = orjson.loads(body).get("next_cursor")
        if cursor:
            sent = time.perf_counter()
            try:
                async with asyncio.timeout(timeout_s):
                    status, _ = await conn.request(path + "&cursor=" + quote(cursor, safe=""))
            except _FAILURES as exc:
                conn.close()
                status = type(exc).__name__  # type: ignore[assignment]
            if rec is not None:
                rec.add("page2", time.perf_counter() - sent, status)


async def _closed_loop(spec: LoadSpec, target: tuple[str, int, str], rec: _Recorder, start: float, end: float) -> tuple[int, int]:
    """C connections back to back; a call counts if it is sent inside [start, end) and answers before ``end``.

    The connections open one after another, each once the one before has
    had an answer and is sending again: a server worker busy with a request
    does not accept, so the next connection goes to a worker that has time.
    Opened all at once, C connections fall on a server's worker processes
    at random (uvicorn's workers accept from one socket), and a worker
    left with fewer of them sits idle while the others queue.
    """
    assert spec.concurrency is not None
    order = itertools.cycle(np.random.default_rng(spec.seed).permutation(len(spec.calls)).tolist())
    counted = 0
    opened = [asyncio.Event() for _ in range(spec.concurrency)]

    async def worker(i: int) -> None:
        nonlocal counted
        if i:
            await opened[i - 1].wait()
        conn = _Connection(*target)
        try:
            while (now := time.perf_counter()) < end and counted < spec.max_requests:
                call = spec.calls[next(order)]
                if now < start:
                    await _call(conn, call, now, None, spec.timeout_s)
                else:
                    counted += 1
                    late = _Recorder()
                    await _call(conn, call, now, late, spec.timeout_s)
                    if time.perf_counter() <= end:
                        for kind, values in late.latencies.items():
                            rec.latencies[kind] += values
                        for key, n in late.statuses.items():
                            rec.statuses[key] = rec.statuses.get(key, 0) + n
                        rec.errors += late.errors
                        rec.first_error = rec.first_error or late.first_error
                # The next connection opens when this one next waits: once its next request is sent.
                opened[i].set()
        finally:
            opened[i].set()
            conn.close()

    await asyncio.gather(*(worker(i) for i in range(spec.concurrency)))
    return spec.concurrency, 0


async def _open_loop(spec: LoadSpec, target: tuple[str, int, str], rec: _Recorder, start: float, end: float) -> tuple[int, int]:
    """Calls due at Poisson arrival times; each waits for a free connection if none is (the wait counts)."""
    assert spec.rate is not None
    rng = np.random.default_rng(spec.seed)
    idle: list[_Connection] = []
    waiters: collections.deque[asyncio.Future[_Connection]] = collections.deque()
    opened = 0
    pending: set[asyncio.Task[None]] = set()

    async def one(call: Call, due: float, counted: bool) -> None:
        nonlocal opened
        if idle:
            conn = idle.pop()
        elif opened < spec.max_connections:
            opened += 1
            conn = _Connection(*target)
        else:
            waiter: asyncio.Future[_Connection] = asyncio.get_running_loop().create_future()
            waiters.append(waiter)
            conn = await waiter
        try:
            await _call(conn, call, due, rec if counted else None, spec.timeout_s)
        finally:
            while waiters and waiters[0].done():
                waiters.popleft()
            if waiters:
                waiters.popleft().set_result(conn)
            else:
                idle.append(conn)

    due = time.perf_counter()
    i = counted = 0
    while counted < spec.max_requests:
        due += float(rng.exponential(1.0 / spec.rate))
        if due >= end:
            break
        now = time.perf_counter()
        if due > now:
            await asyncio.sleep(due - now)
        counting = due >= start
        counted += counting
        task = asyncio.create_task(one(spec.calls[i % len(spec.calls)], due, counting))
        pending.add(task)
        task.add_done_callback(pending.discard)
        i += 1
    dropped = 0
    if pending:
        _, late = await asyncio.wait(set(pending), timeout=max(0.0, end + spec.timeout_s - time.perf_counter()))
        dropped = len(late)
        for task in late:
            task.cancel()
    for conn in idle:
        conn.close()
    return opened, dropped


def _summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    data = np.asarray(values)
    p50, p90, p99 = np.percentile(data, [50, 90, 99])
    return {"n": int(len(data)), "p50": round(float(p50), 3), "p90": round(float(p90), 3), "p99": round(float(p99), 3), "max": round(float(data.max()), 3), "mean": round(float(data.mean()), 3)}


async def _run(spec: LoadSpec) -> LoadResult:
    target = check_loopback(spec.url)
    rec = _Recorder()
    cpu0 = time.process_time()
    start = time.perf_counter() + spec.warmup_s
    end = start + spec.duration_s
    if spec.concurrency is not None:
        connections, dropped = await _closed_loop(spec, target, rec, start, end)
    else:
        connections, dropped = await _open_loop(spec, target, rec, start, end)
    finished = time.perf_counter()
    window = max(spec.duration_s, min(finished, end + spec.timeout_s) - start) if spec.rate is not None else max(1e-9, min(finished, end) - start)
    every = [v for values in rec.latencies.values() for v in values]
    searches = len(rec.latencies["search"]) + len(rec.latencies["page2"])
    cpu = time.process_time() - cpu0
    return LoadResult(
        mode="closed" if spec.concurrency is not None else "open",
        concurrency=spec.concurrency,
        offered_rate=spec.rate,
        duration_s=round(window, 3),
        requests=len(every),
        searches=searches,
        places=len(rec.latencies["places"]),
        page2=len(rec.latencies["page2"]),
        errors=rec.errors,
        dropped=dropped,
        statuses=rec.statuses,
        searches_per_s=round(searches / window, 2),
        requests_per_s=round(len(every) / window, 2),
        latency_ms=_summary(every),
        by_kind={**{k: _summary(v) for k, v in rec.latencies.items()}, "searches": _summary(rec.latencies["search"] + rec.latencies["page2"])},
        client_cpu_s=round(cpu, 3),
        client_cpu_share=round(cpu / (finished - start + spec.warmup_s), 3),
        connections=connections,
        first_error=rec.first_error,
    )


def run_load_here(spec: LoadSpec) -> LoadResult:
    """Run the load in this process (the caller's GIL); :func:`run_load` is usually what you want.

    The event loop runs in a thread of its own, so this works even when the
    calling thread already runs one (a test session with other async fixtures).
    """
    check_loopback(spec.url)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tripsearch-loadgen") as pool:
        return pool.submit(aio.run, _run(spec)).result()


def run_load(spec: LoadSpec) -> LoadResult:
    """Run the load in a separate process and return what it measured.

    The process is in a session of its own, so a Ctrl-C reaches the caller
    only; the caller's ``KeyboardInterrupt`` stops the process here.
    """
    check_loopback(spec.url)
    payload = orjson.dumps({**asdict(spec), "calls": [list(c) for c in spec.calls]})
    proc = subprocess.Popen(
        [sys.executable, "-m", "tripsearch.capacity.loadgen", "--spec", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(payload, timeout=spec.warmup_s + spec.duration_s + spec.timeout_s + 60)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        lines = [ln for ln in err.decode(errors="replace").strip().splitlines() if ln.strip()]
        raise LoadFailed(lines[-1] if lines else f"the load generator exited with status {proc.returncode}")
    return LoadResult.from_dict(json.loads(out))


def _spec_from_json(data: dict[str, Any]) -> LoadSpec:
    data = dict(data)
    data["calls"] = [(str(k), str(p), bool(f)) for k, p, f in data["calls"]]
    return LoadSpec(**data)


def main(argv: Iterable[str] | None = None) -> int:
    """``python -m tripsearch.capacity.loadgen``: load a running API with the fixture workload and print the result as JSON."""
    parser = argparse.ArgumentParser(prog="python -m tripsearch.capacity.loadgen", description=main.__doc__)
    parser.add_argument("url", nargs="?", help="http://127.0.0.1:PORT of a running `tripsearch serve`")
    parser.add_argument("--spec", help="read a full LoadSpec as JSON from this file (- for stdin) instead")
    parser.add_argument("--concurrency", type=int, help="closed loop with this many connections (default 4)")
    parser.add_argument("--rate", type=float, help="open loop: calls per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--searches", type=int, default=2000, help="searches in the workload (plus its autocompletes)")
    parser.add_argument("--facets", default="all", help="'all' or 'none'")
    args = parser.parse_args(list(argv) if argv is not None else None)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        if args.spec:
            raw = sys.stdin.buffer.read() if args.spec == "-" else open(args.spec, "rb").read()
            spec = _spec_from_json(orjson.loads(raw))
        else:
            if not args.url:
                parser.error("give the API address, or --spec")
            import datetime as dt

            from ..data.fixtures import generate_trips
            from .workload import build_workload

            sample = list(generate_trips(5000, 42, dt.date(2026, 12, 1), 30))
            work = build_workload(sample, args.searches, seed=1, facets="all" if args.facets == "all" else [])
            concurrency = args.concurrency if args.concurrency or args.rate else 4
            spec = LoadSpec(args.url, workload_calls(work), concurrency=concurrency, rate=args.rate, duration_s=args.seconds, warmup_s=args.warmup)
        result = run_load_here(spec)
    except (NotLoopback, ValueError) as exc:
        print(f"loadgen: error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(result.to_dict()) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
