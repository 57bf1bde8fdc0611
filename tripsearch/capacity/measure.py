"""``tripsearch capacity measure``: measure this machine and save the figures as JSON.

What is measured, per index size (built once and cached, or given):

- in-process search latency (p50/p90/p99, CPU per search, candidates per
  match) with all facets and with none, and the open time and resident
  memory of the index, each in a fresh process (:mod:`.probe`);
- HTTP throughput and latency through ``tripsearch serve`` at 1 and 2
  workers: a closed loop finds the saturation rate, then open-loop runs at
  fractions of it give the latency each traffic level gets (the knee); and
  the resident memory (RSS and PSS, from ``/proc/PID/smaps_rollup``) and
  CPU per search of each worker;
- writes: bulk load trips/s (batches of 5,000), one-trip transactions/s
  (an API ``PUT`` each), and how fast a worker following the store applies
  other processes' writes (the cost every worker pays per write), and the
  bytes per trip of the in-memory delta those writes build in each worker;
- with Elasticsearch, the same data and queries: bulk load, latency, store
  bytes per trip, CPU per search of the node, HTTP through the API.

Every step is saved as it finishes (``<out>.partial.json``), and the full
file is written at the end. Ctrl-C (or SIGTERM) stops the step under way
(its servers and load processes are stopped), then saves the finished steps
to ``out`` marked incomplete, or with ``save_partial=False`` discards them
and leaves ``out`` as it was; the message says which. ``resume`` keeps the
finished steps of the saved run and measures the rest (``redo`` names steps
to measure again).

The machine is recorded with the figures (CPU model, cores, memory,
versions, commit, load average), and so is the CPU that other processes
took during each HTTP run: on a shared machine that is why figures move.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import orjson

import tripsearch

from .datasets import SEED, WORKLOAD_SAMPLE, build_data_dir, dir_sizes, fixture_trips, http_calls, segment_file, warm_page_cache, workload_queries
from .errors import CapacityError
from .loadruns import http_curve, run_probe
from .probe import rss_bytes

__all__ = ["MeasureOptions", "measure", "machine_info", "DEFAULT_OUT", "SCHEMA"]

SCHEMA = 1
DEFAULT_OUT = Path("benchmarks") / "results" / "capacity.json"
ROOT = Path(__file__).resolve().parents[2]  # the checkout, when run from one: its commit is recorded
ES_TOOL = [sys.executable, "-m", "tripsearch.dev.elasticsearch"]  # tripsearch dev elasticsearch, from any install
ES_CLUSTER = "tripsearch-capacity"
API_INDEX = "trips"  # the alias `tripsearch serve --backend` searches


@dataclass(frozen=True)
class MeasureOptions:
    """What ``measure`` does; the defaults are the full run, :meth:`quick_options` the seconds-long one for tests."""

    out: Path = DEFAULT_OUT
    sizes: tuple[int, ...] = (10_000, 100_000)
    data_dirs: tuple[Path, ...] = ()  # existing data directories (e.g. --data-1m), measured as they are
    http_sizes: tuple[int, ...] | None = None  # None: every size
    workers: tuple[int, ...] = (1, 2)
    queries: int = 300  # in-process searches per size and facet mode
    http_searches: int = 2000  # searches in the HTTP workload (plus its autocompletes)
    seconds: float = 5.0  # per load point
    warmup_s: float = 2.0
    load_fractions: tuple[float, ...] = (0.3, 0.5, 0.7, 0.8, 0.9, 1.0, 1.1)
    load_trips: int = 100_000  # bulk load (and the Elasticsearch index)
    single_writes: int = 300
    elasticsearch: str | None = None
    start_elasticsearch: bool = False
    keep_elasticsearch: bool = False
    cache: Path = Path(os.environ.get("TRIPSEARCH_BENCH_DIR", Path.home() / ".cache" / "tripsearch" / "bench"))
    save_partial: bool = True
    resume: bool = False  # keep the finished steps saved at ``out``
    redo: tuple[str, ...] = ()  # with resume: step ids (or prefixes) to measure again
    quick: bool = False
    ready_timeout_s: float = 900.0
    repeats: int = 2  # of each load point; the best is kept (see http_curve)

    @classmethod
    def quick_options(cls, **overrides: Any) -> MeasureOptions:
        """Return options for a run of seconds: tiny indexes, short load points, HTTP on the largest only."""
        base: dict[str, Any] = {
            "sizes": (500, 2000),
            "http_sizes": (2000,),
            "queries": 30,
            "http_searches": 200,
            "seconds": 0.6,
            "warmup_s": 0.4,
            "load_fractions": (0.5, 0.9),
            "load_trips": 1000,
            "single_writes": 20,
            "repeats": 1,
            "quick": True,
        }
        base.update(overrides)
        return cls(**base)


def machine_info() -> dict[str, Any]:
    """Return what the figures depend on: CPU model and cores, memory, software versions, date and commit."""
    model = None
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines() if ":" in line)
        info = {k.strip().lower(): v.strip() for k, v in info.items()}
        model = info.get("model name") or info.get("hardware") or info.get("cpu model")
    except OSError:
        pass
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    cpu_limit = None
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpu_limit = round(int(quota) / int(period), 2)
    except (OSError, ValueError):
        pass
    versions: dict[str, str] = {"python": platform.python_version(), "tripsearch": tripsearch.__version__}
    for name in ("numpy", "numba", "h3", "uvicorn", "fastapi", "elasticsearch"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:  # not installed: nothing to record
            pass
    return {
        "cpu_model": model or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "cgroup_cpu_limit": cpu_limit,
        "memory_bytes": memory,
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "versions": versions,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _git_commit() -> str | None:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # read only: never refresh the index file
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10, env=env)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "diff-index", "--quiet", "HEAD", "--"], cwd=ROOT, capture_output=True, timeout=30, env=env)
        return head.stdout.strip() + ("-dirty" if dirty.returncode == 1 else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


@dataclass
class _Run:
    opts: MeasureOptions
    results: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    data: dict[int, Path] = field(default_factory=dict)
    es_url: str | None = None
    es_alias: str | None = None
    es_started: bool = False

    def say(self, message: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"[{elapsed:6.0f} s] {message}", file=sys.stderr, flush=True)


def _steps(run: _Run) -> list[tuple[str, str, Callable[[], Any]]]:
    """Return (id, title, function) of every step, in order."""
    opts = run.opts
    steps: list[tuple[str, str, Callable[[], Any]]] = []
    sizes = sorted(set(opts.sizes))
    for size in sizes:
        steps.append((f"data:{size}", f"data directory of {size:,} trips", functools.partial(_step_data, run, size)))
    for i, path in enumerate(opts.data_dirs):
        steps.append((f"data:dir{i}", f"data directory {path}", functools.partial(_step_data_dir, run, i, path)))
    labels = [f"{s}" for s in sizes] + [f"dir{i}" for i in range(len(opts.data_dirs))]

    def words(label: str) -> str:
        return f"{int(label):,} trips" if label.isdigit() else str(opts.data_dirs[int(label[3:])])

    for label in labels:
        steps.append((f"probe:embedded:{label}", f"open, memory and in-process latency, {words(label)}", functools.partial(_step_probe, run, label)))
    steps.append(("writes:embedded", "writes: bulk load, one-trip transactions, follower apply rate", lambda: _step_writes(run)))
    http_labels = labels if opts.http_sizes is None else [str(s) for s in opts.http_sizes] + [f"dir{i}" for i in range(len(opts.data_dirs))]
    for label in http_labels:
        for workers in opts.workers:
            steps.append((f"http:embedded:{label}:{workers}", f"HTTP, {words(label)}, {workers} worker(s)", functools.partial(_step_http, run, label, workers)))
    if opts.elasticsearch or opts.start_elasticsearch:
        steps.append(("es:cluster", "Elasticsearch cluster", lambda: _step_es_cluster(run)))
        steps.append(("es:load", f"Elasticsearch bulk load of {opts.load_trips:,} trips and store size", lambda: _step_es_load(run)))
        steps.append(("probe:embedded:es-size", f"embedded in-process latency at {opts.load_trips:,} trips (the Elasticsearch comparison)", lambda: _step_probe_es_size(run)))
        steps.append(("probe:elasticsearch", "Elasticsearch in-process latency (same queries)", lambda: _step_es_probe(run)))
        for workers in opts.workers:
            steps.append((f"http:elasticsearch:{opts.load_trips}:{workers}", f"HTTP over Elasticsearch, {workers} worker(s)", functools.partial(_step_es_http, run, workers)))
    return steps


def _label_target(run: _Run, label: str) -> Path:
    if label.startswith("dir"):
        return run.opts.data_dirs[int(label[3:])]
    size = int(label)
    if size not in run.data:
        run.data[size] = build_data_dir(size, run.opts.cache, run.say)
    return run.data[size]


def _step_data(run: _Run, size: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    path = build_data_dir(size, run.opts.cache, run.say)
    run.data[size] = path
    return {"kind": "data", "trips": size, "path": str(path), "seconds": round(time.perf_counter() - t0, 3), **dir_sizes(path)}


def _step_data_dir(run: _Run, i: int, path: Path) -> dict[str, Any]:
    if not (path / "trips.sqlite").is_file():
        raise CapacityError(f"{path} is not a tripsearch data directory (no trips.sqlite)")
    return {"kind": "data", "path": str(path), **dir_sizes(path)}


def _probe_queries(opts: MeasureOptions) -> dict[str, list[dict[str, Any]]]:
    sample = min(WORKLOAD_SAMPLE, min(opts.sizes))
    return {"facets": workload_queries(opts.queries, "all", sample=sample), "no_facets": workload_queries(opts.queries, [], sample=sample)}


def _step_probe(run: _Run, label: str) -> dict[str, Any]:
    target = _label_target(run, label)
    # the files in the page cache, as on a machine that has served a while: the open time is then the index's own
    # (a cold start also reads index.snapshot from disk: its size is saved beside, to divide by the disk's read rate)
    for name in ("trips.sqlite", "index.snapshot", segment_file(target) or "index.snapshot"):
        if (target / name).exists():
            warm_page_cache(target / name)
    out = run_probe(str(target), _probe_queries(run.opts), {"refresh_interval": 0, "snapshot_on_close": False}, warmup=min(20, run.opts.queries))
    lat = out["latency"]
    run.say(f"    {out['trips']:,} trips: open {out['open_s']:.2f} s, RSS +{(out['rss_delta'] or 0) / 2**20:,.0f} MiB; "
            f"facets p50 {lat['facets']['p50_ms']} ms p99 {lat['facets']['p99_ms']} ms; no facets p50 {lat['no_facets']['p50_ms']} ms p99 {lat['no_facets']['p99_ms']} ms")
    return {"kind": "probe", "backend": "embedded", "label": label, **out, **dir_sizes(target)}


def _step_writes(run: _Run) -> dict[str, Any]:
    """Bulk load, one-trip transactions and the follower's apply rate, in a temporary data directory."""
    opts = run.opts
    lines = [orjson.dumps(t) for t in fixture_trips(opts.load_trips, seed=SEED + 1)]
    tmp = Path(tempfile.mkdtemp(prefix="tripsearch-capacity-writes-"))
    try:
        follower = tripsearch.open(tmp / "data", refresh_interval=0, snapshot_on_close=False)
        writer = tripsearch.open(tmp / "data", refresh_interval=0, snapshot_on_close=False)
        try:
            t0 = time.perf_counter()
            last = t0
            for i in range(0, len(lines), 5000):
                report = writer.upsert(lines[i : i + 5000], refresh=True)
                if report.rejected:
                    raise CapacityError(f"bulk load rejected {report.rejected} fixture trips")
                if time.perf_counter() - last > 10:
                    run.say(f"    bulk load: {i + 5000:,} / {len(lines):,}")
                    last = time.perf_counter()
            bulk_s = time.perf_counter() - t0
            rss0 = rss_bytes()
            t0 = time.perf_counter()
            follower.refresh()
            apply_s = time.perf_counter() - t0
            rss1 = rss_bytes()
            # the follower has no segment yet: all it applied sits in its in-memory delta, which every worker holds
            # until a merge; its arrays are a floor of what that costs, the process's RSS growth meanwhile the rest
            delta = follower.stats()
            delta_array_per_trip = delta["array_bytes"] / max(1, delta["trips"])
            delta_rss_per_trip = (rss1 - rss0) / max(1, delta["trips"]) if rss0 is not None and rss1 is not None else 0.0
            singles = [orjson.dumps(t) for t in fixture_trips(opts.single_writes, seed=SEED + 2)]
            t0 = time.perf_counter()
            for line in singles:
                writer.upsert([line])
            single_s = time.perf_counter() - t0
        finally:
            writer.close()
            follower.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = {
        "kind": "writes",
        "backend": "embedded",
        "bulk_trips": len(lines),
        "bulk_batch": 5000,
        "bulk_s": round(bulk_s, 3),
        "bulk_trips_per_s": round(len(lines) / bulk_s, 1),
        "follower_apply_s": round(apply_s, 3),
        "follower_apply_trips_per_s": round(len(lines) / apply_s, 1),
        "delta_trips": int(delta["trips"]),
        "delta_array_bytes_per_trip": round(delta_array_per_trip, 1),
        "delta_rss_bytes_per_trip": round(delta_rss_per_trip, 1),
        "delta_bytes_per_trip": round(max(delta_array_per_trip, delta_rss_per_trip), 1),
        "single_writes": len(singles),
        "single_writes_per_s": round(len(singles) / single_s, 1),
    }
    run.say(f"    bulk {out['bulk_trips_per_s']:,.0f} trips/s; one-trip transactions {out['single_writes_per_s']:,.0f}/s; a follower applies {out['follower_apply_trips_per_s']:,.0f} trips/s "
            f"into {out['delta_bytes_per_trip']:,.0f} bytes of in-memory delta per trip")
    return out


def _step_http(run: _Run, label: str, workers: int) -> dict[str, Any]:
    target = _label_target(run, label)
    # A search reads its page of trips from trips.sqlite: measure with the file in the page cache (what the plan
    # provides for), not with whatever other work on the machine left there.
    warm_s = warm_page_cache(target / "trips.sqlite")
    curve = http_curve({"data": str(target)}, workers, http_calls(run.opts.http_searches, min(WORKLOAD_SAMPLE, min(run.opts.sizes))), run.opts, run.say)
    trips = _trips_of(run, label)
    # the segment the workers mapped (the data step's figure predates any segment a worker wrote at its start)
    return {"kind": "http", "backend": "embedded", "label": label, "trips": trips, "page_cache_warmed_s": round(warm_s, 3), "segment_bytes": dir_sizes(target)["segment_bytes"], **curve}


def _trips_of(run: _Run, label: str) -> int | None:
    probe = run.results.get(f"probe:embedded:{label}")
    if probe:
        return int(probe["trips"])
    return int(label) if label.isdigit() else None


def _es_client(run: _Run) -> Any:
    from elasticsearch import Elasticsearch

    assert run.es_url is not None
    return Elasticsearch(run.es_url.split(","), request_timeout=60)


def _step_es_cluster(run: _Run) -> dict[str, Any]:
    opts = run.opts
    if opts.elasticsearch:
        run.es_url = opts.elasticsearch
        run.es_alias = f"capacity-{uuid.uuid4().hex[:10]}"  # never touch an index of the operator's
    else:
        run.say(f"    starting {ES_CLUSTER} with scripts/elasticsearch (the first start downloads Elasticsearch)")
        proc = subprocess.run([*ES_TOOL, "start", "--name", ES_CLUSTER, "--timeout", "300"], capture_output=True, text=True, timeout=900, start_new_session=True)
        if proc.returncode != 0:
            raise CapacityError(f"scripts/elasticsearch start failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
        run.es_url = ",".join(json.loads(proc.stdout)["urls"])
        run.es_alias = API_INDEX
        run.es_started = True
        _drop_alias(run, API_INDEX)
    with _es_client(run) as es:
        nodes = es.nodes.info(filter_path="nodes.*.version,nodes.*.os.allocated_processors,nodes.*.jvm.mem.heap_max_in_bytes")["nodes"]
    info = list(nodes.values())
    return {
        "kind": "es_cluster",
        "url": run.es_url,
        "started_here": run.es_started,
        "alias": run.es_alias,
        "nodes": len(info),
        "version": ", ".join(sorted({n["version"] for n in info})),
        "allocated_processors": [n.get("os", {}).get("allocated_processors") for n in info],
        "heap_max_bytes": [n.get("jvm", {}).get("mem", {}).get("heap_max_in_bytes") for n in info],
    }


def _drop_alias(run: _Run, alias: str) -> None:
    with _es_client(run) as es:
        es.options(ignore_status=404).indices.delete(index=f"{alias}-*")
        es.options(ignore_status=404).indices.delete_index_template(name=f"tripsearch-{alias}")


def _es_cpu_seconds(run: _Run) -> float | None:
    with _es_client(run) as es:
        stats = es.nodes.stats(metric="process", filter_path="nodes.*.process.cpu.total_in_millis")
    values = [n["process"]["cpu"]["total_in_millis"] for n in stats.get("nodes", {}).values()]
    return sum(values) / 1000.0 if values else None


def _step_es_load(run: _Run) -> dict[str, Any]:
    from ..index.elastic import ElasticBackend

    opts = run.opts
    trips = list(fixture_trips(opts.load_trips))
    engine = ElasticBackend(run.es_url or "", index=run.es_alias or API_INDEX, number_of_shards=1, number_of_replicas=0, request_timeout=120.0)
    try:
        cpu0 = _es_cpu_seconds(run)
        t0 = time.perf_counter()
        last = t0
        for i in range(0, len(trips), 2000):
            report = engine.upsert(trips[i : i + 2000])
            if report.rejected:
                raise CapacityError(f"Elasticsearch rejected {report.rejected} fixture trips")
            if time.perf_counter() - last > 10:
                run.say(f"    Elasticsearch bulk load: {i + 2000:,} / {len(trips):,}")
                last = time.perf_counter()
        engine.refresh()
        load_s = time.perf_counter() - t0
        cpu1 = _es_cpu_seconds(run)
    finally:
        engine.close()
    with _es_client(run) as es:
        es.indices.flush(index=run.es_alias)
        stats = es.indices.stats(index=run.es_alias, metric="store,docs")["_all"]["primaries"]
        live = es.count(index=run.es_alias)["count"]
    store = int(stats["store"]["size_in_bytes"])
    out = {
        "kind": "es_load",
        "trips": len(trips),
        "load_s": round(load_s, 3),
        "bulk_trips_per_s": round(len(trips) / load_s, 1),
        "es_cpu_s": round(cpu1 - cpu0, 3) if cpu0 is not None and cpu1 is not None else None,
        "store_bytes": store,
        "documents": int(live),
        "bytes_per_trip": round(store / max(1, len(trips)), 1),
        "note": "primary store after bulk load, refresh and flush; segments not force-merged",
    }
    run.say(f"    {out['bulk_trips_per_s']:,.0f} trips/s; {store / 2**20:,.0f} MiB primary store, {out['bytes_per_trip']:,.0f} bytes/trip")
    return out


def _step_probe_es_size(run: _Run) -> dict[str, Any]:
    # measured again, next to the Elasticsearch probe, so that their ratio compares the same moment of the machine
    return _step_probe(run, str(run.opts.load_trips))


def _step_es_probe(run: _Run) -> dict[str, Any]:
    out = run_probe(run.es_url or "", _probe_queries(run.opts), {"index": run.es_alias, "request_timeout": 60.0}, warmup=min(20, run.opts.queries), es_counters=True)
    lat = out["latency"]
    run.say(f"    facets p50 {lat['facets']['p50_ms']} ms p99 {lat['facets']['p99_ms']} ms; no facets p50 {lat['no_facets']['p50_ms']} ms p99 {lat['no_facets']['p99_ms']} ms")
    return {"kind": "probe", "backend": "elasticsearch", "label": "es", **out}


def _step_es_http(run: _Run, workers: int) -> dict[str, Any]:
    if run.es_alias != API_INDEX:
        return {"kind": "http", "backend": "elasticsearch", "skipped": f"the API serves the alias {API_INDEX!r} only, and this run does not write to an operator's cluster; use --start-elasticsearch for HTTP figures"}
    curve = http_curve({"backend": run.es_url}, workers, http_calls(run.opts.http_searches, min(WORKLOAD_SAMPLE, min(run.opts.sizes))), run.opts, run.say, es_cpu=lambda: _es_cpu_seconds(run))
    return {"kind": "http", "backend": "elasticsearch", "label": str(run.opts.load_trips), "trips": run.opts.load_trips, **curve}


def _es_cleanup(run: _Run) -> None:
    if run.es_url is None:
        return
    if run.es_started:
        if not run.opts.keep_elasticsearch:
            subprocess.run([*ES_TOOL, "stop", "--name", ES_CLUSTER, "--clean"], capture_output=True, timeout=180, start_new_session=True)
    elif run.es_alias and run.es_alias != API_INDEX:
        try:
            _drop_alias(run, run.es_alias)
        except Exception as exc:  # the figures are saved; say what is left behind
            print(f"capacity: could not remove the index {run.es_alias}-* from {run.es_url}: {exc}", file=sys.stderr)


def _document(run: _Run, machine: dict[str, Any], steps: Sequence[tuple[str, str, Any]], complete: bool) -> dict[str, Any]:
    opts = asdict(run.opts)
    opts = {k: (str(v) if isinstance(v, Path) else [str(p) for p in v] if k == "data_dirs" else v) for k, v in opts.items()}
    return {
        "schema": SCHEMA,
        "complete": complete,
        "machine": machine,
        "options": opts,
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "steps_missing": [sid for sid, _, _ in steps if sid not in run.results],
        "steps_failed": [sid for sid, r in run.results.items() if "error" in r],
        "results": run.results,
    }


def _resume(run: _Run, steps: Sequence[tuple[str, str, Any]]) -> None:
    """Keep the finished steps of an earlier run saved at ``out`` (or its partial file) that this run would measure."""
    opts = run.opts
    partial = opts.out.with_name(opts.out.stem + ".partial.json")
    source = partial if partial.exists() else opts.out
    if not source.exists():
        run.say(f"--resume: nothing saved at {opts.out} yet; measuring everything")
        return
    doc = orjson.loads(source.read_bytes())
    if doc.get("schema") != SCHEMA:
        raise CapacityError(f"--resume: {source} has schema {doc.get('schema')!r}, not {SCHEMA}")
    wanted = {sid for sid, _, _ in steps}
    redo = tuple(opts.redo)
    kept = {sid: r for sid, r in doc.get("results", {}).items() if sid in wanted and "error" not in r and not sid.startswith(redo or ("\0",))}
    es_steps = {sid for sid in wanted if sid.startswith(("es:", "probe:elasticsearch", "http:elasticsearch", "probe:embedded:es-size"))}
    if not es_steps <= set(kept):
        # the cluster of the earlier run is gone (stopped, or its index removed): measure Elasticsearch again as a whole
        kept = {sid: r for sid, r in kept.items() if sid not in es_steps}
    for sid, r in kept.items():
        if r.get("kind") == "data" and r.get("trips"):
            run.data[int(r["trips"])] = Path(r["path"])
    run.results.update(kept)
    run.say(f"--resume: keeping {len(kept)} finished steps from {source} (measured {doc.get('machine', {}).get('date', '?')})")


def _write(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n")
    os.replace(tmp, path)


def measure(opts: MeasureOptions) -> int:
    """Run every step, saving as it goes; return 0, or 130 when interrupted (after saving or discarding, as it says)."""
    run = _Run(opts)
    machine = machine_info()
    steps = _steps(run)
    if opts.resume:
        _resume(run, steps)
    partial = opts.out.with_name(opts.out.stem + ".partial.json")
    run.say(f"measuring on {machine['cpu_model']}, {machine['cores']} cores, {(machine['memory_bytes'] or 0) / 2**30:.1f} GiB; load average {machine['load_average_at_start']}; {len(steps)} steps")
    current = ""
    failed: list[str] = []

    def interrupted(signum: int, frame: Any) -> None:
        # a kill stops servers and saves like Ctrl-C, rather than orphaning them
        print(f"capacity measure: interrupted; stopping what runs, then {'saving' if opts.save_partial else 'discarding'} the finished steps", file=sys.stderr, flush=True)
        raise KeyboardInterrupt

    previous_term = signal.signal(signal.SIGTERM, interrupted)
    previous_int = signal.signal(signal.SIGINT, interrupted)
    try:
        for number, (sid, title, fn) in enumerate(steps, 1):
            current = title
            if sid in run.results:
                run.say(f"[{number}/{len(steps)}] {title}: kept from {opts.out} (--resume)")
                continue
            run.say(f"[{number}/{len(steps)}] {title}")
            t0 = time.perf_counter()
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001
                # one failed step (a server that did not start, no Elasticsearch, a broken checkout) must not cost the others
                run.say(f"    failed: {exc}")
                failed.append(sid)
                result = {"error": f"{type(exc).__name__}: {exc}"}
            result["step_s"] = round(time.perf_counter() - t0, 3)
            result["at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            result["load_average"] = [round(x, 2) for x in os.getloadavg()]
            run.results[sid] = result
            _write(partial, _document(run, machine, steps, complete=False))
    except KeyboardInterrupt:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not tear the file
        try:
            _es_cleanup(run)
            if opts.save_partial and run.results:
                _write(opts.out, _document(run, machine, steps, complete=False))
                partial.unlink(missing_ok=True)
                print(f"capacity measure: interrupted during {current!r}: saved the {len(run.results)} finished steps of {len(steps)} to {opts.out}, "
                      f"marked incomplete (plan and report use what is there and say what is missing)", file=sys.stderr)
            else:
                partial.unlink(missing_ok=True)
                print(f"capacity measure: interrupted during {current!r}: discarded {len(run.results)} finished steps; {opts.out} is unchanged", file=sys.stderr)
        finally:
            signal.signal(signal.SIGINT, previous)
        return 130
    except BaseException:
        _es_cleanup(run)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
    _es_cleanup(run)
    _write(opts.out, _document(run, machine, steps, complete=not failed))
    partial.unlink(missing_ok=True)
    if failed:
        run.say(f"saved {opts.out}, incomplete: {len(failed)} step(s) failed ({', '.join(failed)}); the rest is usable")
        return 1
    run.say(f"saved {opts.out}")
    return 0
