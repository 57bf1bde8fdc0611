"""``tripsearch capacity report``: a Markdown report with PNG plots of saved measurements.

The plots are made to show knees: latency against index size, throughput
against workers, latency against load (where p99 turns up is the usable
limit of a worker), memory against trips, and Elasticsearch against the
embedded backend as ratios of the same run. The report always names the
machine, since absolute times differ from machine to machine; what goes
beyond this machine is drawn dashed and labelled as a projection.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

from .data import Curve, Measurements, rate_at_p99
from .errors import CapacityError
from .memory import MemoryModel, memory_model
from .plan import format_bytes

__all__ = ["write_report", "DEFAULT_DIR", "PLOTS"]

DEFAULT_DIR = Path("benchmarks") / "results"
PLOTS = {
    "latency_vs_trips": "latency_vs_trips.png",
    "throughput_vs_workers": "throughput_vs_workers.png",
    "latency_vs_load": "latency_vs_load.png",
    "memory_vs_trips": "memory_vs_trips.png",
    "embedded_vs_elasticsearch": "embedded_vs_elasticsearch.png",
}
P99_MARKS = (20.0, 50.0, 100.0)  # p99 targets the HTTP table reads the curves at
SIZE = (8.0, 5.0)
DPI = 100  # 800 x 500 pixels


def _plt() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise CapacityError("tripsearch capacity report draws its plots with matplotlib: pip install 'tripsearch[capacity]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": DPI, "savefig.dpi": DPI})
    return plt


def _save(plt: Any, fig: Any, path: Path) -> None:
    """Save 800 x 500 pixels with a 256-colour palette: line plots need no more, and the files stay small."""
    from PIL import Image

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, format="PNG", optimize=True)


def _trips_label(n: float) -> str:
    return f"{n / 1e6:g}M" if n >= 1e6 else f"{n / 1e3:g}k" if n >= 1e3 else f"{n:g}"


def _plot_latency_vs_trips(meas: Measurements, path: Path) -> bool:
    probes = meas.probes("embedded")
    if not probes:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=SIZE)
    xs = [p["trips"] for p in probes]
    for name, style, label in (("facets", "-", "all facets"), ("no_facets", "--", "no facets")):
        for stat, color in (("p50_ms", "tab:blue"), ("p99_ms", "tab:red")):
            ys = [p["latency"][name][stat] for p in probes]
            ax.plot(xs, ys, style, marker="o", color=color, label=f"embedded {stat[:3]}, {label}")
    for p in meas.probes("elasticsearch"):
        for name, marker in (("facets", "s"), ("no_facets", "D")):
            for stat, color in (("p50_ms", "tab:cyan"), ("p99_ms", "tab:orange")):
                ax.plot([p["trips"]], [p["latency"][name][stat]], marker, color=color, markersize=8, label=f"Elasticsearch {stat[:3]}, {'all facets' if name == 'facets' else 'no facets'}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("trips in the index")
    ax.set_ylabel("search latency, in-process (ms)")
    ax.set_title("Search latency against index size (one search at a time, realistic query mix)")
    ax.legend(fontsize=7, ncol=2)
    _save(plt, fig, path)
    return True


def _plot_throughput_vs_workers(meas: Measurements, path: Path) -> bool:
    curves = meas.curves("embedded") + meas.curves("elasticsearch")
    if not curves:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=SIZE)
    cores = int(meas.machine.get("usable_cores") or meas.machine.get("cores") or 1)
    reach = max(4, 2 * cores)
    groups: dict[tuple[str, int], list[Curve]] = {}
    for c in curves:
        groups.setdefault((c.backend, c.trips), []).append(c)
    for i, ((backend, trips), group) in enumerate(sorted(groups.items(), key=lambda kv: (kv[0][0] != "embedded", kv[0][1]))):
        group.sort(key=lambda c: c.workers)
        color = f"C{i}"
        name = f"{'ES' if backend == 'elasticsearch' else 'embedded'}, {_trips_label(trips)} trips"
        ax.plot([c.workers for c in group], [c.saturation for c in group], "-o", color=color, label=f"{name} (measured)")
        for c in group:
            others = c.data["saturation"].get("other_busy_cores") or 0
            if others > 0.25:  # say where other work on the machine pulled a point down
                ax.annotate(f"others: {others:g} cores", (c.workers, c.saturation), textcoords="offset points", xytext=(6, -10), fontsize=7, color=color)
        last = group[-1]
        per_worker = last.saturation / last.workers
        ax.plot([last.workers, reach], [last.saturation, per_worker * reach], ":", color=color, alpha=0.7)
    ax.axvline(cores, color="grey", linestyle="--")
    ax.text(cores, ax.get_ylim()[1] * 0.95, f"  {cores} cores on this machine\n  dotted: projection, linear per worker\n  (one worker per core, on more cores)", va="top", fontsize=8, color="grey")
    ax.set_xlabel("API workers (tripsearch serve --workers)")
    ax.set_ylabel("searches/s at saturation (closed loop)")
    ax.set_title("HTTP throughput against workers (all facets, page-2 follows, autocompletes)\n'others': cores that other processes took meanwhile", fontsize=9)
    ax.set_xlim(0.5, reach + 0.5)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="upper left")
    _save(plt, fig, path)
    return True


def _plot_latency_vs_load(meas: Measurements, path: Path) -> bool:
    curves = [c for c in meas.curves("embedded") + meas.curves("elasticsearch") if any(p.get("p99_ms") is not None for p in c.points)]
    if not curves:
        return False
    plt = _plt()
    groups: dict[tuple[str, int], list[Curve]] = {}
    for c in curves:
        groups.setdefault((c.backend, c.trips), []).append(c)
    n = len(groups)
    cols = 1 if n == 1 else 2
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=SIZE, squeeze=False, sharey=True)
    for ax, ((backend, trips), group) in zip(axes.flat, sorted(groups.items(), key=lambda kv: (kv[0][0] != "embedded", kv[0][1]))):
        for c in sorted(group, key=lambda c: c.workers):
            pts = sorted((p for p in c.data.get("open_loop", []) if p.get("p99_ms") is not None), key=lambda p: p.get("fraction", 0))
            color = f"C{c.workers - 1}"
            # x is the load offered (a fraction of saturation), so each line runs left to right; an overloaded
            # server achieves less than it is offered, and its latency shows it
            xs = [p.get("fraction", 1.0) * c.saturation for p in pts]
            ax.plot(xs, [p["p99_ms"] for p in pts], "-o", color=color, markersize=4, label=f"{c.workers} worker{'s' if c.workers > 1 else ''}: p99")
            ax.plot(xs, [p["p50_ms"] for p in pts], "--", color=color, alpha=0.5, label="p50")
            ax.axvline(c.saturation, color=color, linestyle=":", alpha=0.6)
            bad = [p for p in pts if p.get("errors") or p.get("dropped")]
            if bad:
                ax.plot([p.get("fraction", 1.0) * c.saturation for p in bad], [p["p99_ms"] for p in bad], "x", color="black", markersize=8)
        ax.set_yscale("log")
        ax.set_xlim(left=0)
        ax.set_title(f"{'Elasticsearch' if backend == 'elasticsearch' else 'embedded'}, {_trips_label(trips)} trips", fontsize=9)
        ax.legend(fontsize=6, loc="upper left", ncol=2)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("searches/s offered (Poisson arrivals)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("latency (ms)", fontsize=8)
    fig.suptitle("Latency against load (open loop; dotted: saturation): the knee is where p99 turns up", fontsize=10)
    _save(plt, fig, path)
    return True


def _plot_memory_vs_trips(meas: Measurements, path: Path) -> bool:
    fit = meas.worker_memory()
    curves = meas.curves("embedded")
    probes = [p for p in meas.probes() if p.get("rss_delta")]
    if fit is None and not probes:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=SIZE)
    pts = sorted({(c.trips, max(r for r in c.data.get("worker_rss_bytes", [0]) if r)) for c in curves if any(c.data.get("worker_rss_bytes", []))})
    if pts:
        ax.plot([x for x, _ in pts], [y / 2**20 for _, y in pts], "o", color="tab:blue", markersize=8, label="API worker RSS after load (measured)")
    if probes:
        ax.plot([p["trips"] for p in probes], [p["rss_delta"] / 2**20 for p in probes], "s", color="tab:green", label="index alone: RSS growth on open (measured)")
    if fit is not None:
        base, per_trip, _ = fit
        measured = [x for x, _ in pts] + [p["trips"] for p in probes]
        low, top = min(measured) / 2, max(measured)
        inside = [low * (top / low) ** (i / 40) for i in range(41)]
        beyond = [top * 10 ** (i / 20) for i in range(21)]
        ax.plot(inside, [(base + per_trip * x) / 2**20 for x in inside], "-", color="tab:blue", alpha=0.5,
                label=f"fit: {format_bytes(base)} + {per_trip:,.0f} bytes/trip per worker")
        ax.plot(beyond, [(base + per_trip * x) / 2**20 for x in beyond], "--", color="tab:red", alpha=0.7, label="projection beyond the measured sizes (same line)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("trips in the index")
    ax.set_ylabel("resident memory (MiB)")
    ax.set_title("Memory of one worker against trips (RSS; measured before segments, every worker held the whole index)")
    ax.legend(fontsize=7, loc="upper left")
    _save(plt, fig, path)
    return True


def _when(*results: dict[str, Any]) -> str:
    """Return when results were measured (HH:MM UTC), to show figures of resumed runs for what they are."""
    times = [str(r.get("at", ""))[11:16] for r in results]
    return " / ".join(t or "?" for t in times)


def _comparisons(meas: Measurements) -> list[tuple[str, float, str]]:
    """Return (what, Elasticsearch ÷ embedded, how) for the figures measured for both in this run."""
    out: list[tuple[str, float, str]] = []
    load = meas.one("es_load")
    writes = meas.one("writes", "embedded")
    if load and writes:
        out.append(("bulk load trips/s", load["bulk_trips_per_s"] / writes["bulk_trips_per_s"], f"{load['bulk_trips_per_s']:,.0f} ÷ {writes['bulk_trips_per_s']:,.0f} trips/s; at {_when(load, writes)}"))
    es = meas.probes("elasticsearch")
    emb = [p for p in meas.probes("embedded", beside_elasticsearch=True) if es and p["trips"] == es[0]["trips"]]
    if es and emb:
        for name, words in (("facets", "all facets"), ("no_facets", "no facets")):
            for stat in ("p50_ms", "p99_ms"):
                a, b = es[0]["latency"][name][stat], emb[0]["latency"][name][stat]
                out.append((f"in-process {stat[:3]}, {words}", a / b, f"{a:g} ÷ {b:g} ms; at {_when(es[0], emb[0])}"))
        a, b = es[0]["latency"]["facets"]["candidate_ratio"], emb[0]["latency"]["facets"]["candidate_ratio"]
        out.append(("candidates per match", a / b if b else float("nan"), f"{a:g} ÷ {b:g}"))
    for c in meas.curves("elasticsearch"):
        twin = [e for e in meas.curves("embedded") if e.trips == c.trips and e.workers == c.workers]
        if twin:
            out.append((f"HTTP searches/s, {c.workers} worker(s)", c.saturation / twin[0].saturation, f"{c.saturation:,.0f} ÷ {twin[0].saturation:,.0f}; at {_when(c.data, twin[0].data)}"))
    return out


def _plot_comparison(meas: Measurements, path: Path) -> bool:
    rows = _comparisons(meas)
    if not rows:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=SIZE)
    names = [r[0] for r in rows]
    values = [r[1] for r in rows]
    colors = ["tab:green" if ("/s" in n) == (v >= 1) else "tab:red" for n, v in zip(names, values)]
    bars = ax.barh(range(len(rows)), values, color=colors, alpha=0.8)
    for bar, v in zip(bars, values):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {v:.2f}×", va="center", fontsize=8)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(range(len(rows)), names)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("Elasticsearch ÷ embedded (same run, same trips and queries); green: Elasticsearch better")
    ax.set_title("Elasticsearch against the embedded backend, as ratios")
    _save(plt, fig, path)
    return True


def _md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def write_report(meas: Measurements, out_dir: Path, shared_index: dict[str, Any] | None = None, shared_index_path: Path | None = None) -> Path:
    """Write ``report.md`` and its PNG plots to ``out_dir``; return the report's path.

    ``shared_index``: the shared-index benchmark's JSON, for the memory model
    (else the PSS of the capacity run's workers, where it recorded them).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    made = {
        key: fn(meas, out_dir / PLOTS[key])
        for key, fn in (
            ("latency_vs_trips", _plot_latency_vs_trips),
            ("throughput_vs_workers", _plot_throughput_vs_workers),
            ("latency_vs_load", _plot_latency_vs_load),
            ("memory_vs_trips", _plot_memory_vs_trips),
            ("embedded_vs_elasticsearch", _plot_comparison),
        )
    }
    m = meas.machine
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())
    opts = meas.doc.get("options", {})
    lines = [
        "# tripsearch capacity report",
        "",
        f"Generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC from `{meas.path or 'measurements'}` (measured {m.get('date', '?')}).",
        "",
        "## Machine",
        "",
        "Absolute times hold for this machine only; Elasticsearch and the embedded backend are compared as ratios measured in the same run.",
        "",
        f"- CPU: **{m.get('cpu_model', '?')}**, {m.get('cores', '?')} cores ({m.get('usable_cores', '?')} usable"
        + (f", cgroup limit {m['cgroup_cpu_limit']}" if m.get("cgroup_cpu_limit") else "")
        + ")",
        f"- Memory: **{format_bytes(m['memory_bytes']) if m.get('memory_bytes') else '?'}**",
        f"- {m.get('platform', '?')}; {versions}",
        f"- Commit {m.get('git_commit') or '?'}; load average at start {m.get('load_average_at_start')}, at end {meas.doc.get('load_average_at_end')}"
        + " (a load above 0 before the run means other work shared the machine: figures are noisy)",
        f"- Mode: {'quick (tiny sizes, for tests only)' if opts.get('quick') else 'full'}; "
        + ("complete" if meas.complete else f"**incomplete**: missing or failed steps {', '.join(meas.gaps)}"),
    ]
    times = sorted(str(r["at"]) for r in meas.doc.get("results", {}).values() if r.get("at"))
    if times and times[0][:13] != times[-1][:13]:
        lines.append(f"- Steps measured from {times[0]} to {times[-1]} (a resumed run: compare figures measured close together, see the times)")
    for step, why in meas.skipped().items():
        lines.append(f"- Skipped `{step}`: {why}")
    lines += [
        "",
        "## How it was measured",
        "",
        "- Query mix (`tripsearch/capacity/workload.py`): city pairs drawn from the fixture trips' stops (origins by population, destinations by a gravity model),"
        " 20% of searches with a filter, 10% followed to page 2 with the cursor, and place autocompletes as 15% of calls.",
        "- In-process: one search at a time in a fresh process, after 20 warm-up searches; memory is the process's resident set.",
        "- HTTP: `tripsearch serve` on loopback; the load generator (`tripsearch/capacity/loadgen.py`, raw asyncio, separate process) first runs a closed loop"
        " (3 connections per worker) to find saturation, then open-loop Poisson arrivals at fractions of it; open-loop latency counts from when a call was due."
        " Searches/s count first pages and page-2 follows; autocompletes come on top. The load generator shares the machine's cores (its CPU share is in the tables).",
        "- Projections (dotted or dashed lines, `[projection]` in plans): beyond this machine's cores, throughput is assumed linear per worker (one worker per core);"
        " beyond the biggest index measured, latencies follow a power law through the two biggest sizes.",
        "",
        "## Search latency against index size",
        "",
    ]
    rows = []
    for backend in ("embedded", "elasticsearch"):
        for p in meas.probes(backend):
            for name in ("facets", "no_facets"):
                lat = p["latency"].get(name)
                if lat:
                    rows.append([backend, f"{p['trips']:,}", "all" if name == "facets" else "none", lat["p50_ms"], lat["p99_ms"], lat["mean_ms"], f"{lat['searches_per_s']:,.0f}", lat["candidate_ratio"], lat["mean_total"]])
    if rows:
        lines += _md_table(["backend", "trips", "facets", "p50 ms", "p99 ms", "mean ms", "searches/s (one at a time)", "candidates per match", "matches per search"], rows)
    if made["latency_vs_trips"]:
        lines += ["", f"![latency against index size]({PLOTS['latency_vs_trips']})", "", "Steeper than the size line means searches get slower per trip as the index grows (more candidates per search in dense corridors)."]
    lines += ["", "## HTTP throughput and latency", ""]
    rows = []
    for backend in ("embedded", "elasticsearch"):
        for c in meas.curves(backend):
            sat = c.data["saturation"]
            at = []
            for mark in P99_MARKS:
                rate, _ = rate_at_p99(c.points, mark)
                at.append(f"{rate:,.0f}" if rate is not None else "not met")
            rss = [r for r in c.data.get("worker_rss_bytes", []) if r]
            rows.append([backend, f"{c.trips:,}", c.workers, f"{c.saturation:,.0f}", sat["p50_ms"], sat["p99_ms"], *at,
                         c.data.get("worker_cpu_ms_per_search"), format_bytes(max(rss)) if rss else "?", f"{c.data.get('ready_s', 0):.1f}", f"{sat.get('client_cpu_share', 0):.0%}",
                         f"{sat.get('other_busy_cores', '?')} / {max((p.get('other_busy_cores') or 0 for p in c.points), default='?')}"])
    if rows:
        lines += _md_table(["backend", "trips", "workers", "saturation searches/s", "p50 ms at saturation", "p99 ms at saturation",
                            *[f"searches/s at p99 <= {m:g} ms" for m in P99_MARKS], "worker CPU ms/search", "worker RSS", "ready after s", "load generator CPU",
                            "other processes' cores: saturation / worst load point"], rows)
        lines += ["", "The last column is the CPU other processes took (machine-wide busy time from /proc/stat, minus the servers',"
                  " the load generator's and Elasticsearch's own) during the saturation run and during the worst of the load points:"
                  " where it is high, throughput is low and p99 high by about that share of the cores, so read those rows as lower bounds."
                  " Each load point is the best of its repeats (other work only ever slows a run down)."]
    else:
        lines.append("No HTTP measurements.")
    if made["throughput_vs_workers"]:
        lines += ["", f"![throughput against workers]({PLOTS['throughput_vs_workers']})", "",
                  "Measured points are solid; the dotted continuation is a projection (linear in workers on more cores), not a measurement."]
    if made["latency_vs_load"]:
        lines += ["", f"![latency against load]({PLOTS['latency_vs_load']})", "",
                  "Each line is one server: read off the searches/s where p99 crosses your target; that is the usable capacity. Crosses mark points with errors or unanswered calls."]
    writes = meas.one("writes", "embedded")
    lines += ["", "## Writes", ""]
    if writes:
        lines += _md_table(["what", "rate", "measured as"], [
            ["bulk load", f"{writes['bulk_trips_per_s']:,.0f} trips/s", f"{writes['bulk_trips']:,} trips in batches of {writes['bulk_batch']:,}"],
            ["one-trip transactions", f"{writes['single_writes_per_s']:,.0f} writes/s", f"{writes['single_writes']} upserts of one trip (an API PUT each)"],
            ["a worker applying others' writes", f"{writes['follower_apply_trips_per_s']:,.0f} trips/s", "refresh of a second engine over the same data directory"],
        ])
    load = meas.one("es_load")
    if load:
        lines += ["", f"Elasticsearch: {load['bulk_trips_per_s']:,.0f} trips/s bulk load ({load['trips']:,} trips, one node); {load['bytes_per_trip']:,.0f} bytes per trip in the primary store ({load['note']})."]
    lines += ["", "## Memory", ""]
    try:
        model: MemoryModel | None = memory_model(meas, shared_index, shared_index_path)
    except CapacityError as exc:
        model = None
        lines.append(f"No memory model of the shared index: {exc}.")
    if model is not None:
        delta = f"{model.delta_bytes_per_trip:,.0f} bytes per trip" if model.delta_bytes_per_trip else "not measured"
        lines += [
            "The workers map one segment file, held once in the page cache; each worker adds its private memory"
            " (docs/segments.md, \"Capacity planning\"):",
            "",
            "    memory per machine = trips × segment bytes per trip + workers × (private base + delta rows × delta bytes per trip)",
            f"    delta rows = max({model.merge_min_rows:,}, {model.merge_ratio:g} × trips), with writes only",
            "",
        ]
        lines += _md_table(["figure", "value", "from"], [
            ["segment bytes per trip", f"{model.segment_bytes_per_trip:,.0f}", model.segment_source],
            ["private base per worker", format_bytes(model.worker_private_bytes), model.private_source],
            ["delta bytes per trip", delta, model.delta_source],
        ])
        lines += ["", "`tripsearch capacity plan --memory 24GiB --workers 2` gives the trips that fit on a machine; `--trips N` the memory per machine of a target."]
    rows = []
    for c in meas.curves("embedded"):
        smaps = [x for x in c.data.get("worker_smaps") or [] if x]
        if smaps:
            rows.append([f"{c.trips:,}", c.workers, format_bytes(sum(x["Pss"] for x in smaps)), format_bytes(sum(x["Rss"] for x in smaps)), format_bytes(sum(x["Pss_Anon"] for x in smaps))])
    if rows:
        lines += ["", "HTTP workers after load, in total (`/proc/PID/smaps_rollup`; RSS counts the shared segment once per worker, PSS once in all):", ""]
        lines += _md_table(["trips", "workers", "PSS", "RSS", "anonymous PSS"], rows)
    rows = [[f"{d['trips']:,}", format_bytes(d["sqlite_bytes"]), format_bytes(d.get("snapshot_bytes") or 0), f"{d['sqlite_bytes'] / d['trips']:,.0f}"] for d in meas.data_dirs()]
    if rows:
        lines += [""] + _md_table(["trips", "trips.sqlite", "index.snapshot", "SQLite bytes/trip"], rows)
    rows = [[f"{p['trips']:,}", f"{p['open_s']:.2f}", format_bytes(p["rss_delta"]) if p.get("rss_delta") else "?", f"{p['rss_delta'] / p['trips']:,.0f}" if p.get("rss_delta") else "?"] for p in meas.probes()]
    if rows:
        lines += ["", "Restart: a fresh process opening the index (snapshot, then the change feed since), with the files in the page cache;"
                  " a cold start also reads index.snapshot from disk (its size is in the table above):", ""] + _md_table(["trips", "open s", "RSS growth", "bytes/trip"], rows)
    if made["memory_vs_trips"]:
        lines += ["", f"![memory against trips]({PLOTS['memory_vs_trips']})"]
    lines += ["", "## Elasticsearch against embedded", ""]
    comparisons = _comparisons(meas)
    if comparisons:
        lines += _md_table(["figure", "Elasticsearch ÷ embedded", "from (and when, UTC: Elasticsearch / embedded)"], [[n, f"{v:.2f}", how] for n, v, how in comparisons])
        if made["embedded_vs_elasticsearch"]:
            lines += ["", f"![Elasticsearch against embedded]({PLOTS['embedded_vs_elasticsearch']})"]
    else:
        lines.append("Not measured in this run (`tripsearch capacity measure --start-elasticsearch` or `--elasticsearch URL`).")
    lines += ["", "## Planning", "", "`tripsearch capacity plan --trips N --searches-per-s S --writes-per-s W --p99-ms P [--backend embedded|elasticsearch]` reads these measurements"
              " (and, for Elasticsearch, the hot-corridor runs' cost per search: `--es-measurements`) and prints each figure with where it comes from.", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
