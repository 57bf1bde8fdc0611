"""The ``tripsearch capacity`` sub-commands: arguments and what each runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s.replace("_", "")) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of trip counts, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be at least 1")
    return sizes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``measure``, ``plan`` and ``report`` to the ``capacity`` parser."""
    from .corridor import DEFAULT_CORRIDOR_RUNS
    from .measure import DEFAULT_OUT
    from .memory import DEFAULT_SHARED_INDEX
    from .report import DEFAULT_DIR

    sub = parser.add_subparsers(dest="capacity_command", required=True, parser_class=type(parser))
    p = sub.add_parser("measure", help="measure this machine (latency, throughput, memory, writes) and save JSON")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to save (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and short runs (seconds): checks the pipeline, not the machine")
    p.add_argument("--sizes", type=_sizes, help="index sizes to build or reuse (default 10000,100000)")
    p.add_argument("--data-1m", type=Path, action="append", default=[], metavar="DIR", help="an existing data directory to measure as it is (e.g. 1,000,000 trips); repeatable")
    p.add_argument("--http-sizes", type=_sizes, help="sizes to load over HTTP (default: every size)")
    p.add_argument("--workers", type=_sizes, help="API worker counts (default 1,2)")
    p.add_argument("--seconds", type=float, help="seconds per load point (default 5)")
    p.add_argument("--repeats", type=int, help="runs of each load point, the best kept (default 2; other work on the machine only slows a run)")
    p.add_argument("--load-trips", type=int, help="trips for the bulk load and the Elasticsearch index (default 100000)")
    p.add_argument("--elasticsearch", metavar="URL", help="measure this cluster too (on a fresh index, removed afterwards; no HTTP figures)")
    p.add_argument("--start-elasticsearch", action="store_true", help="start a throw-away cluster with scripts/elasticsearch and measure it, HTTP included")
    p.add_argument("--keep-elasticsearch", action="store_true", help="leave the started cluster running")
    p.add_argument("--discard-on-interrupt", action="store_true", help="on Ctrl-C, discard what was measured instead of saving it marked incomplete")
    p.add_argument("--resume", action="store_true", help="keep the finished steps of the run saved at --out (e.g. after Ctrl-C) and measure the rest")
    p.add_argument("--redo", action="append", default=[], metavar="STEP", help="with --resume: measure this step id (or id prefix, e.g. http:embedded:dir0) again; repeatable")

    p = sub.add_parser("plan", help="print a deployment plan for a target, or with --memory the trips that fit on a machine, from saved measurements")
    p.add_argument("--measurements", type=Path, default=DEFAULT_OUT, help="(default: %(default)s)")
    p.add_argument("--memory-measurements", type=Path, metavar="PATH",
                   help="embedded backend: the shared-index benchmark's JSON (python -m benchmarks.shared_index DATA_DIR --json PATH), the segment bytes per trip and "
                        f"each worker's PSS; default: {DEFAULT_SHARED_INDEX} if it exists, else the PSS the capacity run recorded")
    p.add_argument("--trips", type=int, help="trips in the index (the plan); or give --memory instead")
    p.add_argument("--memory", metavar="SIZE", help="the inverse question: how many trips fit on one machine of this much memory (e.g. 24GiB, 16G, 64GB) with --workers workers")
    p.add_argument("--workers", type=int, help="API workers per machine (with --memory: required; with --trips: default one per core)")
    p.add_argument("--searches-per-s", type=float, help="peak searches per second (first pages and page-2 follows); required with --trips")
    p.add_argument("--writes-per-s", type=float, default=0.0, help="trip writes per second (above 0: each worker's in-memory delta counts, up to its merge bound)")
    p.add_argument("--p99-ms", type=float, help="99th percentile search latency target, milliseconds; required with --trips")
    p.add_argument("--backend", choices=("embedded", "elasticsearch"), default="embedded")
    p.add_argument("--headroom", type=float, default=0.3, help="capacity above the target, as a fraction (default 0.3)")
    p.add_argument("--cores-per-machine", type=int, help="plan for machines of this many cores (default: the measured machine's; more is a projection)")
    p.add_argument("--es-measurements", type=Path, action="append", metavar="PATH",
                   help="with --backend elasticsearch: a saved hot-corridor run (python -m benchmarks.hot_corridor --json PATH), its cost per search; repeatable, "
                        f"the busiest corridor is planned for (default: {', '.join(str(p) for p in DEFAULT_CORRIDOR_RUNS)})")
    p.add_argument("--nic-gbit", type=float, default=10.0, help="network per machine in Gbit/s, for the bytes a search fetches from Elasticsearch (default %(default)g)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")

    p = sub.add_parser("report", help="write a Markdown report with PNG plots")
    p.add_argument("--measurements", type=Path, default=DEFAULT_OUT, help="(default: %(default)s)")
    p.add_argument("--memory-measurements", type=Path, metavar="PATH", help=f"the shared-index benchmark's JSON for the memory model (default: {DEFAULT_SHARED_INDEX} if it exists)")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_DIR, help="(default: %(default)s)")


def _check_plan_options(args: argparse.Namespace) -> None:
    """Refuse option sets that ask two questions at once or leave one half asked, naming the options."""
    from .errors import CapacityError

    if args.memory is not None:
        if args.trips is not None:
            raise CapacityError("--memory asks how many trips fit; --trips asks what a number of trips needs: give one of them")
        if args.workers is None:
            raise CapacityError("--memory needs --workers N (API workers on the machine)")
        if args.backend != "embedded":
            raise CapacityError("--memory answers for the embedded backend (--backend elasticsearch: plan with --trips)")
        extra = [name for name, value in (("--searches-per-s", args.searches_per_s), ("--p99-ms", args.p99_ms), ("--es-measurements", args.es_measurements)) if value]
        if extra:
            raise CapacityError(f"--memory answers a memory question only; {', '.join(extra)} go with --trips")
        return
    missing = [name for name, value in (("--trips", args.trips), ("--searches-per-s", args.searches_per_s), ("--p99-ms", args.p99_ms)) if value is None]
    if missing:
        raise CapacityError(f"plan needs {', '.join(missing)} (or --memory SIZE --workers N: how many trips fit)")
    if args.es_measurements and args.backend != "elasticsearch":
        raise CapacityError("--es-measurements goes with --backend elasticsearch")
    if args.memory_measurements and args.backend != "embedded":
        raise CapacityError("--memory-measurements goes with --backend embedded")


def run(args: argparse.Namespace) -> int:
    """Run the ``capacity`` sub-command ``args`` describe; return the exit status."""
    from .errors import CapacityError

    if args.capacity_command == "measure":
        from .measure import MeasureOptions, measure

        overrides = {"out": args.out, "data_dirs": tuple(args.data_1m), "elasticsearch": args.elasticsearch,
                     "start_elasticsearch": args.start_elasticsearch, "keep_elasticsearch": args.keep_elasticsearch, "save_partial": not args.discard_on_interrupt,
                     "resume": args.resume, "redo": tuple(args.redo)}
        if args.redo and not args.resume:
            raise CapacityError("--redo goes with --resume")
        for name in ("sizes", "http_sizes", "workers", "seconds", "load_trips", "repeats"):
            if getattr(args, name) is not None:
                overrides[name] = getattr(args, name)
        if args.elasticsearch and args.start_elasticsearch:
            raise CapacityError("give --elasticsearch URL or --start-elasticsearch, not both")
        for path in args.data_1m:
            if not (path / "trips.sqlite").is_file():
                raise CapacityError(f"--data-1m {path}: not a tripsearch data directory (no trips.sqlite)")
        opts = MeasureOptions.quick_options(**overrides) if args.quick else MeasureOptions(**overrides)
        return measure(opts)
    from .data import Measurements

    if args.capacity_command == "plan":
        _check_plan_options(args)
    meas = Measurements.load(args.measurements)
    if args.capacity_command == "plan":
        import orjson

        from .corridor import DEFAULT_CORRIDOR_RUNS, load_corridor_runs
        from .memory import DEFAULT_SHARED_INDEX, load_shared_index, memory_model, parse_size
        from .plan import FitTargets, Plan, Targets, make_fit, make_plan, render_plan

        shared_path = args.memory_measurements or (DEFAULT_SHARED_INDEX if DEFAULT_SHARED_INDEX.is_file() else None)
        shared = load_shared_index(shared_path) if shared_path is not None and args.backend == "embedded" else None
        plan: Plan
        if args.memory is not None:
            fit = FitTargets(parse_size(args.memory), args.workers, args.writes_per_s, args.headroom)
            plan = make_fit(meas, fit, memory_model(meas, shared, shared_path))
        else:
            targets = Targets(args.trips, args.searches_per_s, args.writes_per_s, args.p99_ms, args.backend, args.headroom, args.cores_per_machine, args.nic_gbit, args.workers)
            corridor = load_corridor_runs(args.es_measurements or DEFAULT_CORRIDOR_RUNS) if args.backend == "elasticsearch" else []
            plan = make_plan(meas, targets, corridor, memory_model(meas, shared, shared_path) if shared is not None else None)
        if args.json:
            sys.stdout.buffer.write(orjson.dumps(plan.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
        else:
            print(render_plan(plan))
        return 0
    from .memory import DEFAULT_SHARED_INDEX, load_shared_index
    from .report import write_report

    shared_path = args.memory_measurements or (DEFAULT_SHARED_INDEX if DEFAULT_SHARED_INDEX.is_file() else None)
    path = write_report(meas, args.out_dir, load_shared_index(shared_path) if shared_path else None, shared_path)
    print(f"wrote {path} and its plots in {args.out_dir}")
    return 0
