"""``tripsearch capacity plan``: turn saved measurements and a target into machines, workers and memory.

Every number of a plan is a :class:`Figure` whose ``source`` says where it
comes from: a measurement of the saved run, or a stated rule (Elastic's
shard-size guidance, one worker per core, the headroom). A figure that goes
beyond what was measured (a bigger index, more cores) is marked as a
projection, with the model it uses.

The model, embedded backend:

- per-worker searches/s at the p99 target: the open-loop HTTP curve of the
  most workers measured, at the smallest measured index at least as big as
  the target (a smaller index is faster), read as
  :func:`~tripsearch.capacity.data.rate_at_p99` says. Above the biggest
  measured index, the curve is *time-scaled* (projection): a server whose
  every search takes k times the work does k times fewer searches/s at k
  times the latency, with k from the in-process CPU per search (power law
  through the two biggest sizes) plus the HTTP work per search measured at
  the biggest size;
- every worker applies every write (it follows the store's change feed), so
  a worker keeps ``1 - writes/s ÷ measured apply rate`` of its time for
  searches; one SQLite writer at a time takes the writes themselves;
- workers = ceil(searches/s × (1 + headroom) ÷ per-worker rate);
  one worker per core (a search is CPU work on the worker's event loop);
  machines = ceil(workers ÷ cores per machine);
- memory per machine (:mod:`.memory`) = trips × segment bytes per trip (the
  workers map one segment file, held once in the page cache) + workers ×
  (private base + delta bound); the delta (trips written since the last
  merge, in every worker's memory) is bounded by
  ``max(MERGE_MIN_ROWS, MERGE_RATIO × trips)`` rows and counts only with
  writes; the segment and the private base from PSS
  (``/proc/PID/smaps_rollup``) of the shared-index benchmark or of the
  capacity run's workers; trips.sqlite's page cache is recommended on top.
  :func:`make_fit` answers the inverse: the trips that fit in a machine's
  memory with N workers.

The model, Elasticsearch, from the costs per search of saved hot-corridor
runs (:mod:`.corridor`; the busiest corridor given, the dearest kind of
search) and the store bytes per trip of ``capacity measure``:

- primaries = data ÷ 50 GB, at least 1 (Elastic's guidance: 10-50 GB and
  under 200 million documents per shard; fewer, bigger shards, since every
  search reads one copy of every shard);
- node CPU per search = ``took`` per shard × searches per ``_msearch`` (2:
  the candidates and the band run side by side) × primaries: ``took`` is
  the wall time of a request on the node, and each of its searches is one
  shard request per primary on one search thread, which takes a core while
  it runs (CPU work on cached data): an upper bound of the CPU time;
  ``took`` at the target's trips per shard is read off the measured trips
  per shard (held beyond them: projection);
- data nodes = max(2, node cores ÷ cores per node, fetched bytes/s ÷ the
  network of a node); replicas = max(1, nodes ÷ primaries - 1), since a
  search reads one copy of each shard and only replicas let more nodes
  serve the same shards;
- API cores = searches/s × (1 + headroom) × the measured CPU per search of
  the process that decides the band and builds the page; one worker per
  core; API machines from those cores and from the bytes they receive.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from .corridor import SEARCHES_PER_MSEARCH, CorridorRun, at_size, busiest
from .data import Curve, Measurements, rate_at_p99
from .errors import CapacityError
from .memory import MemoryModel, memory_model

__all__ = ["Targets", "FitTargets", "Figure", "Plan", "make_plan", "make_fit", "render_plan", "format_bytes", "GB", "SHARD_MAX_BYTES", "SHARD_MIN_BYTES", "SHARD_MAX_DOCS"]

GB = 1_000_000_000
GIB = 2**30
SHARD_MIN_BYTES = 10 * GB  # Elastic: "aim for shards of between 10GB and 50GB"
SHARD_MAX_BYTES = 50 * GB
SHARD_MAX_DOCS = 200_000_000  # Elastic: "aim for fewer than 200M documents per shard"
SHARDS_PER_HEAP_GB = 20  # Elastic: at most 20 shards per GB of heap on a node
HEAP_MAX_BYTES = 31 * GIB  # compressed object pointers
DISK_LOW_WATERMARK = 0.85  # Elasticsearch cluster.routing.allocation.disk.watermark.low default


@dataclass(frozen=True)
class Targets:
    trips: int
    searches_per_s: float
    writes_per_s: float
    p99_ms: float
    backend: str = "embedded"
    headroom: float = 0.3
    cores_per_machine: int | None = None  # None: the measured machine's
    nic_gbit: float = 10.0  # network per machine, Gbit/s (Elasticsearch: what a search fetches crosses it)
    workers_per_machine: int | None = None  # None: one per core

    def __post_init__(self) -> None:
        if self.trips < 1 or self.searches_per_s <= 0 or self.writes_per_s < 0 or self.p99_ms <= 0:
            raise CapacityError("--trips and --searches-per-s must be above 0, --writes-per-s at least 0, --p99-ms above 0")
        if not 0 <= self.headroom < 10:
            raise CapacityError("--headroom is a fraction, e.g. 0.3 for 30%")
        if self.backend not in ("embedded", "elasticsearch"):
            raise CapacityError("--backend is embedded or elasticsearch")
        if self.cores_per_machine is not None and self.cores_per_machine < 1:
            raise CapacityError("--cores-per-machine must be at least 1")
        if self.nic_gbit <= 0:
            raise CapacityError("--nic-gbit must be above 0")
        if self.workers_per_machine is not None and self.workers_per_machine < 1:
            raise CapacityError("--workers must be at least 1 (API workers per machine)")


@dataclass(frozen=True)
class FitTargets:
    """The inverse question: how many trips fit in ``memory_bytes`` with ``workers`` API workers on one machine."""

    memory_bytes: int
    workers: int
    writes_per_s: float = 0.0
    headroom: float = 0.3

    def __post_init__(self) -> None:
        if self.memory_bytes <= 0:
            raise CapacityError("--memory must be above 0")
        if self.workers < 1:
            raise CapacityError("--workers must be at least 1 (API workers on the machine)")
        if self.writes_per_s < 0:
            raise CapacityError("--writes-per-s must be at least 0")
        if not 0 <= self.headroom < 10:
            raise CapacityError("--headroom is a fraction, e.g. 0.3 for 30%")


@dataclass(frozen=True)
class Figure:
    """One number of a plan and where it comes from."""

    section: str
    name: str
    value: float | int | str | None
    unit: str
    source: str
    projection: bool = False

    def text(self) -> str:
        v = self.value
        if v is None:
            shown = "n/a"
        elif isinstance(v, str):
            shown = v
        elif self.unit == "bytes":
            shown = format_bytes(float(v))
        elif isinstance(v, int) or float(v).is_integer():
            shown = f"{int(v):,}"
        else:
            shown = f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
        if self.unit and self.unit != "bytes":
            shown += f" {self.unit}"
        return shown


@dataclass
class Plan:
    targets: Targets | FitTargets
    figures: list[Figure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    feasible: bool = True

    def add(self, section: str, name: str, value: Any, unit: str, source: str, projection: bool = False) -> Any:
        self.figures.append(Figure(section, name, value, unit, source, projection))
        return value

    def get(self, name: str) -> Any:
        for f in self.figures:
            if f.name == name:
                return f.value
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"targets": asdict(self.targets), "feasible": self.feasible, "machine": self.machine, "figures": [asdict(f) for f in self.figures], "warnings": self.warnings}


def format_bytes(n: float) -> str:
    """Return a byte count in binary units.

    >>> format_bytes(1536), format_bytes(3 * 2**30)
    ('1.5 KiB', '3.0 GiB')
    """
    for unit, size in (("TiB", 2**40), ("GiB", GIB), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} B"


def _machine_words(m: dict[str, Any]) -> str:
    mem = m.get("memory_bytes")
    return f"{m.get('cpu_model', 'unknown CPU')}, {m.get('usable_cores') or m.get('cores')} cores, {format_bytes(mem) if mem else '? memory'}"


def make_plan(meas: Measurements, targets: Targets, corridor: Sequence[CorridorRun] = (), memory: MemoryModel | None = None) -> Plan:
    """Return the plan for ``targets`` from the measurements (and, for Elasticsearch, the hot-corridor runs); see the module docstring for the model."""
    plan = Plan(targets, machine=meas.machine)
    cores_measured = int(meas.machine.get("usable_cores") or meas.machine.get("cores") or 1)
    cores = targets.cores_per_machine or cores_measured
    if not meas.complete:
        plan.warnings.append(f"the measurements are incomplete (missing or failed: {', '.join(meas.gaps) or 'unknown'}); figures that need them are n/a")
    load = meas.machine.get("load_average_at_start") or []
    if load and load[0] > 0.5 * cores_measured:
        plan.warnings.append(f"the machine was busy when measured (load average {load[0]} on {cores_measured} cores): the figures are pessimistic and noisy")
    if targets.backend == "embedded":
        _embedded(meas, targets, plan, cores, cores_measured, memory)
    else:
        _elasticsearch(meas, targets, plan, cores, cores_measured, corridor)
    return plan


# -- embedded -----------------------------------------------------------------


def _pick_curves(curves: list[Curve], trips: int) -> tuple[list[Curve], bool]:
    """Return the curves of the smallest measured size >= trips (else the biggest), and whether that is beyond them."""
    sizes = sorted({c.trips for c in curves})
    above = [s for s in sizes if s >= trips]
    size = above[0] if above else sizes[-1]
    return [c for c in curves if c.trips == size], not above


def _time_scale(meas: Measurements, curve: Curve, trips: int, backend: str = "embedded") -> tuple[float, str, bool]:
    """Return k (how much more work a search is at ``trips`` than on ``curve``) and how it was computed.

    Work is CPU time, not wall time: other processes on a shared machine
    stretch wall times, not the CPU a search needs.
    """
    if trips <= curve.trips:
        return 1.0, "", False
    cpu = meas.inprocess_latency("embedded", facets=True, stat="cpu_ms_per_search")
    if cpu is None:
        raise CapacityError("no in-process measurements: cannot project beyond the measured index size")
    t_m, _ = cpu(curve.trips)
    t_n, _ = cpu(trips)
    worker = curve.data.get("worker_cpu_ms_per_search")
    overhead = max(0.0, float(worker) - t_m) if worker else 0.0
    k = (t_n + overhead) / (t_m + overhead)
    how = (f"time-scaled by k = {k:.2f}: in-process CPU per search (all facets) {t_m:.2f} ms at {curve.trips:,} trips -> {t_n:.2f} ms at {trips:,} "
           f"(power law through the measured sizes, exponent held within 0..1), plus {overhead:.2f} ms per search of HTTP and autocomplete work "
           f"(worker CPU per search {worker or 0:.2f} ms at {curve.trips:,} trips, minus the in-process figure; at least 0)")
    return k, how, True


def _search_capacity(meas: Measurements, targets: Targets, plan: Plan, backend: str) -> tuple[float | None, Curve | None, bool]:
    """Add the per-worker searches/s at the p99 target; return it, the curve read, and whether it is a projection."""
    curves = meas.curves(backend)
    if not curves:
        plan.add("search", "searches/s per worker at the p99 target", None, "", f"no HTTP measurement of the {backend} backend")
        plan.feasible = False
        return None, None, False
    chosen, beyond = _pick_curves(curves, targets.trips)
    curve = max(chosen, key=lambda c: c.workers)
    k, how, projected = _time_scale(meas, curve, targets.trips, backend)
    rate, read = rate_at_p99(curve.points, targets.p99_ms / k)
    where = f"open-loop HTTP load, {curve.trips:,} trips, {curve.workers} worker(s) on the measured {_machine_words(meas.machine)}"
    if rate is None:
        plan.add("search", "searches/s per worker at the p99 target", None, "", f"{where}: {read}" + (f"; {how}" if projected else ""), projected)
        lowest = min((p["p99_ms"] for p in curve.points if p.get("p99_ms") is not None), default=None)
        plan.warnings.append(
            f"p99 <= {targets.p99_ms:g} ms is not reached on this hardware at {targets.trips:,} trips"
            + (f" (lowest measured p99: {lowest * k:.1f} ms)" if lowest is not None else "")
            + ": more machines do not lower the latency of one search; lower the target, shrink the index, or use faster cores"
        )
        plan.feasible = False
        return None, curve, projected
    per_worker = rate / k / curve.workers
    others = curve.data.get("saturation", {}).get("other_busy_cores")
    if others is not None and others > 0.25:
        plan.warnings.append(f"while the HTTP curve this plan reads was measured, other processes kept {others} of the machine's cores busy: the per-worker rate is pessimistic; measure on a quiet machine for a tighter plan")
    source = f"{where}: p99 <= {targets.p99_ms / k:.1f} ms up to {rate:,.0f} searches/s ({read}), ÷ {curve.workers} worker(s)"
    if projected:
        source += f"; {how}"
    plan.add("search", "searches/s per worker at the p99 target", round(per_worker, 1), "searches/s", source, projected)
    sat1 = [c for c in curves if c.trips == curve.trips and c.workers == 1]
    if curve.workers > 1 and sat1:
        eff = curve.saturation / (curve.workers * sat1[0].saturation)
        plan.add("search", f"scaling from 1 to {curve.workers} workers", round(eff, 2), "× linear",
                 f"saturation searches/s with {curve.workers} workers ({curve.saturation:,.0f}) ÷ ({curve.workers} × 1 worker: {sat1[0].saturation:,.0f}); "
                 f"the load generator ran on the same machine ({curve.data['saturation'].get('client_cpu_share', 0):.0%} of a core), so this is a lower bound")
    return per_worker, curve, projected


def _embedded(meas: Measurements, targets: Targets, plan: Plan, cores: int, cores_measured: int, memory: MemoryModel | None) -> None:
    t, h = targets, targets.headroom
    per_worker, curve, projected = _search_capacity(meas, t, plan, "embedded")
    writes = meas.one("writes", "embedded")
    share = 1.0
    if writes is not None:
        apply_rate = float(writes["follower_apply_trips_per_s"])
        cost = t.writes_per_s / apply_rate
        share = plan.add("writes", "share of each worker left for searches", round(1.0 - cost, 4), "",
                         f"1 - {t.writes_per_s:g} writes/s ÷ {apply_rate:,.0f} trips/s a worker applies from the change feed (measured, {writes['bulk_trips']:,} trips); every worker applies every write")
        if share <= 0:
            plan.warnings.append("every worker would spend all its time applying writes: the embedded backend cannot take this write rate")
            plan.feasible = False
        single = float(writes["single_writes_per_s"])
        bulk = float(writes["bulk_trips_per_s"])
        need = t.writes_per_s * (1 + h)
        plan.add("writes", "one-trip write transactions/s (one writer at a time)", single, "writes/s", f"measured: {writes['single_writes']} upserts of one trip each (an API PUT), SQLite WAL, synchronous=FULL")
        plan.add("writes", "bulk load trips/s (one writer at a time)", bulk, "trips/s", f"measured: {writes['bulk_trips']:,} trips in batches of {writes['bulk_batch']:,}")
        if need <= single:
            mode = f"fits: one trip per request uses {t.writes_per_s / single:.0%} of the single writer"
        elif need <= bulk:
            mode = f"batch the writes (POST /v1/trips/_bulk): {need:,.0f} writes/s with headroom exceed {single:,.0f} one-trip transactions/s but fit in {bulk:,.0f} bulk trips/s"
        else:
            mode = f"does not fit: {need:,.0f} writes/s with headroom exceed even bulk loading ({bulk:,.0f} trips/s); SQLite takes one writer at a time: use Elasticsearch"
            plan.feasible = False
            plan.warnings.append("the write rate exceeds what one SQLite writer takes: use --backend elasticsearch")
        plan.add("writes", "write path", mode, "", f"{t.writes_per_s:g} writes/s × {1 + h:.2f} headroom against the two measured write rates")
    else:
        plan.warnings.append("no write measurements: writes are not accounted for")

    if per_worker is not None and share > 0:
        effective = per_worker * share
        workers = math.ceil(t.searches_per_s * (1 + h) / effective)
        plan.add("deployment", "API workers", workers, "",
                 f"ceil({t.searches_per_s:,.0f} searches/s × {1 + h:.2f} headroom ÷ ({per_worker:,.1f} searches/s per worker × {share:.3f} left after writes))", projected)
    else:
        workers = None
        plan.add("deployment", "API workers", None, "", "needs the per-worker rate above")
    per_machine = t.workers_per_machine or cores
    beyond_cores = per_machine > cores_measured
    if t.workers_per_machine:
        words = f"given (--workers {per_machine}); {cores} cores per machine" + (": more workers than cores share them, each gets less CPU" if per_machine > cores else "")
    else:
        words = (f"rule: one worker per core (searches are CPU work on the worker's event loop); {cores} cores per machine"
                 + (" (the measured machine)" if cores == cores_measured else f" (given; measured machine: {cores_measured} cores)"))
    plan.add("deployment", "workers per machine", per_machine, "",
             words + (f"; projection: per-worker rate assumed to hold up to {per_machine} workers, measured up to {curve.workers if curve else '?'}" if beyond_cores else ""),
             beyond_cores)
    machines = math.ceil(workers / per_machine) if workers else None
    plan.add("deployment", "machines", machines, "", f"ceil({workers} workers ÷ {per_machine} per machine)" if workers else "needs the workers above", projected or beyond_cores)
    if machines and machines > 1:
        plan.warnings.append(
            f"{machines} machines: the embedded backend's data directory belongs to one machine (SQLite on a local disk); "
            "each machine needs its own copy fed with every write, or use --backend elasticsearch (docs/api.md, Scaling)"
        )

    _memory(meas, t, plan, memory, min(per_machine, workers) if workers else per_machine)

    probes = [p for p in meas.probes() if p.get("open_s")]
    if probes:
        from .data import linear_fit

        a, b = linear_fit([p["trips"] for p in probes], [p["open_s"] for p in probes])
        restart = max(a + b * t.trips, min(p["open_s"] for p in probes))
        sizes = ", ".join(f"{p['trips']:,}" for p in probes)
        plan.add("operations", "restart of a worker (index load)", round(restart, 1), "s",
                 f"open time of a fresh process (snapshot + catch-up) at {sizes} trips, least-squares line", t.trips > probes[-1]["trips"])
    plan.add("operations", "headroom", f"{h:.0%}", "", "given (--headroom): capacity above the target for peaks, a failed machine and noisy neighbours")


def _model_or_say(meas: Measurements, plan: Plan, model: MemoryModel | None) -> MemoryModel | None:
    if model is not None:
        return model
    try:
        return memory_model(meas)
    except CapacityError as exc:
        plan.add("memory", "memory per machine", None, "", str(exc))
        plan.warnings.append(f"memory is not planned: {exc}")
        return None


def _memory_figures(plan: Plan, model: MemoryModel, planned: float, workers: int, writes: bool, planned_how: str) -> float:
    """Add the figures of the shared-segment model for ``planned`` trips and ``workers`` workers on one machine; return the memory per machine."""
    beyond = planned > model.measured_trips
    s = model.segment_bytes_per_trip
    plan.add("memory", "segment bytes per trip", round(s, 1), "bytes", model.segment_source)
    shared = planned * s
    plan.add("memory", "segment in the page cache (shared)", round(shared), "bytes",
             f"{planned_how} × {s:,.0f} bytes/trip; the workers map one segment file read-only, so the machine holds it once, however many workers", beyond)
    plan.add("memory", "private base per worker", round(model.worker_private_bytes), "bytes", model.private_source)
    rows = model.delta_rows(planned)
    if writes:
        delta = model.delta_bytes(planned, True)
        plan.add("memory", "delta bound per worker", round(delta), "bytes",
                 f"max({model.merge_min_rows:,} rows, {model.merge_ratio:g} × {planned:,.0f} trips) = {rows:,} rows before a merge × {model.delta_bytes_per_trip:,.0f} bytes/trip "
                 f"({model.delta_source}); every worker applies every write, so each holds the delta", beyond)
    else:
        d = model.delta_bytes_per_trip
        plan.add("memory", "delta bound per worker", 0, "bytes",
                 "no writes (--writes-per-s 0): the delta stays empty"
                 + (f"; with any writes it grows to {rows:,} rows × {d:,.0f} bytes/trip = {format_bytes(rows * d)} per worker before a merge" if d else ""))
    private = model.worker_bytes(planned, writes)
    plan.add("memory", "memory per worker (private)", round(private), "bytes", "private base + delta bound", beyond)
    plan.add("memory", "RSS per worker (top, ps)", round(shared + private), "bytes",
             "the segment + the private memory: RSS counts the shared segment in every worker, so RSS of the workers does not add up; PSS does", beyond)
    total = model.machine_bytes(planned, workers, writes)
    plan.add("memory", "memory per machine", round(total), "bytes",
             f"{format_bytes(shared)} segment once + {workers} worker(s) × {format_bytes(private)} private", beyond)
    return total


def _memory(meas: Measurements, t: Targets, plan: Plan, model: MemoryModel | None, workers: int) -> None:
    model = _model_or_say(meas, plan, model)
    if model is None:
        return
    h = t.headroom
    total = _memory_figures(plan, model, t.trips * (1 + h), workers, t.writes_per_s > 0, f"{t.trips:,} trips × {1 + h:.2f} headroom")
    dirs = meas.data_dirs()
    if dirs:
        big = dirs[-1]
        sqlite_per_trip = big["sqlite_bytes"] / big["trips"]
        plan.add("memory", "page cache for trips.sqlite (shared, on top)", round(t.trips * sqlite_per_trip), "bytes",
                 f"{t.trips:,} trips × {sqlite_per_trip:,.0f} bytes/trip (trips.sqlite at {big['trips']:,} trips); recommended, not required: a search reads only its page of trips from it")
        seg = model.segment_bytes_per_trip
        plan.add("memory", "disk per machine", round(t.trips * (sqlite_per_trip + 2 * seg) * (1 + h)), "bytes",
                 f"{t.trips:,} trips × ({sqlite_per_trip:,.0f} SQLite + 2 × {seg:,.0f} segment bytes/trip: a merge writes the new segment beside the old) × {1 + h:.2f} headroom")
    machine = meas.machine.get("memory_bytes")
    if machine and total > machine:
        plan.warnings.append(f"{format_bytes(total)} per machine is more than the measured machine's {format_bytes(machine)}: fewer workers per machine (--workers), or more memory")


def make_fit(meas: Measurements | None, targets: FitTargets, model: MemoryModel) -> Plan:
    """Return how many trips fit on one machine of ``targets.memory_bytes`` with ``targets.workers`` workers, and that machine's memory figures."""
    plan = Plan(targets, machine=meas.machine if meas is not None else {})
    t, h = targets, targets.headroom
    writes = t.writes_per_s > 0
    most = model.trips_that_fit(t.memory_bytes, t.workers, writes)
    trips = math.floor(most / (1 + h))
    if writes:
        how = (f"the most trips T with T × {1 + h:.2f} headroom = P and P × {model.segment_bytes_per_trip:,.0f} + {t.workers} × "
               f"({format_bytes(model.worker_private_bytes)} + max({model.merge_min_rows:,}, {model.merge_ratio:g} × P) × {model.delta_bytes_per_trip:,.0f}) <= {format_bytes(t.memory_bytes)}")
    else:
        how = (f"the most trips T with T × {1 + h:.2f} headroom = P and P × {model.segment_bytes_per_trip:,.0f} + {t.workers} × {format_bytes(model.worker_private_bytes)} "
               f"<= {format_bytes(t.memory_bytes)} (no writes: no delta)")
    plan.add("fit", "trips that fit", trips, "trips", how, most > model.measured_trips)
    if trips == 0:
        plan.feasible = False
        plan.warnings.append(f"{t.workers} worker(s) need {format_bytes(t.workers * model.worker_bytes(0, writes))} of private memory before any trip: more than --memory {format_bytes(t.memory_bytes)}")
        return plan
    _memory_figures(plan, model, trips * (1 + h), t.workers, writes, f"{trips:,} trips × {1 + h:.2f} headroom")
    if most > model.measured_trips:
        plan.warnings.append(f"the private memory was measured at {model.measured_trips:,} trips and is held beyond them; the segment and the delta are in proportion to trips (measured per trip)")
    return plan


# -- Elasticsearch ------------------------------------------------------------


def _elasticsearch(meas: Measurements, targets: Targets, plan: Plan, cores: int, cores_measured: int, corridor: Sequence[CorridorRun]) -> None:
    t, h = targets, targets.headroom
    rate = t.searches_per_s * (1 + h)
    load = meas.one("es_load")
    cluster = meas.one("es_cluster")
    if load is None:
        plan.add("elasticsearch", "bytes per trip in Elasticsearch", None, "", "no Elasticsearch measurements: run `tripsearch capacity measure --start-elasticsearch`")
        plan.feasible = False
        return
    per_trip = float(load["bytes_per_trip"])
    plan.add("elasticsearch", "bytes per trip in Elasticsearch", per_trip, "bytes",
             f"measured: _stats primary store {format_bytes(load['store_bytes'])} ÷ {load['trips']:,} trips ({load.get('note', '')}; {meas.path or 'measurements'}, {str(load.get('at', '?'))[:16]})")
    data = t.trips * per_trip
    plan.add("elasticsearch", "primary data", round(data), "bytes", f"{t.trips:,} trips × {per_trip:,.0f} bytes")
    primaries = max(1, math.ceil(data / SHARD_MAX_BYTES), math.ceil(t.trips / SHARD_MAX_DOCS))
    rule = "rule (Elastic's shard sizing guidance): 10-50 GB and fewer than 200M documents per shard; fewer, bigger shards, since every search reads every shard"
    if data < SHARD_MIN_BYTES:
        rule += f"; {format_bytes(data)} is below 10 GB, so one shard"
    plan.add("elasticsearch", "primary shards", primaries, "", f"max(1, ceil({format_bytes(data)} ÷ 50 GB), ceil({t.trips:,} ÷ 200M)); {rule}")

    runs = busiest(corridor)
    if not runs:
        plan.add("elasticsearch", "node CPU per search", None, "", "no hot-corridor measurements: run `python -m benchmarks.hot_corridor --json PATH` and give --es-measurements PATH")
        plan.warnings.append("no Elasticsearch cost per search (hot-corridor runs): data nodes, replicas and API cores cannot be sized")
        plan.feasible = False
        return
    top = runs[-1]
    plan.add("elasticsearch", "corridor planned for", f"{top.per_day:,} trips a day each way", "",
             f"measured: the busiest corridor of the hot-corridor runs given ({'; '.join(r.where() for r in runs)}); every search is planned at the dearest of its kinds "
             "(page 1 with all facets, page 2, no facets), so any mix of searches and quieter corridors costs no more")
    if len({r.commit for r in corridor}) > 1 or top.commit[:7] not in str(meas.machine.get("git_commit") or ""):
        plan.warnings.append(f"the corridor runs (commit {', '.join(sorted({r.commit for r in corridor}))}) and the store bytes per trip ({meas.path or 'measurements'}, commit "
                             f"{str(meas.machine.get('git_commit') or '?')[:7]}) come from different commits: a mapping change since moves the bytes per trip")

    # The shards: took is the wall time of a request on the node; each search of it is one shard request per primary, on one search thread.
    per_shard = t.trips / primaries
    took, took_beyond, took_how = at_size([(r.trips_per_shard, r.took_ms.value) for r in runs], per_shard)
    plan.add("elasticsearch", "took per search, per shard", round(took, 1), "ms",
             f"measured: Elasticsearch `took` per search, the dearest kind ({top.took_ms.kind}), at {top.trips_per_shard:,.0f} trips per shard; "
             f"at {per_shard:,.0f} trips per shard: {took_how}", took_beyond)
    searches = max(r.shard_searches.value for r in runs)
    shard_ms = took * searches * primaries
    plan.add("elasticsearch", "node CPU per search", round(shard_ms, 1), "ms",
             f"rule: {took:,.1f} ms took × {searches:g} searches sent per search (measured, or {SEARCHES_PER_MSEARCH} where a run did not count them; "
             f"an _msearch runs its searches side by side, so `took` hides up to all of them) × {primaries} primaries "
             "(every search reads one copy of each): the time search threads are busy per search, counted as CPU time (a shard search on cached data is CPU work); "
             "the threads' time is between 1 and that many × took per primary, the plan takes the upper bound; not counted: serialising the fetched bytes after `took` ends", took_beyond)
    es_cores = rate * shard_ms / 1000.0
    plan.add("elasticsearch", "data node cores", round(es_cores, 2), "cores",
             f"{t.searches_per_s:,.0f} searches/s × {1 + h:.2f} headroom × {shard_ms:,.1f} ms ÷ 1000; rule: one busy search thread takes one core "
             "(the search pool has 1.5 × cores + 1 threads, so cores, not threads, bound CPU-bound shard searches)", took_beyond)
    nodes_cpu = math.ceil(es_cores / cores)
    node_cores = f"{cores} cores per node" + (" (the measured machine's)" if cores == cores_measured else f" (given; the measured machine: {cores_measured})")

    fetched, bytes_beyond, bytes_how = at_size([(r.trips, r.fetched_bytes.value) for r in runs], t.trips)
    plan.add("elasticsearch", "bytes fetched per search", round(fetched), "bytes",
             f"measured: response bytes the backend read per search, the dearest kind ({top.fetched_bytes.kind}; {top.fetched_docs.value:,.0f} documents for {top.matches:,.0f} matches) "
             f"at {top.trips:,} trips; at {t.trips:,} trips: {bytes_how}", bytes_beyond)
    gbit = rate * fetched * 8 / 1e9
    plan.add("elasticsearch", "network from the data nodes to the API", round(gbit, 2), "Gbit/s",
             f"{t.searches_per_s:,.0f} searches/s × {1 + h:.2f} headroom × {format_bytes(fetched)}", bytes_beyond)
    nodes_net = math.ceil(gbit / t.nic_gbit)

    nodes = max(2, nodes_cpu, nodes_net)
    replicas = max(1, math.ceil(nodes / primaries) - 1)
    nodes = max(nodes, replicas + 1)
    plan.add("elasticsearch", "replicas", replicas, "",
             f"max(1, ceil({nodes} nodes ÷ {primaries} primaries) - 1): at least one for availability, and enough copies that every node holds one and serves searches "
             "(a search reads one copy of each shard: replicas add search throughput, primaries do not)")
    plan.add("elasticsearch", "data nodes", nodes, "",
             f"max(2 for availability, ceil({es_cores:,.1f} cores ÷ {node_cores}) = {nodes_cpu}, ceil({gbit:,.2f} ÷ {t.nic_gbit:g} Gbit/s per node (--nic-gbit)) = {nodes_net}); "
             "search throughput taken as linear in nodes holding a copy", took_beyond or bytes_beyond)
    plan.add("elasticsearch", "shard copies", primaries * (1 + replicas), "", f"{primaries} primaries × (1 + {replicas} replicas), spread over {nodes} nodes")
    per_node = data * (1 + replicas) / nodes
    shards_per_node = math.ceil(primaries * (1 + replicas) / nodes)
    heap_measured = max([b for b in (cluster or {}).get("heap_max_bytes", []) if b] or [0])
    heap = min(HEAP_MAX_BYTES, max(GIB, heap_measured, shards_per_node / SHARDS_PER_HEAP_GB * GIB))
    plan.add("elasticsearch", "heap per node", round(heap), "bytes",
             f"rule: max(1 GiB, the {format_bytes(heap_measured)} measured node's heap, {shards_per_node} shards ÷ 20 per GB of heap (Elastic)), at most 31 GiB (compressed pointers)")
    ram = max(2 * heap, heap + per_node * (1 + h))
    plan.add("elasticsearch", "memory per node", round(ram), "bytes",
             f"rule: heap + the node's {format_bytes(per_node)} of shard copies in the filesystem cache × {1 + h:.2f} headroom, and at least twice the heap (Elastic: heap at most half the RAM)")
    plan.add("elasticsearch", "disk per node", round(per_node * (1 + h) / DISK_LOW_WATERMARK), "bytes",
             f"{format_bytes(per_node)} of shard copies × {1 + h:.2f} headroom ÷ 0.85 (the default low disk watermark)")
    es_bulk = float(load["bulk_trips_per_s"])
    plan.add("elasticsearch", "bulk load trips/s (one node, measured)", es_bulk, "trips/s",
             f"measured: {load['trips']:,} trips through the backend's _bulk, one node, one shard, no replica, on the measured machine")
    if t.writes_per_s * (1 + h) * (1 + replicas) > es_bulk * nodes:
        plan.warnings.append("the write rate with replicas exceeds the measured bulk rate times the nodes: add nodes or batch writes")

    # The API processes: they decide the uncertain band and build the page from what was fetched.
    cpu, cpu_beyond, cpu_how = at_size([(r.trips, r.api_cpu_ms.value) for r in runs], t.trips)
    plan.add("deployment", "API CPU per search", round(cpu, 2), "ms",
             f"measured: CPU of the process that searched (decoding the fetched rows, the exact rules on the band, facets and page), the dearest kind ({top.api_cpu_ms.kind}) "
             f"at {top.trips:,} trips; at {t.trips:,} trips: {cpu_how}; the HTTP layer's own CPU comes on top", cpu_beyond)
    api_cores = rate * cpu / 1000.0
    plan.add("deployment", "API cores", round(api_cores, 2), "cores", f"{t.searches_per_s:,.0f} searches/s × {1 + h:.2f} headroom × {cpu:,.2f} ms ÷ 1000", cpu_beyond)
    workers = max(1, math.ceil(api_cores))
    plan.add("deployment", "API workers", workers, "", f"rule: one worker per core (its search is CPU work on the worker's event loop); ceil({api_cores:,.1f})", cpu_beyond)
    api_cpu_machines = math.ceil(workers / cores)
    api_machines = max(api_cpu_machines, nodes_net)
    plan.add("deployment", "API machines", api_machines, "",
             f"max(ceil({workers} workers ÷ {cores} cores per machine) = {api_cpu_machines}, ceil({gbit:,.2f} ÷ {t.nic_gbit:g} Gbit/s per machine) = {nodes_net}); "
             "the workers hold no index, so any number of machines share the cluster", cpu_beyond or bytes_beyond)
    curves = meas.curves("elasticsearch")
    rss = max([r for c in curves for r in c.data.get("worker_rss_bytes", []) if r] or [0])
    if rss:
        per_machine = min(cores, workers)
        plan.add("deployment", "memory per API machine", round(per_machine * rss * (1 + h)), "bytes",
                 f"{per_machine} workers × {format_bytes(rss)} measured worker RSS over Elasticsearch (HTTP run of {meas.path or 'measurements'}) × {1 + h:.2f}")

    p99 = top.p99_ms
    plan.add("search", "p99 of one search, measured", round(p99.value, 1), "ms",
             f"measured: the dearest kind ({p99.kind}), one search at a time, at {top.trips:,} trips; under load at 1/{1 + h:.2f} of capacity queueing adds to it (not measured)",
             took_beyond)
    if p99.value > t.p99_ms:
        plan.feasible = False
        plan.warnings.append(f"one search on the busiest corridor measured already takes p99 {p99.value:,.0f} ms ({p99.kind}), above the {t.p99_ms:g} ms target: "
                             "nodes and replicas add throughput, not the speed of one search")
    if took_beyond or cpu_beyond or bytes_beyond:
        plan.warnings.append(f"the corridor runs go up to {top.trips:,} trips ({top.trips_per_shard:,.0f} per shard); figures marked [projection] hold the costs measured there "
                             "(the cells near From and To also carry trips to elsewhere, more of them in a bigger index): run the benchmark with --background near the target")
    if fetched > 1_000_000:
        plan.warnings.append(f"{format_bytes(fetched)} fetched per search: the cluster serialises and the API decodes every fetched row; "
                             "fetching only the page and the uncertain band is what shrinks every figure above (issue 17)")


def render_plan(plan: Plan) -> str:
    """Return the plan as text: each figure with the line it comes from."""
    t = plan.targets
    m = plan.machine
    if isinstance(t, FitTargets):
        head = [f"Trips that fit: one machine of {format_bytes(t.memory_bytes)} with {t.workers} API worker(s), {t.writes_per_s:,.0f} writes/s, headroom {t.headroom:.0%}, embedded backend",
                f"Memory model: the segment once per machine (page cache) + per worker its private base and delta bound; measured on: {_machine_words(m) if m else '?'}"]
        return _render(plan, head)
    lines = [
        f"Capacity plan: {t.trips:,} trips, {t.searches_per_s:,.0f} searches/s, {t.writes_per_s:,.0f} writes/s, p99 <= {t.p99_ms:g} ms, {t.backend} backend, headroom {t.headroom:.0%}",
        f"Measured on: {_machine_words(m)}; {m.get('date', '?')}, commit {m.get('git_commit') or '?'}; load average at start {', '.join(str(x) for x in m.get('load_average_at_start', []))}",
        "Absolute figures hold for machines like this one; figures marked [projection] go beyond what was measured, with the model named.",
    ]
    return _render(plan, lines)


def _render(plan: Plan, lines: list[str]) -> str:
    section = None
    width = max((len(f.name) for f in plan.figures), default=20) + 2
    for f in plan.figures:
        if f.section != section:
            section = f.section
            lines += ["", f"{section.upper()}"]
        tag = "  [projection]" if f.projection else ""
        lines.append(f"  {f.name.ljust(width, '.')} {f.text()}{tag}")
        lines.append(f"      from: {f.source}")
    if plan.warnings:
        lines += ["", "WARNINGS"] + [f"  - {w}" for w in plan.warnings]
    lines += ["", "feasible on this model: " + ("yes" if plan.feasible else "no (see the warnings)")]
    return "\n".join(lines)
