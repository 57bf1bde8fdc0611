"""Turn pytest-benchmark JSON into a Markdown summary table (and run the suite first with ``--run``).

    python -m benchmarks.summarize results.json                    # the table of one run
    python -m benchmarks.summarize results.json --baseline old.json # with the change of each figure
    python -m benchmarks.summarize --run --sizes 10000,100000,1000000 --out benchmarks/results

Figures come from each benchmark's ``extra_info`` (p50/p99, trips/s,
searches/s, bytes per trip, ...), with the benchmark's own median time
beside them. Rows that differ only by backend also get an "Elasticsearch
÷ embedded" table: ratios measured in the same run, which transfer between
machines where absolute times do not.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

__all__ = ["summarize", "load", "main", "FIGURES"]

# extra_info keys shown, in order, with their column titles and whether higher is better
FIGURES: dict[str, tuple[str, bool]] = {
    "p50_ms": ("p50 ms", False),
    "p99_ms": ("p99 ms", False),
    "searches_per_s": ("searches/s", True),
    "trips_per_s": ("trips/s", True),
    "open_s": ("open s", False),
    "bytes_per_trip": ("bytes/trip", False),
    "candidate_ratio": ("candidates/match", False),
    "worker_rss_bytes": ("worker RSS MiB", False),
}
ROOT = Path(__file__).resolve().parent.parent


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(Path(path).read_text()))


def _key(bench: dict[str, Any]) -> str:
    return str(bench.get("fullname") or bench["name"])


def _value(bench: dict[str, Any], key: str) -> float | None:
    value = bench.get("extra_info", {}).get(key)
    if value is None:
        return None
    return float(value) / 2**20 if key == "worker_rss_bytes" else float(value)


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _change(new: float | None, old: float | None, higher_better: bool) -> str:
    if new is None or old is None or old == 0:
        return ""
    pct = (new - old) / old * 100
    worse = (pct < 0) if higher_better else (pct > 0)
    mark = " ⚠" if worse and abs(pct) >= 10 else ""
    return f" ({pct:+.0f}%{mark})"


def _machine(doc: dict[str, Any]) -> str:
    info = doc.get("machine_info", {})
    cpu = info.get("cpu", {})
    brand = cpu.get("brand_raw") or info.get("processor") or "?"
    cores = cpu.get("count", "?")
    commit = doc.get("commit_info", {})
    return f"{brand}, {cores} cores, Python {info.get('python_version', '?')}; commit {commit.get('id', '?')[:12]}{' (dirty)' if commit.get('dirty') else ''}; {doc.get('datetime', '')}"


def summarize(doc: dict[str, Any], baseline: dict[str, Any] | None = None) -> str:
    """Return the Markdown summary of one pytest-benchmark JSON document (changes against ``baseline`` if given).

    >>> def bench(backend, p99):
    ...     return {"name": f"test_s[{backend}]", "params": {"backend": backend}, "stats": {"median": p99 / 1000}, "extra_info": {"p99_ms": p99}}
    >>> run = {"benchmarks": [bench("embedded", 2.0), bench("elasticsearch", 9.0)]}
    >>> print(summarize(run, baseline={"benchmarks": [bench("embedded", 1.0)]}))  # doctest: +ELLIPSIS
    Benchmarks on ...
    | benchmark | median s | p99 ms |
    | --- | --- | --- |
    | test_s[elasticsearch] | 0.009 | 9 |
    | test_s[embedded] | 0.002 (+100% ⚠) | 2 (+100% ⚠) |
    <BLANKLINE>
    Elasticsearch ÷ embedded (same run, same trips and queries):
    <BLANKLINE>
    | benchmark | figure | ratio |
    | --- | --- | --- |
    | test_s | p99 ms | 4.50 |
    <BLANKLINE>
    """
    old = {_key(b): b for b in (baseline or {}).get("benchmarks", [])}
    benches = sorted(doc.get("benchmarks", []), key=_key)
    used = [k for k in FIGURES if any(_value(b, k) is not None for b in benches)]
    lines = [f"Benchmarks on {_machine(doc)}", ""]
    if baseline is not None:
        lines += [f"Changes against the baseline of {_machine(baseline)}; ⚠ marks a change of 10% or more for the worse.", ""]
    header = ["benchmark", "median s", *[FIGURES[k][0] for k in used]]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for b in benches:
        prev = old.get(_key(b))
        median = b.get("stats", {}).get("median")
        cells = [b["name"], _fmt(median) + (_change(median, prev.get("stats", {}).get("median"), False) if prev else "")]
        for k in used:
            v = _value(b, k)
            cells.append(_fmt(v) + (_change(v, _value(prev, k), FIGURES[k][1]) if prev else ""))
        lines.append("| " + " | ".join(cells) + " |")
    ratios = _ratios(benches)
    if ratios:
        lines += ["", "Elasticsearch ÷ embedded (same run, same trips and queries):", "", "| benchmark | figure | ratio |", "| --- | --- | --- |"]
        lines += [f"| {name} | {FIGURES[k][0]} | {r:.2f} |" for name, k, r in ratios]
    return "\n".join(lines) + "\n"


def _ratios(benches: Iterable[dict[str, Any]]) -> list[tuple[str, str, float]]:
    pairs: dict[str, dict[str, dict[str, Any]]] = {}
    for b in benches:
        backend = b.get("extra_info", {}).get("backend") or (b.get("params") or {}).get("backend")
        if backend in ("embedded", "elasticsearch"):
            base = b["name"].replace(f"[{backend}]", "").replace(f"-{backend}", "").replace(f"{backend}-", "")
            pairs.setdefault(base, {})[backend] = b
    out = []
    for base, pair in sorted(pairs.items()):
        if len(pair) == 2:
            for k in FIGURES:
                e, s = _value(pair["embedded"], k), _value(pair["elasticsearch"], k)
                if e and s is not None:
                    out.append((base, k, s / e))
    return out


def _run(sizes: str | None, out_dir: Path, save: str | None, compare: str | None, extra: list[str]) -> Path:
    """Run the benchmark suite with pytest-benchmark and return the JSON it wrote."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = out_dir / f"benchmarks-{stamp}.json"
    env = dict(os.environ)
    if sizes:
        env["TRIPSEARCH_BENCH_SIZES"] = sizes
    args = [sys.executable, "-m", "pytest", "benchmarks", "--benchmark-only", f"--benchmark-json={json_path}"]
    if save:
        args.append(f"--benchmark-save={save}")
    if compare:
        args.append(f"--benchmark-compare={compare}")
    proc = subprocess.run(args + extra, cwd=ROOT, env=env)
    if not json_path.exists():
        raise SystemExit(f"the benchmarks wrote no results (pytest exited with {proc.returncode})")
    if proc.returncode != 0:
        print(f"summarize: pytest exited with {proc.returncode}; summarizing what ran", file=sys.stderr)
    return json_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.summarize", description="Markdown summary of pytest-benchmark JSON results.")
    parser.add_argument("json", nargs="?", type=Path, help="pytest-benchmark JSON (--benchmark-json); omit with --run")
    parser.add_argument("--baseline", type=Path, help="an earlier JSON to show each figure's change against")
    parser.add_argument("--run", action="store_true", help="run the benchmark suite first (pytest benchmarks --benchmark-only)")
    parser.add_argument("--sizes", help="with --run: TRIPSEARCH_BENCH_SIZES, e.g. 10000,100000,1000000")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="with --run: where the JSON and summary.md go (default: %(default)s)")
    parser.add_argument("--save", help="with --run: also --benchmark-save=NAME (a baseline under .benchmarks/)")
    parser.add_argument("--compare", help="with --run: also --benchmark-compare=NUM|ID (pytest-benchmark's table against a saved baseline)")
    args, extra = parser.parse_known_args(argv)
    if args.run:
        path = _run(args.sizes, args.out, args.save, args.compare, extra)
    elif args.json is None:
        parser.error("give a JSON file, or --run")
    else:
        path = args.json
    text = summarize(load(path), load(args.baseline) if args.baseline else None)
    if args.run:
        summary = args.out / "summary.md"
        summary.write_text(text)
        print(f"\n{text}\nwrote {path} and {summary}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
