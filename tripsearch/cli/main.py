"""The ``tripsearch`` command line.

Every sub-command has ``--help``. A wrong argument or bad input prints what
is wrong on one line and exits with status 2; no traceback is shown for
errors the user can fix.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import queue
import stat
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator, Sequence

import orjson

from ..errors import InvalidQuery, NotFound, TripSearchError

if TYPE_CHECKING:  # the CLI imports these lazily, to start fast
    from ..backend import Backend
    from ..client import TripSearchClient

__all__ = ["main", "build_parser"]

DEFAULT_DATA = os.environ.get("TRIPSEARCH_DATA", "data")
STORE_FILE = "trips.sqlite"  # what makes a directory a data directory (tripsearch.index.embedded.DB_NAME)


class _BadEnvironment:
    """The default of an option whose environment variable cannot be used: an error once the option is needed.

    Building the parser never fails, so ``--help`` and the commands that do
    not use the variable still work.
    """

    def __init__(self, message: str, raw: str) -> None:
        self.message = message
        self.raw = raw

    def __str__(self) -> str:  # what --help shows as the default
        return self.raw


def _env_number(name: str, fallback: Any, kind: type = int, low: float | None = None, high: float | None = None) -> Any:
    """Return the value of the variable ``name`` as ``kind`` (``fallback`` if unset), or a :class:`_BadEnvironment`."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return fallback
    what = "a whole number" if kind is int else "a number"
    try:
        value = kind(raw)
    except ValueError:
        return _BadEnvironment(f"{name} must be {what}, got {raw[:40]!r}", raw)
    if (low is not None and value < low) or (high is not None and value > high) or value != value:
        bounds = f"from {low:g} to {high:g}" if high is not None else f"at least {low:g}"
        return _BadEnvironment(f"{name} must be {bounds}, got {raw[:40]!r}", raw)
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tripsearch", description="Exact geospatial search for shared car trips.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("fixtures", help="write realistic trips as NDJSON to stdout (same seed, same bytes)")
    p.add_argument("--trips", type=int, required=True, help="number of trips")
    p.add_argument("--seed", type=int, default=1, help="the same seed gives the same trips (default: %(default)s)")
    p.add_argument("--start-date", type=_iso_date, default=dt.date.today() + dt.timedelta(days=1), metavar="YYYY-MM-DD",
                   help="first departure date (default: tomorrow, %(default)s)")
    p.add_argument("--days", type=int, default=30, help="departures spread over this many days (default: %(default)s)")
    p.add_argument("--popularity", choices=("network", "gravity"), default="network",
                   help="network: big city pairs carry many trips (Paris-Lyon ~260 a day at 10M trips over 30 days); gravity: the older model, short hops dominate (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes generating chunks of 2,500 trips; the output does not depend on it (default: %(default)s, the CPUs)")
    p.add_argument("--regular", type=int, default=0, metavar="N",
                   help="also N regular trips of commuters (a town to a city 12-60 km away, weekday mornings over --days), after the others (default: %(default)s)")

    p = sub.add_parser("index", help="load trips from an NDJSON file (or - for stdin)")
    p.add_argument("file", help="NDJSON file, one trip per line, or - for standard input")
    p.add_argument("--data", default=DEFAULT_DATA, help="data directory of the embedded backend (default: %(default)s)")
    p.add_argument("--url", default=None, help="load through a tripsearch HTTP API instead, e.g. http://127.0.0.1:8000")
    p.add_argument("--token", default=os.environ.get("TRIPSEARCH_TOKEN"), help="bearer token for --url (env TRIPSEARCH_TOKEN)")
    p.add_argument("--backend", default=os.environ.get("TRIPSEARCH_BACKEND_URL"), help="Elasticsearch address instead of --data")
    p.add_argument("--batch-size", type=int, default=5000)
    p.add_argument("--quiet", action="store_true", help="no progress (a bar on a terminal, else a line every --progress-interval seconds)")
    p.add_argument("--total", type=int, default=None, metavar="TRIPS", help="trips expected, for the share done and the ETA when the input's size is unknown (a pipe)")
    p.add_argument("--progress-interval", type=float, default=5.0, metavar="SECONDS", help="seconds between progress lines when stderr is not a terminal (default: %(default)s)")
    p.add_argument("--ack-log", default=None, help="append the id and version of each acknowledged trip to this file, batch by batch")

    p = sub.add_parser("search", help="search trips and print a table (or --json)")
    p.add_argument("--from", dest="from_", required=True, metavar="LAT,LON")
    p.add_argument("--to", required=True, metavar="LAT,LON")
    p.add_argument("--date", metavar="YYYY-MM-DD", help="the day of departure (or --date-from and --date-to)")
    p.add_argument("--date-from", metavar="YYYY-MM-DD", help="first day of a search over several days (at most 7, with --date-to): one ranked list across the days")
    p.add_argument("--date-to", metavar="YYYY-MM-DD", help="last day of a search over several days")
    p.add_argument("--from-radius-km", type=float)
    p.add_argument("--to-radius-km", type=float)
    p.add_argument("--seats", type=int)
    p.add_argument("--time-from", metavar="HH:MM")
    p.add_argument("--time-to", metavar="HH:MM")
    p.add_argument("--departure-time", metavar="HH:MM", help="search around a local time (instead of --time-from/--time-to)")
    p.add_argument("--time-delta", type=int, metavar="SECONDS", help="seconds either side of --departure-time (default 900)")
    p.add_argument("--max-price", type=float)
    p.add_argument("--options", help="comma list, e.g. pets,instant_booking")
    p.add_argument("--min-rating", type=float)
    p.add_argument("--sort", choices=("relevance", "departure", "price", "pickup_distance", "time_distance"), help="time_distance (with --departure-time): the pickup closest to it first")
    p.add_argument("--limit", type=int)
    p.add_argument("--cursor")
    p.add_argument("--facets", help="comma list of facet names, 'all' (default) or 'none'")
    p.add_argument("--price-interval", type=float)
    p.add_argument("--cell-resolution", type=int)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--backend", default=os.environ.get("TRIPSEARCH_BACKEND_URL"), help="Elasticsearch address instead of --data")

    p = sub.add_parser("stats", help="print figures about an index")
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--backend", default=os.environ.get("TRIPSEARCH_BACKEND_URL"))

    p = sub.add_parser("reindex", help="rebuild the Elasticsearch index as its next generation and swap the alias (searches never stop)")
    p.add_argument("--backend", default=os.environ.get("TRIPSEARCH_BACKEND_URL"), help="Elasticsearch address (env TRIPSEARCH_BACKEND_URL)")
    p.add_argument("--index", default="trips", help="the alias the trips are searched through (default: %(default)s)")
    p.add_argument("--shards", type=int, help="primary shards of the new index (default: as now)")
    p.add_argument("--replicas", type=int, help="replicas of the new index (default: as now)")
    p.add_argument("--keep-old", action="store_true", help="keep the old index (default: delete it after the swap)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")

    p = sub.add_parser("serve", help="run the HTTP API (uvicorn)")
    p.add_argument("--host", default=os.environ.get("TRIPSEARCH_HOST", "127.0.0.1"), help="address to listen on (env TRIPSEARCH_HOST, default: %(default)s)")
    p.add_argument("--port", type=int, default=_env_number("TRIPSEARCH_PORT", 8000, low=0, high=65535), help="port to listen on (env TRIPSEARCH_PORT, default: %(default)s)")
    p.add_argument("--data", default=DEFAULT_DATA, help="data directory of the embedded backend; must exist (env TRIPSEARCH_DATA, default: %(default)s)")
    p.add_argument("--backend", default=os.environ.get("TRIPSEARCH_BACKEND_URL"), help="Elasticsearch address instead of --data")
    p.add_argument("--workers", type=int, default=_env_number("TRIPSEARCH_WORKERS", 1, low=1), help="worker processes (env TRIPSEARCH_WORKERS, default: %(default)s)")
    p.add_argument("--log-level", default="warning", help="uvicorn's log level (default: %(default)s)")

    p = sub.add_parser("token", help="print a JWT signed with TRIPSEARCH_JWT_SECRET, for development")
    p.add_argument("--scope", action="append", required=True, help="a scope to grant, e.g. trips:write (repeat for several)")
    p.add_argument("--sub", default="developer", help="the token's subject, the owner of alerts (default: %(default)s)")
    p.add_argument("--ttl", type=int, default=86_400, metavar="SECONDS", help="seconds until the token expires (default: %(default)s)")

    p = sub.add_parser("worker", help="consume trip events from RabbitMQ into the index (docs/workers.md)")
    p.add_argument("--amqp", default=os.environ.get("TRIPSEARCH_AMQP_URL", DEFAULT_AMQP), help="broker address (env TRIPSEARCH_AMQP_URL, default %(default)s)")
    p.add_argument("--data", default=DEFAULT_DATA, help="data directory of the embedded backend (default: %(default)s)")
    p.add_argument("--backend", default=os.environ.get("TRIPSEARCH_BACKEND_URL"), help="Elasticsearch address instead of --data")
    p.add_argument("--index", default="trips", help="with --backend: the alias the trips are searched through (default: %(default)s)")
    p.add_argument("--declare-only", action="store_true", help="declare the exchanges, queues and bindings, then exit")
    p.add_argument("--prefetch", type=int, default=_env_number("TRIPSEARCH_WORKER_PREFETCH", 2000, low=1), help="unacknowledged events at most (env TRIPSEARCH_WORKER_PREFETCH, default %(default)s)")
    p.add_argument("--batch-size", type=int, default=_env_number("TRIPSEARCH_WORKER_BATCH_SIZE", 500, low=1), help="events per write at most (env TRIPSEARCH_WORKER_BATCH_SIZE, default %(default)s)")
    p.add_argument("--batch-timeout", type=float, default=_env_number("TRIPSEARCH_WORKER_BATCH_TIMEOUT", 0.2, kind=float, low=0), help="seconds a batch waits for more events after its first, at most: an idle writer takes what has come at once (env TRIPSEARCH_WORKER_BATCH_TIMEOUT, default %(default)s)")
    p.add_argument("--metrics-port", type=int, default=_env_number("TRIPSEARCH_WORKER_METRICS_PORT", None, low=0, high=65535), help="serve /metrics and /ready on this port (0: any free port; env TRIPSEARCH_WORKER_METRICS_PORT, default: none)")
    p.add_argument("--metrics-host", default=os.environ.get("TRIPSEARCH_WORKER_METRICS_HOST", "127.0.0.1"))
    p.add_argument("--write-in", choices=("process", "thread"), default=os.environ.get("TRIPSEARCH_WORKER_WRITE_IN", "process"),
                   help="where the backend writes run: a child process, beside the event loop on another core, or a thread of the worker (env TRIPSEARCH_WORKER_WRITE_IN, default %(default)s)")
    _add_topology_arguments(p)
    p.add_argument("--log-level", default=os.environ.get("TRIPSEARCH_LOG_LEVEL", "info"))

    p = sub.add_parser("publish", help="publish the trips of an NDJSON file as events to RabbitMQ (publisher confirms)")
    p.add_argument("file", help="NDJSON file of trips (or of events, sent as they are), or - for standard input")
    p.add_argument("--amqp", default=os.environ.get("TRIPSEARCH_AMQP_URL", DEFAULT_AMQP), help="broker address (env TRIPSEARCH_AMQP_URL, default %(default)s)")
    p.add_argument("--type", choices=("trip.published", "trip.updated"), default="trip.published", help="event type of each trip (default %(default)s)")
    p.add_argument("--window", type=int, default=1000, help="messages awaiting the broker's confirm at most (default %(default)s)")
    p.add_argument("--pack", type=int, default=1, help="events per message, one per line (default %(default)s: one event, one message)")
    _add_topology_arguments(p)

    p = sub.add_parser("dev", help="development tools: throw-away Elasticsearch clusters on loopback")
    dev = p.add_subparsers(dest="tool", required=True, parser_class=_Parser)
    # Listed here for --help; main() hands everything after `dev elasticsearch` to the tool's own parser.
    dev.add_parser("elasticsearch", help="start|stop|restart-node|status a cluster (tripsearch dev elasticsearch --help)", add_help=False)

    p = sub.add_parser("alerts", help="saved alerts, for operators: count them, list an owner's, match trips again (docs/alerts.md)")
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--data", default=DEFAULT_DATA, help="data directory of the embedded backend (default: %(default)s)")
    where.add_argument("--backend", default=os.environ.get("TRIPSEARCH_BACKEND_URL"), help="Elasticsearch address instead of --data")
    where.add_argument("--alerts-db", default=os.environ.get("TRIPSEARCH_ALERTS_DB"), help="with --backend: the alert store's file (env TRIPSEARCH_ALERTS_DB)")
    actions = p.add_subparsers(dest="action", required=True, metavar="{count,list,replay}", parser_class=argparse.ArgumentParser)
    actions.add_parser("count", parents=[where], help="print the active and expired alerts, owners, webhooks, events and unmatched writes as JSON")
    q = actions.add_parser("list", parents=[where], help="print one owner's alerts, newest first")
    q.add_argument("owner", help="the owner (the sub of their tokens)")
    q.add_argument("--json", action="store_true", help="print them as JSON, as GET /v1/alerts does")
    q = actions.add_parser("replay", parents=[where], help="match trips as stored now against the alerts saved now, record what changed, print their events")
    q.add_argument("trip_ids", nargs="+", metavar="TRIP_ID")
    q.add_argument("--json", action="store_true", help="print the events as JSON lines")

    from ..capacity.cli import add_arguments as add_capacity_arguments

    p = sub.add_parser("capacity", help="measure this machine, plan a deployment from the measurements, write a report with plots")
    add_capacity_arguments(p)
    return parser


DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"


def _iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def _add_topology_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("topology", "names of what is declared on the broker (defaults from TRIPSEARCH_AMQP_*, see docs/workers.md)")
    g.add_argument("--exchange", help="topic exchange of the events (env TRIPSEARCH_AMQP_EXCHANGE, default tripsearch.events)")
    g.add_argument("--queue", help="the workers' queue (env TRIPSEARCH_AMQP_QUEUE, default tripsearch.index)")
    g.add_argument("--dead-letter-exchange", help="env TRIPSEARCH_AMQP_DEAD_LETTER_EXCHANGE, default tripsearch.events.dead")
    g.add_argument("--dead-letter-queue", help="env TRIPSEARCH_AMQP_DEAD_LETTER_QUEUE, default tripsearch.index.dead")
    g.add_argument("--queue-type", choices=("quorum", "classic"), help="env TRIPSEARCH_AMQP_QUEUE_TYPE, default quorum")
    g.add_argument("--delivery-limit", type=int, help="deliveries before the queue dead-letters a message by itself (env TRIPSEARCH_AMQP_DELIVERY_LIMIT, default 20)")


def _topology(args: argparse.Namespace) -> Any:
    from ..broker.events import Topology

    names = ("exchange", "queue", "dead_letter_exchange", "dead_letter_queue", "queue_type", "delivery_limit")
    return Topology(**{name: getattr(args, name) for name in names if getattr(args, name) is not None})


def _open(args: argparse.Namespace, create: bool = False) -> Any:
    """Open the backend of ``--backend`` or ``--data``; only ``create`` makes a new data directory."""
    import tripsearch

    if args.backend:
        return tripsearch.open(args.backend)
    if not create:
        require_data_directory(args.data, needs_index=True)
    return tripsearch.open(args.data, refresh_interval=0)


def require_data_directory(data: str | Path, needs_index: bool) -> None:
    """Refuse a data directory that does not exist (or, with ``needs_index``, holds no trips), saying how to fill it.

    A mistyped ``--data``, or a command run from another directory, would
    otherwise open a new empty index and answer "0 trips match".
    """
    path = Path(data).absolute()
    fill = f"load trips into it with: tripsearch index FILE.ndjson --data {data} (or give --data DIR, or set TRIPSEARCH_DATA)"
    if not path.is_dir():
        raise _UsageError(f"no data directory {path}: {fill}")
    if needs_index and not (path / STORE_FILE).is_file():
        raise _UsageError(f"no index in {path} (no {STORE_FILE}): {fill}")


def _lines(source: BinaryIO) -> Iterator[bytes]:
    for line in source:
        yield line.rstrip(b"\r\n")


def cmd_fixtures(args: argparse.Namespace) -> int:
    from ..data.fixtures import commuter_trips, generate_ndjson, write_ndjson

    if args.trips < 0 or args.days < 1 or args.seed < 0 or args.jobs < 1 or args.regular < 0:
        raise _UsageError("--trips, --regular and --seed must be >= 0, --days and --jobs >= 1")
    if args.regular and args.days > 366:
        raise _UsageError("--days must be at most 366 with --regular (a schedule lasts at most a year)")
    out = sys.stdout.buffer
    for chunk in generate_ndjson(args.trips, args.seed, args.start_date, args.days, popularity=args.popularity, jobs=args.jobs):
        out.write(chunk)
    write_ndjson(commuter_trips(args.regular, args.seed, args.start_date, args.days), out)
    out.flush()
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from .progress import Progress

    if args.batch_size < 1:
        raise _UsageError("--batch-size must be at least 1")
    if args.progress_interval <= 0:
        raise _UsageError("--progress-interval must be > 0")
    path = None if args.file == "-" else Path(args.file)
    if path is not None and not path.is_file():
        raise _UsageError(f"no such file: {args.file}")
    source = sys.stdin.buffer if path is None else open(path, "rb")
    counts = {"stored": 0, "unchanged": 0, "rejected": 0}
    shown = 0
    started = time.perf_counter()
    ack = open(args.ack_log, "ab") if args.ack_log else None
    if args.total is not None and args.total < 1:
        raise _UsageError("--total must be at least 1")
    progress = Progress(sys.stderr, _input_size(source), total_trips=args.total, interval_s=args.progress_interval, enabled=not args.quiet)
    sink = _Sink(args)
    # What the imports and the opening made outlives the load: out of the collector's generations
    # while it runs, its full collections walk only what the load holds now.
    gc.freeze()
    try:
        line_no = 0
        for batch in _batches(_lines(source), args.batch_size):
            first_line = line_no
            line_no += len(batch)
            lines = [(first_line + i + 1, raw) for i, raw in enumerate(batch) if raw.strip()]
            items = sink.write([raw for _, raw in lines])
            for (number, _), item in zip(lines, items):
                counts[item["result"]] = counts.get(item["result"], 0) + 1
                if item["result"] == "rejected" and shown < 20:
                    where = f" {item['field']}:" if item.get("field") else ""
                    progress.message(f"line {number}: rejected{where} {item.get('reason')}")
                    shown += 1
            if ack is not None:
                ack.write(b"".join(f"{i['id']}\t{i['version']}\n".encode() for i in items if i["result"] == "stored"))
                ack.flush()
                os.fsync(ack.fileno())
            progress.update(len(lines), sum(len(raw) + 1 for raw in batch))
        progress.close()
    finally:
        try:
            sink.close()
        finally:
            gc.unfreeze()
            if ack is not None:
                ack.close()
            if path is not None:
                source.close()
    elapsed = time.perf_counter() - started
    done = sum(counts.values())
    if counts["rejected"] > shown:
        print(f"... and {counts['rejected'] - shown} more rejected lines", file=sys.stderr)
    print(f"stored {counts['stored']}, unchanged {counts['unchanged']}, rejected {counts['rejected']} in {elapsed:.1f} s ({done / elapsed if elapsed else 0:,.0f} trips/s)")
    return 0


def _input_size(source: BinaryIO) -> int | None:
    """Return the size in bytes of a regular file (also as redirected stdin), None for a pipe."""
    try:
        info = os.fstat(source.fileno())
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


# How far `tripsearch index` may store ahead of its index: trips parsed and kept in memory until they are applied.
INDEX_BEHIND_TRIPS = 50_000


class _Sink:
    """Where `tripsearch index` writes: an engine, or the HTTP API through the client.

    A data directory's index is applied by a thread behind the writes
    (:class:`_IndexBehind`); an Elasticsearch index is refreshed with each
    batch.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.client: TripSearchClient | None = None
        self.engine: Backend | None = None
        self.behind: _IndexBehind | None = None
        if args.url:
            from .. import client

            self.client = client.TripSearchClient(args.url, token=args.token)
        else:
            self.engine = _open(args, create=True)
            if hasattr(self.engine, "snapshot"):
                self.behind = _IndexBehind(self.engine, max(1, INDEX_BEHIND_TRIPS // args.batch_size))

    def write(self, lines: list[bytes]) -> list[dict[str, Any]]:
        if self.client is not None:
            return [r.to_dict() for r in self.client.bulk(lines, batch_size=len(lines) or 1)]
        assert self.engine is not None
        if self.behind is not None:
            self.behind.check()  # before the write: a batch stored is one the load reports
        items = [i.to_dict() for i in self.engine.upsert(lines, refresh=self.behind is None).items]
        if self.behind is not None:
            self.behind.written()
        return items

    def close(self) -> None:
        try:
            if self.behind is not None:
                self.behind.close()
            if self.engine is not None and hasattr(self.engine, "snapshot"):
                self.engine.snapshot()
        finally:
            if self.engine is not None:
                self.engine.close()
            if self.client is not None:
                self.client.close()


class _IndexBehind:
    """Apply what `tripsearch index` stored to the index in a thread, while the next batch is parsed and stored.

    A batch is acknowledged once SQLite holds it, as before; the thread then
    refreshes the index (reads the change feed, builds the batch's columns,
    corridor cells and postings, and writes a new segment when the delta
    has grown enough) while the load's thread parses and stores the next.
    The compiled loops of the refresh and SQLite's own work let go of the
    interpreter's lock, so the two threads run on both cores for much of
    the load (benchmarks/README.md, "Bulk load (issue 18)"). Each refresh applies all that was stored since
    the last, so when the thread falls behind it catches up in larger
    steps, which cost less a trip. The load waits while ``batches``
    batches are stored and not yet being applied (with the one being
    applied and the one being stored, up to ``batches + 2`` batches held
    parsed in memory); an error of the thread stops the load before its
    next batch, and is raised once.
    """

    def __init__(self, engine: Backend, batches: int) -> None:
        self._engine = engine
        self._todo: queue.Queue[bool] = queue.Queue(maxsize=batches)
        self._error: BaseException | None = None
        self._raised = False
        self._thread = threading.Thread(target=self._run, name="tripsearch-index-behind", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Raise the thread's error, if it had one and it was not raised yet."""
        if self._error is not None and not self._raised:
            self._raised = True
            raise self._error

    def written(self) -> None:
        """Say a batch was stored: the thread refreshes after it (waits while the thread is too far behind)."""
        self._todo.put(True)

    def close(self) -> None:
        """Wait until the thread has applied every batch stored, then end it."""
        self._todo.put(False)
        self._thread.join()
        self.check()

    def _run(self) -> None:
        while self._todo.get():
            if self._error is None:
                try:
                    self._engine.refresh()
                except BaseException as exc:  # handed to the load's thread, which stops
                    self._error = exc


def _batches(lines: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def cmd_search(args: argparse.Namespace) -> int:
    query: dict[str, Any] = {"from": args.from_, "to": args.to}
    names = ("date", "date_from", "date_to", "from_radius_km", "to_radius_km", "seats", "time_from", "time_to", "departure_time", "time_delta")
    for name in (*names, "max_price", "options", "min_rating", "sort", "limit", "cursor", "price_interval", "cell_resolution"):
        value = getattr(args, name)
        if value is not None:
            query[name] = value
    if args.facets is not None:
        query["facets"] = [] if args.facets == "none" else args.facets
    from ..query.model import parse_query

    try:
        parse_query(query)  # a wrong query is named before a wrong --data
    except InvalidQuery as exc:
        if exc.field in names or exc.field == "sort":  # name the flag: --date-from, not date_from
            raise InvalidQuery(f"--{exc.field.replace('_', '-')}", exc.reason.replace("date_from", "--date-from").replace("date_to", "--date-to").replace("departure_time", "--departure-time")) from None
        raise
    engine = _open(args)
    try:
        result = engine.search(query)
    finally:
        engine.close()
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
        return 0
    from .render import render_result

    print(render_result(result, dated=args.date_from is not None))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    engine = _open(args)
    try:
        sys.stdout.buffer.write(orjson.dumps(engine.stats(), option=orjson.OPT_INDENT_2) + b"\n")
    finally:
        engine.close()
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    if not args.backend:
        raise _UsageError("--backend (or TRIPSEARCH_BACKEND_URL) must give the Elasticsearch address")
    if (args.shards is not None and args.shards < 1) or (args.replicas is not None and args.replicas < 0):
        raise _UsageError("--shards must be >= 1 and --replicas >= 0")
    from ..index.elastic import ElasticBackend

    def progress(stage: str, count: int) -> None:
        if not args.quiet:
            print(f"\r{stage}: {count:,} trips    ", end="", file=sys.stderr, flush=True)

    engine = ElasticBackend(args.backend, index=args.index, create=False)
    try:
        report = engine.reindex(number_of_shards=args.shards, number_of_replicas=args.replicas, keep_old=args.keep_old, progress=progress)
    finally:
        engine.close()
        if not args.quiet:
            print(file=sys.stderr)
    sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from api.server import serve
    from api.settings import Settings

    if args.workers < 1:
        raise _UsageError("--workers must be at least 1")
    Settings.from_env()  # a bad variable is named before a missing directory
    if not args.backend:
        # An existing empty directory is fine: the API can fill it.
        require_data_directory(args.data, needs_index=False)
    return serve(host=args.host, port=args.port, data=args.data, backend=args.backend, workers=args.workers, log_level=args.log_level)


def cmd_token(args: argparse.Namespace) -> int:
    from api.auth import development_token

    if args.ttl < 1:
        raise _UsageError("--ttl must be at least 1")
    print(development_token(args.scope, subject=args.sub, ttl_s=args.ttl))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from ..broker.worker import WorkerSettings, declare_only, run_worker

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for name in ("aiormq", "aio_pika"):  # the worker logs each lost or refused connection itself, in one line
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        settings = WorkerSettings(args.amqp, _topology(args), prefetch=args.prefetch, batch_size=args.batch_size, batch_timeout_s=args.batch_timeout,
                                  metrics_host=args.metrics_host, metrics_port=args.metrics_port)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    if args.write_in not in ("process", "thread"):  # argparse checks the flag's value, not a default from the environment
        raise _UsageError(f"TRIPSEARCH_WORKER_WRITE_IN must be process or thread, got {args.write_in!r}")
    if args.declare_only:
        asyncio.run(declare_only(settings))
        print(f"declared exchange {settings.topology.exchange}, queue {settings.topology.queue}, dead letters {settings.topology.dead_letter_exchange} -> {settings.topology.dead_letter_queue}")
        return 0
    import tripsearch

    from ..broker.writer import WriterProcess

    # a worker only writes: the embedded backend maps no index and keeps nothing in memory (the
    # processes that search follow the change feed and write the segments), and its writes are
    # matched against alerts by a follower process after them, as the API's are (docs/alerts.md)
    target, options = (args.backend, {"index": args.index}) if args.backend else (args.data, {"search": False, "matching": "process"})
    engine: WriterProcess | Backend
    if args.write_in == "process":
        engine = WriterProcess(target, **options)
        engine.start()  # a backend that cannot be opened is said now, not at the first batch
    else:
        engine = tripsearch.open(target, **options)
    try:
        run_worker(engine, settings)
    finally:
        engine.close()
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    import asyncio

    from ..broker.events import EventPublisher, trip_event

    if args.window < 1 or args.pack < 1:
        raise _UsageError("--window and --pack must be at least 1")
    path = None if args.file == "-" else Path(args.file)
    if path is not None and not path.is_file():
        raise _UsageError(f"no such file: {args.file}")
    skipped = 0

    def events(source: BinaryIO) -> Iterator[dict[str, Any]]:
        nonlocal skipped
        for number, line in enumerate(_lines(source), 1):
            if not line.strip():
                continue
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                data = exc
            if not isinstance(data, dict):
                skipped += 1
                print(f"line {number}: skipped: not a JSON object", file=sys.stderr)
                continue
            yield data if "schema" in data else trip_event(data, args.type)

    async def publish() -> int:
        source = sys.stdin.buffer if path is None else open(path, "rb")
        try:
            async with EventPublisher(args.amqp, _topology(args), window=args.window, pack=args.pack) as publisher:
                return await publisher.publish(events(source))
        finally:
            if path is not None:
                source.close()

    started = time.perf_counter()
    try:
        sent = asyncio.run(publish())
    except (OSError, ConnectionError) as exc:
        raise _UsageError(f"cannot publish to {args.amqp}: {exc}") from None
    elapsed = time.perf_counter() - started
    print(f"published {sent} events, confirmed by the broker, skipped {skipped} lines in {elapsed:.1f} s ({sent / elapsed if elapsed else 0:,.0f} events/s)")
    return 0


def _unfollowed(data: Path, alerts: Any) -> int:
    """Return the trip changes of a data directory after the alerts' cursor: writes whose writer died before recording their matches."""
    from ..index.embedded import DB_NAME
    from ..index.embedded.store import Store

    if not (data / DB_NAME).is_file():
        return 0
    trips = Store(data / DB_NAME)
    try:
        cursor = alerts.feed_cursor(trips.store_id)
        return 0 if cursor is None else trips.count_after(cursor)
    finally:
        trips.close()


def cmd_alerts(args: argparse.Namespace) -> int:
    import tripsearch
    from ..alerts import ALERTS_DB_NAME, AlertingBackend, AlertStore
    from ..alerts.store import SUMMARY_FIELDS

    if args.action == "replay" and not all(tid.strip() for tid in args.trip_ids):
        raise _UsageError("TRIP_ID: an empty trip id")
    if args.backend:
        if not args.alerts_db:
            raise _UsageError("with --backend, --alerts-db (or TRIPSEARCH_ALERTS_DB) must name the alert store's file")
        path = Path(args.alerts_db)
    else:
        require_data_directory(args.data, needs_index=args.action == "replay")
        path = Path(args.data) / ALERTS_DB_NAME
    if args.action == "replay":
        engine = tripsearch.open(args.backend, alerts=path) if args.backend else tripsearch.open(args.data, refresh_interval=0)
        try:
            if not isinstance(engine, AlertingBackend) or (store := engine.existing_alerts()) is None:
                raise _UsageError(f"no alert store at {path}: no alert was ever saved")
            for tid in args.trip_ids:
                try:
                    engine.get(tid)
                except NotFound:
                    print(f"{tid}: not in the index (alerts told of it are told it is cancelled)", file=sys.stderr)
            engine.rematch(args.trip_ids)
            events = [event for tid in args.trip_ids for event in store.trip_events(tid)]
        finally:
            engine.close()
        for event in events:
            if args.json:
                sys.stdout.buffer.write(orjson.dumps(event.to_dict()) + b"\n")
            else:
                print(f"{event.seq:>8}  {event.to_dict()['at']}  {event.trip_id} v{event.version}  {event.kind:<7}  alert {event.alert_id} of {event.owner}")
        return 0
    if path.is_file():
        store = AlertStore(path, readonly=True)  # reading changes nothing in the file
    elif args.backend:
        raise _UsageError(f"no alert store at {path} (--alerts-db)")
    else:
        store = None  # no alert was ever saved here: nothing to count or list
    try:
        if args.action == "count":
            counts = store.summary(0 if args.backend else _unfollowed(Path(args.data), store)) if store else dict.fromkeys(SUMMARY_FIELDS, 0)
            sys.stdout.buffer.write(orjson.dumps(counts, option=orjson.OPT_INDENT_2) + b"\n")
            return 0
        records = store.owner_alerts(args.owner) if store else []
        now = store.now() if store else dt.datetime.now(dt.timezone.utc)
        if args.json:
            sys.stdout.buffer.write(orjson.dumps([r.to_dict(now) for r in records], option=orjson.OPT_INDENT_2) + b"\n")
            return 0
        for r in records:
            fields = r.spec.to_dict()
            hook = f"  webhook {r.webhook['status']}" if r.webhook else ""
            print(f"{r.id}  {'expired' if r.expired(now) else 'active':<7}  {fields['from']} -> {fields['to']}  {fields['date_from']}..{fields['date_to']}{hook}")
        if not records:
            print(f"{args.owner} has no alerts", file=sys.stderr)
        return 0
    finally:
        if store:
            store.close()


def cmd_capacity(args: argparse.Namespace) -> int:
    from ..capacity.cli import run

    return run(args)


class _UsageError(Exception):
    pass


COMMANDS = {"fixtures": cmd_fixtures, "index": cmd_index, "search": cmd_search, "stats": cmd_stats, "reindex": cmd_reindex, "serve": cmd_serve, "token": cmd_token, "worker": cmd_worker, "publish": cmd_publish, "alerts": cmd_alerts, "capacity": cmd_capacity}


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] == ["dev", "elasticsearch"]:
        from ..dev import elasticsearch

        return int(elasticsearch.main(argv[2:]))
    args = build_parser().parse_args(argv)
    for value in vars(args).values():
        if isinstance(value, _BadEnvironment):
            print(f"tripsearch {args.command}: error: {value.message}", file=sys.stderr)
            return 2
    try:
        return COMMANDS[args.command](args)
    except (TripSearchError, _UsageError) as exc:
        print(f"tripsearch {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tripsearch {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0

