"""Load runs against a server: the in-process probe, HTTP load points and the latency curve of a worker count."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING, Any, Callable

import orjson

from .loadgen import LoadResult, LoadSpec, run_load
from .errors import CapacityError
from .probe import cpu_seconds, rss_bytes, smaps_rollup
from .server import ApiServer, machine_cpu

if TYPE_CHECKING:
    from .measure import MeasureOptions

__all__ = ["run_probe", "http_curve"]


def run_probe(target: str, queries: dict[str, list[dict[str, Any]]], options: dict[str, Any] | None = None, warmup: int = 20, es_counters: bool = False) -> dict[str, Any]:
    """Run :mod:`.probe` in a fresh process and return what it printed."""
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as f:
        f.write(orjson.dumps({"target": target, "queries": queries, "options": options or {}, "warmup": warmup, "es_counters": es_counters}))
        spec_path = f.name
    try:
        proc = subprocess.Popen([sys.executable, "-m", "tripsearch.capacity.probe", spec_path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if proc.returncode != 0:
            raise CapacityError(f"probe of {target} failed: {err.strip().splitlines()[-1] if err.strip() else proc.returncode}")
        return dict(json.loads(out))
    finally:
        os.unlink(spec_path)


def _load(url: str, calls: list[tuple[str, str, bool]], opts: MeasureOptions, seed: int, *, concurrency: int | None = None, rate: float | None = None, seconds: float | None = None, warmup: float = 0.0) -> LoadResult:
    return run_load(LoadSpec(url, calls, concurrency=concurrency, rate=rate, duration_s=seconds or opts.seconds, warmup_s=warmup, seed=seed, timeout_s=30.0))


def _point(res: LoadResult) -> dict[str, Any]:
    searches = res.by_kind.get("searches", {})
    return {
        "mode": res.mode,
        "concurrency": res.concurrency,
        "offered_calls_per_s": res.offered_rate,
        "searches_per_s": res.searches_per_s,
        "requests_per_s": res.requests_per_s,
        "p50_ms": searches.get("p50"),
        "p90_ms": searches.get("p90"),
        "p99_ms": searches.get("p99"),
        "max_ms": searches.get("max"),
        "all_requests_p99_ms": res.latency_ms.get("p99"),
        "places_p99_ms": res.by_kind.get("places", {}).get("p99"),
        "searches": res.searches,
        "page2": res.page2,
        "places": res.places,
        "errors": res.errors,
        "dropped": res.dropped,
        "first_error": res.first_error,
        "client_cpu_share": res.client_cpu_share,
        "duration_s": res.duration_s,
    }


def _accounted(server: ApiServer, es_cpu: Callable[[], float | None] | None, run: Callable[[], LoadResult]) -> tuple[LoadResult, dict[str, Any]]:
    """Run a load and return it with the CPU the workers, Elasticsearch and the rest of the machine used meanwhile."""
    cpu0 = [cpu_seconds(p) for p in server.pids]
    es0 = es_cpu() if es_cpu else None
    box0 = machine_cpu()
    res = run()
    box1 = machine_cpu()
    cpu1 = [cpu_seconds(p) for p in server.pids]
    es1 = es_cpu() if es_cpu else None
    worker = sum(b - a for a, b in zip(cpu0, cpu1) if a is not None and b is not None)
    es = (es1 - es0) if es0 is not None and es1 is not None else None
    figures: dict[str, Any] = {
        "worker_cpu_ms_per_search": round(worker * 1000.0 / max(1, res.searches), 3),
        "worker_cpu_ms_per_request": round(worker * 1000.0 / max(1, res.requests), 3),
        "es_cpu_ms_per_search": round(es * 1000.0 / max(1, res.searches), 3) if es is not None else None,
    }
    if box0 is not None and box1 is not None and box1[1] > box0[1]:
        wall = (box1[1] - box0[1]) / (os.cpu_count() or 1)
        busy = (box1[0] - box0[0]) / wall
        ours = (worker + res.client_cpu_s + (es or 0.0)) / wall
        # what else ran on the machine meanwhile: on a shared machine, the reason figures move between runs
        figures.update({"machine_busy_cores": round(busy, 2), "other_busy_cores": round(max(0.0, busy - ours), 2)})
    return res, figures


def _p99(point: dict[str, Any]) -> float:
    return float("inf") if point.get("errors") or point.get("dropped") or point.get("p99_ms") is None else float(point["p99_ms"])


def http_curve(server_args: dict[str, Any], workers: int, calls: list[tuple[str, str, bool]], opts: MeasureOptions, say: Callable[[str], None], es_cpu: Callable[[], float | None] | None = None) -> dict[str, Any]:
    """Start a server, find its saturation rate (closed loop), then measure latency at fractions of it (open loop).

    Each run is repeated ``opts.repeats`` times and the best kept (the most
    searches/s at saturation, the lowest p99 at a load): other work on the
    machine only ever slows a run down, so the best run is the closest to
    what the server itself does. Every repeat's figure is kept beside it.
    """
    server = ApiServer(workers, **server_args)
    try:
        server.start(opts.ready_timeout_s)
        say(f"    {workers} worker(s) ready after {server.ready_s:.1f} s; warming up")
        _load(server.url, calls, opts, seed=10, concurrency=2 * workers, seconds=max(opts.warmup_s, 0.2))
        runs = [_accounted(server, es_cpu, functools.partial(_load, server.url, calls, opts, seed=11 + r, concurrency=3 * workers, warmup=0.2)) for r in range(opts.repeats)]
        sat, figures = max(runs, key=lambda rf: rf[0].searches_per_s)
        saturation = {**_point(sat), **{k: v for k, v in figures.items() if k.endswith("busy_cores")}, "repeats_searches_per_s": [r.searches_per_s for r, _ in runs]}
        say(f"    saturation: {sat.searches_per_s:,.0f} searches/s ({sat.requests_per_s:,.0f} requests/s), p50 {sat.by_kind['searches'].get('p50')} ms, p99 {sat.by_kind['searches'].get('p99')} ms"
            + (f"; other processes used {figures['other_busy_cores']} cores meanwhile" if "other_busy_cores" in figures else "")
            + (f"; repeats {', '.join(f'{r.searches_per_s:,.0f}' for r, _ in runs)}" if len(runs) > 1 else ""))
        calls_per_s = max(1.0, sat.requests_per_s - sat.page2 / max(sat.duration_s, 1e-9))
        points = []
        for i, fraction in enumerate(opts.load_fractions):
            tries = []
            for r in range(opts.repeats):
                res, extra = _accounted(server, es_cpu, functools.partial(_load, server.url, calls, opts, seed=20 + 10 * i + r, rate=fraction * calls_per_s, warmup=0.2))
                tries.append({"fraction": fraction, **_point(res), **{k: v for k, v in extra.items() if k.endswith("busy_cores")}})
            best = min(tries, key=_p99)
            points.append({**best, "repeats_p99_ms": [t["p99_ms"] for t in tries]})
            say(f"    {fraction:>4.0%} of saturation: {best['searches_per_s']:,.0f} searches/s, p50 {best['p50_ms']} ms, p99 {best['p99_ms']} ms"
                + (f" (repeats: {', '.join(str(t['p99_ms']) for t in tries)})" if len(tries) > 1 else "")
                + (f", {best['errors']} errors" if best["errors"] else "") + (f", {best['dropped']} unanswered" if best["dropped"] else ""))
        rss = [rss_bytes(p) for p in server.pids]
        # PSS as well as RSS: the workers map one segment file, which RSS counts once per worker and PSS once in all
        smaps = [smaps_rollup(p) for p in server.pids]
        return {
            "workers": workers,
            "ready_s": round(server.ready_s or 0.0, 3),
            "worker_rss_bytes": rss,
            "worker_pss_bytes": [s["Pss"] if s else None for s in smaps],
            "worker_smaps": smaps,
            "saturation": saturation,
            **{k: v for k, v in figures.items() if not k.endswith("busy_cores")},
            "repeats": opts.repeats,
            "open_loop": points,
        }
    finally:
        server.stop()
