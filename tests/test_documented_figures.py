"""The measured figures that README.md and benchmarks/README.md quote are those of the latest results files.

A figure copied by hand drifts from the run it came from; these tests read
``benchmarks/results/*.json`` (written by the benchmark commands) and find
each headline figure, formatted as the documents write it, in its place.
Re-running a benchmark therefore fails this test until the documents say
what the new run measured.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from benchmarks.hot_corridor import format_table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = (ROOT / "README.md").read_text()
BENCHMARKS = (ROOT / "benchmarks" / "README.md").read_text()
MIB = 2**20


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RESULTS / name).read_text())
    return data


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)


SHARED = _load("shared_index_1m.json")
WARM = [r for r in SHARED["restarts"] if not r["cold"]]
COLD = [r for r in SHARED["restarts"] if r["cold"]]


def _table_row(text: str, label: str) -> str:
    rows = [line for line in text.splitlines() if line.startswith(f"| {label} |")]
    assert len(rows) == 1, f"no single table row {label!r}"
    return rows[0]


def test_shared_index_figures_of_benchmarks_readme() -> None:
    row = _table_row(BENCHMARKS, "segment file")
    assert f"{SHARED['segment_bytes'] / MIB:,.0f} MiB = {SHARED['segment_bytes_per_trip']:,} bytes/trip" in row
    assert f"SQLite: {SHARED['sqlite_bytes_per_trip']:,} bytes/trip" in row
    row = _table_row(BENCHMARKS, "restart, open to first answer, warm (three runs)")
    assert " / ".join(f"{r['first_answer_s']:.2f}" for r in WARM) in row
    assert f"{COLD[0]['first_answer_s']:.2f} s" in _table_row(BENCHMARKS, "restart, cold (the segment's pages dropped first)")
    row = _table_row(BENCHMARKS, "p99 of the first 50 searches / of the next 2,000 (warm)")
    assert ", ".join(f"{r['first50_p99_ms']:.1f} / {r['steady_p99_ms']:.1f}" for r in WARM) + " ms" in row
    assert f"{COLD[0]['first50_p99_ms']:.1f} / {COLD[0]['steady_p99_ms']:.1f} ms" in _table_row(BENCHMARKS, "the same, cold")
    assert f"{SHARED['verify_s']:.2f} s" in _table_row(BENCHMARKS, "checksums of the whole segment (background check after open)")
    assert _table_row(BENCHMARKS, "merge: one changed trip, new segment of 1M").startswith(f"| merge: one changed trip, new segment of 1M | {SHARED['merge_s']:.1f} s")


def test_shared_index_10m_figures_of_benchmarks_readme() -> None:
    """The 10,000,000-trip rows: the first restart comes right after the benchmark's merge, then two with the segment cached, then the cold one."""
    run = _load("shared_index_10m.json")
    after_merge, *warm = [r for r in run["restarts"] if not r["cold"]]
    (cold,) = [r for r in run["restarts"] if r["cold"]]
    row = _table_row(BENCHMARKS, "mapped in ahead (10:44, commit below): segment cached, two restarts")
    assert " / ".join(f"{r['first_answer_s']:.2f}" for r in warm) + " s" in row
    assert ", ".join(f"{r['first50_p99_ms']:.0f} / {r['steady_p99_ms']:.0f}" for r in warm) + " ms" in row
    for label, r in (("mapped in ahead, first restart after the merge", after_merge), ("mapped in ahead, cold", cold)):
        row = _table_row(BENCHMARKS, label)
        assert f"| {r['open_s']:.2f} s | {r['first_answer_s']:.1f} s | {r['first50_p99_ms']:.0f} / {r['steady_p99_ms']:.0f} ms |" in row
    two = next(m for m in run["memory"] if m["workers"] == 2)
    row = _table_row(BENCHMARKS, "mapped in ahead")
    assert f"{two['rss_total'] / MIB:,.0f} / **{two['pss_total'] / MIB:,.0f} MiB**" in row and f"**{two['pss_index_bytes_per_trip']:,} bytes/trip**" in row
    assert f"segment {run['segment_bytes'] / MIB:,.0f} MiB, **{run['segment_bytes_per_trip']:,} bytes/trip**" in _one_line(BENCHMARKS)


def test_shared_index_figures_of_readme() -> None:
    text = _one_line(README)
    warm = sorted(r["first_answer_s"] for r in WARM)
    assert f"{warm[0]:.1f}-{warm[-1]:.1f} s from open to the first answer at {SHARED['trips']:,} trips" in text
    assert f"({COLD[0]['first_answer_s']:.1f} s with the file's pages cold)" in text
    assert f"{SHARED['segment_bytes_per_trip']:,} bytes per trip of segment" in text


@pytest.mark.parametrize("names", [("hot_corridor_300.json", "hot_corridor_3000.json"), ("hot_corridor_1m.json",), ("hot_corridor_anchored.json",),
                                   ("hot_corridor_alone_a.json",), ("hot_corridor_alone_b.json",)])
def test_hot_corridor_tables_of_benchmarks_readme(names: tuple[str, ...]) -> None:
    """Every row of the latest hot-corridor runs is in benchmarks/README.md as the benchmark prints it."""
    runs = [run for name in names for run in _load(name)["runs"]]
    rows = format_table(runs).splitlines()[2:]
    assert len(rows) == sum(6 + len(run.get("embedded_alone", [])) for run in runs)
    missing = [row for row in rows if row not in BENCHMARKS.splitlines()]
    assert not missing, missing


@pytest.mark.parametrize("name", sorted(p.name for p in RESULTS.glob("*.json")))
def test_results_files_are_json_objects(name: str) -> None:
    assert isinstance(_load(name), dict)


def test_capacity_fit_of_readme(capsys: pytest.CaptureFixture[str]) -> None:
    from tripsearch.cli import main

    # README: "`tripsearch capacity plan --memory 24GiB --workers 2` answers ... (about 12M at ...)"
    assert main(["capacity", "plan", "--memory", "24GiB", "--workers", "2", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    fit = next(f for f in plan["figures"] if f["name"] == "trips that fit")
    text = _one_line(README)
    assert "`tripsearch capacity plan --memory 24GiB --workers 2` answers how many trips fit on a machine" in text
    assert f"(about {fit['value'] / 1e6:.0f}M at {SHARED['segment_bytes_per_trip']:,} bytes per trip of segment, with {plan['targets']['headroom']:.0%} headroom" in text
