"""`tripsearch capacity`: measure (quick), plan and report end to end; the plan's numbers follow from the measurements."""

from __future__ import annotations

import math
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tripsearch.capacity import Measurements, Targets, make_plan, render_plan
from tripsearch.capacity.data import rate_at_p99
from tripsearch.cli import main
from tripsearch.loadgen import LoadSpec, NotLoopback, check_loopback, run_load

QUICK_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the JSON of one `capacity measure --quick` run (tiny indexes, 1 and 2 workers)."""
    out = tmp_path_factory.mktemp("capacity") / "capacity.json"
    proc = subprocess.run([sys.executable, "-m", "tripsearch.cli", "capacity", "measure", "--quick", "--out", str(out)], capture_output=True, text=True, timeout=QUICK_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[1/" in proc.stderr and "saved" in proc.stderr  # progress is shown
    return out


def test_measure_saves_every_figure_with_the_machine(measured: Path) -> None:
    doc = orjson.loads(measured.read_bytes())
    assert doc["complete"] and not doc["steps_missing"] and not doc["steps_failed"]
    machine = doc["machine"]
    assert machine["cores"] >= 1 and machine["memory_bytes"] > 0 and machine["cpu_model"] and machine["date"]
    meas = Measurements.load(measured)
    probes = meas.probes()
    assert [p["trips"] for p in probes] == [500, 2000]
    for p in probes:
        for name in ("facets", "no_facets"):
            lat = p["latency"][name]
            assert 0 < lat["p50_ms"] <= lat["p99_ms"]
        assert p["open_s"] > 0 and p["rss_delta"] > 0
    curves = meas.curves()
    assert sorted(c.workers for c in curves) == [1, 2]
    for c in curves:
        assert c.saturation > 0 and len(c.points) == 2
        assert all(p["p99_ms"] > 0 for p in c.points)
        assert all(r and r > 0 for r in c.data["worker_rss_bytes"]) and len(c.data["worker_rss_bytes"]) == c.workers
    writes = meas.one("writes", "embedded")
    assert writes is not None and writes["bulk_trips_per_s"] > 0 and writes["single_writes_per_s"] > 0 and writes["follower_apply_trips_per_s"] > 0


def _targets(**kw: Any) -> Targets:
    base: dict[str, Any] = {"trips": 1500, "searches_per_s": 20_000, "writes_per_s": 10, "p99_ms": 5000.0}
    base.update(kw)
    return Targets(**base)


def test_plan_numbers_follow_from_the_measurements(measured: Path) -> None:
    meas = Measurements.load(measured)
    plan = make_plan(meas, _targets())
    assert plan.feasible, plan.warnings
    per_worker = plan.get("searches/s per worker at the p99 target")
    share = plan.get("share of each worker left for searches")
    writes = meas.one("writes", "embedded")
    assert writes is not None
    assert share == pytest.approx(1 - 10 / writes["follower_apply_trips_per_s"], abs=1e-4)
    workers = plan.get("API workers")
    assert workers == math.ceil(20_000 * 1.3 / (per_worker * share))
    cores = meas.machine["usable_cores"]
    assert plan.get("workers per machine") == cores
    assert plan.get("machines") == math.ceil(workers / cores)
    # the per-worker rate is read off the biggest measured curve within the target, per worker
    curve = max((c for c in meas.curves() if c.trips >= 1500), key=lambda c: (-c.trips, c.workers))
    rate, _ = rate_at_p99(curve.points, 5000.0)
    assert rate is not None and per_worker == pytest.approx(rate / curve.workers, rel=1e-3)

    doubled = make_plan(meas, _targets(searches_per_s=40_000))
    assert doubled.get("API workers") / workers == pytest.approx(2.0, rel=0.05)
    more_headroom = make_plan(meas, _targets(headroom=0.6))
    assert more_headroom.get("API workers") > workers

    base, per_trip, _ = meas.worker_memory() or (0.0, 0.0, "")
    assert plan.get("memory per worker") == pytest.approx(1500 * per_trip * 1.3 + base, rel=1e-6)
    assert plan.get("memory per machine") >= cores * plan.get("memory per worker")
    assert all(f.source for f in plan.figures), "every number says where it comes from"
    assert not any(f.projection for f in plan.figures if f.name == "API workers")


def test_plan_beyond_the_measured_sizes_is_a_projection(measured: Path) -> None:
    meas = Measurements.load(measured)
    small = make_plan(meas, _targets(trips=2000))
    big = make_plan(meas, _targets(trips=200_000))
    projected = {f.name for f in big.figures if f.projection}
    assert {"searches/s per worker at the p99 target", "API workers", "memory per worker"} <= projected
    assert "time-scaled" in next(f.source for f in big.figures if f.name == "searches/s per worker at the p99 target")
    # a bigger index is never planned faster, and needs more memory
    assert big.get("searches/s per worker at the p99 target") <= small.get("searches/s per worker at the p99 target")
    assert big.get("memory per worker") > small.get("memory per worker")


def test_plan_refuses_what_cannot_be_met(measured: Path) -> None:
    meas = Measurements.load(measured)
    plan = make_plan(meas, _targets(p99_ms=0.001))
    assert not plan.feasible and plan.get("API workers") is None
    assert any("not reached" in w for w in plan.warnings)
    writes = meas.one("writes", "embedded")
    assert writes is not None
    flood = make_plan(meas, _targets(writes_per_s=max(writes["bulk_trips_per_s"], writes["single_writes_per_s"]) * 2))
    assert not flood.feasible and any("elasticsearch" in w for w in flood.warnings)
    text = render_plan(make_plan(meas, _targets(backend="elasticsearch")))
    assert "no Elasticsearch measurements" in text


def test_plan_and_report_commands(measured: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["capacity", "plan", "--measurements", str(measured), "--trips", "2000000", "--searches-per-s", "5000", "--writes-per-s", "200", "--p99-ms", "50"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "API workers" in text and "machines" in text and "memory per machine" in text
    assert text.count("from: ") >= 10 and "[projection]" in text
    assert "AMD" in text or "cores" in text
    assert main(args + ["--json"]) == 0
    data = orjson.loads(capsys.readouterr().out)
    assert all(f["source"] for f in data["figures"])

    assert main(["capacity", "report", "--measurements", str(measured), "--out-dir", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    machine = Measurements.load(measured).machine
    assert machine["cpu_model"] in report and f"{machine['cores']} cores" in report
    pngs = sorted(tmp_path.glob("*.png"))
    assert {p.name for p in pngs} >= {"latency_vs_trips.png", "throughput_vs_workers.png", "latency_vs_load.png", "memory_vs_trips.png"}
    for png in pngs:
        assert f"]({png.name})" in report
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 100_000
        width, height = struct.unpack(">II", data[16:24])
        assert (width, height) == (800, 500)


def test_plan_without_measurements_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["capacity", "plan", "--measurements", str(tmp_path / "none.json"), "--trips", "10", "--searches-per-s", "1", "--p99-ms", "50"]) == 2
    assert "run `tripsearch capacity measure` first" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["http://10.1.2.3:8000", "http://192.168.0.10", "http://example.com:8000", "https://127.0.0.1:8000", "ftp://127.0.0.1", "http://[2001:db8::1]:80"])
def test_loadgen_refuses_non_loopback_targets(url: str) -> None:
    with pytest.raises(NotLoopback):
        check_loopback(url)
    with pytest.raises(NotLoopback):
        run_load(LoadSpec(url, [("places", "/v1/places?q=Pa", False)], concurrency=1, duration_s=0.1))


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://127.5.0.1:1", "http://[::1]:8000", "http://localhost:8000"])
def test_loadgen_accepts_loopback_targets(url: str) -> None:
    host, port, _ = check_loopback(url)
    assert port > 0 and host


@pytest.mark.parametrize("save", [True, False], ids=["saves", "discards"])
def test_ctrl_c_saves_or_discards_and_says_which(tmp_path: Path, save: bool) -> None:
    out = tmp_path / "capacity.json"
    args = [sys.executable, "-m", "tripsearch.cli", "capacity", "measure", "--quick", "--out", str(out)] + ([] if save else ["--discard-on-interrupt"])
    with subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True) as proc:
        assert proc.stderr is not None
        seen = []
        deadline = time.monotonic() + QUICK_TIMEOUT_S
        for line in proc.stderr:  # interrupt while the fourth step (a probe in its own process) runs
            seen.append(line)
            if "[4/" in line or time.monotonic() > deadline:
                break
        os.kill(proc.pid, signal.SIGINT)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 130, "".join(seen) + rest
    if save:
        assert "saved the 3 finished steps" in rest and "marked incomplete" in rest
        doc = orjson.loads(out.read_bytes())
        assert doc["complete"] is False and len(doc["results"]) == 3 and "probe:embedded:2000" in doc["steps_missing"]
        assert "incomplete" in render_plan(make_plan(Measurements(doc), _targets()))
    else:
        assert "discarded 3 finished steps" in rest and "unchanged" in rest
        assert not out.exists()
    assert not list(tmp_path.glob("*.partial.json"))
