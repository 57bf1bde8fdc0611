"""`tripsearch capacity`: measure (quick), plan and report end to end; the plan's numbers follow from the measurements."""

from __future__ import annotations

import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tripsearch.capacity import FitTargets, Measurements, Targets, load_shared_index, make_fit, make_plan, memory_model, parse_size, render_plan
from tripsearch.capacity.data import rate_at_p99
from tripsearch.capacity.errors import CapacityError
from tripsearch.cli import main
from tripsearch.index.embedded import MERGE_MIN_ROWS, MERGE_RATIO
from tripsearch.capacity.loadgen import LoadSpec, NotLoopback, check_loopback, run_load

from .conftest import ROOT

QUICK_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the JSON of one `capacity measure --quick` run (tiny indexes, 1 and 2 workers)."""
    out = tmp_path_factory.mktemp("capacity") / "capacity.json"
    proc = subprocess.run([sys.executable, "-m", "tripsearch.cli", "capacity", "measure", "--quick", "--out", str(out)], capture_output=True, text=True, timeout=QUICK_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[1/" in proc.stderr and "saved" in proc.stderr  # progress is shown
    return out


def test_a_missing_or_broken_measurement_file_is_named_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(CapacityError, match="^no measurements at .*none.json: run `tripsearch capacity measure` first$"):
        Measurements.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CapacityError, match="^--memory-measurements .*bad.json: not valid JSON \\("):
        load_shared_index(tmp_path / "bad.json")


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
        # PSS splits the shared segment's pages between the workers: never above RSS
        assert all(0 < s["Pss"] <= s["Rss"] and s["Pss_File"] > 0 for s in c.data["worker_smaps"]) and len(c.data["worker_smaps"]) == c.workers
    writes = meas.one("writes", "embedded")
    assert writes is not None and writes["bulk_trips_per_s"] > 0 and writes["single_writes_per_s"] > 0 and writes["follower_apply_trips_per_s"] > 0
    assert writes["delta_trips"] == writes["bulk_trips"] and writes["delta_bytes_per_trip"] >= writes["delta_array_bytes_per_trip"] > 0
    assert all(d["segment_bytes"] > 0 for d in meas.data_dirs()) and all(c.data["segment_bytes"] > 0 for c in curves)


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
    # the plan shows the per-worker rate rounded to 0.1 and divides by the rate itself: near a whole number of workers
    # the shown rate can round the quotient across it (18.0003 from 1445.0 where the plan had 17.9998)
    fewest, most = (math.ceil(20_000 * 1.3 / ((per_worker + bound) * share)) for bound in (0.05, -0.05))
    assert fewest <= workers <= most and most - fewest <= 1
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

    # memory, from this run's own figures: the segment once, then per worker on the machine its PSS less the segment and the delta's bound
    big = max(meas.data_dirs(), key=lambda d: d["trips"])
    per_trip = big["segment_bytes"] / big["trips"]
    private = max((sum(s["Pss"] for s in c.data["worker_smaps"]) - min(sum(s["Pss_File"] for s in c.data["worker_smaps"]), c.data["segment_bytes"])) / c.workers for c in meas.curves())
    planned = 1500 * 1.3
    delta = max(50_000, math.ceil(0.25 * planned)) * writes["delta_bytes_per_trip"]
    on_machine = min(cores, workers)
    assert plan.get("memory per worker (private)") == pytest.approx(private + delta, abs=1)
    assert plan.get("memory per machine") == pytest.approx(planned * per_trip + on_machine * (private + delta), abs=1)
    read_only = make_plan(meas, _targets(writes_per_s=0))
    assert read_only.get("memory per machine") == pytest.approx(planned * per_trip + on_machine * private, abs=1)
    assert all(f.source for f in plan.figures), "every number says where it comes from"
    assert not any(f.projection for f in plan.figures if f.name == "API workers")


def test_plan_beyond_the_measured_sizes_is_a_projection(measured: Path) -> None:
    meas = Measurements.load(measured)
    small = make_plan(meas, _targets(trips=2000))
    big = make_plan(meas, _targets(trips=200_000))
    projected = {f.name for f in big.figures if f.projection}
    assert {"searches/s per worker at the p99 target", "API workers", "memory per machine", "segment in the page cache (shared)"} <= projected
    assert "time-scaled" in next(f.source for f in big.figures if f.name == "searches/s per worker at the p99 target")
    # a bigger index is never planned faster, and needs more memory
    assert big.get("searches/s per worker at the p99 target") <= small.get("searches/s per worker at the p99 target")
    assert big.get("memory per machine") > small.get("memory per machine")


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


@pytest.fixture(scope="module")
def shared_run(measured: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the JSON of the shared-index benchmark (1 and 2 workers, smaps_rollup of each) over a copy of the quick run's 2,000 trips."""
    source = Path(orjson.loads(measured.read_bytes())["results"]["data:2000"]["path"])
    data = tmp_path_factory.mktemp("shared") / "data"
    shutil.copytree(source, data)  # the benchmark writes a merge into the directory: never into the shared cache
    out = data.parent / "shared_index.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.shared_index", str(data), "--workers", "1,2", "--queries", "60", "--restarts", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=QUICK_TIMEOUT_S, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_memory_model_follows_from_the_shared_index_run(measured: Path, shared_run: Path) -> None:
    meas = Measurements.load(measured)
    doc = orjson.loads(shared_run.read_bytes())
    model = memory_model(meas, load_shared_index(shared_run), shared_run)
    private = max(w["with_index"]["Pss"] - min(w["with_index"]["Pss_File"] - w["after_imports"]["Pss_File"], doc["segment_bytes"] / row["workers"])
                  for row in doc["memory"] for w in row["per_worker"])
    writes = meas.one("writes", "embedded")
    assert writes is not None
    assert model.segment_bytes_per_trip == doc["segment_bytes"] / doc["trips"]
    assert model.worker_private_bytes == private and model.delta_bytes_per_trip == writes["delta_bytes_per_trip"]
    # the model is not below what was measured: the segment in full, each worker at the largest private memory seen
    for row in doc["memory"]:
        assert model.machine_bytes(doc["trips"], row["workers"], writes=False) >= row["pss_total"]

    plan = make_plan(meas, _targets(trips=3_000_000, writes_per_s=10, workers_per_machine=2), memory=model)
    planned = 3_000_000 * 1.3
    rows = max(MERGE_MIN_ROWS, math.ceil(MERGE_RATIO * planned))
    assert rows == math.ceil(MERGE_RATIO * planned)  # at 3M trips the ratio, not the floor, bounds the delta
    assert plan.get("workers per machine") == 2
    assert plan.get("segment in the page cache (shared)") == pytest.approx(planned * model.segment_bytes_per_trip, abs=1)
    assert plan.get("delta bound per worker") == pytest.approx(rows * writes["delta_bytes_per_trip"], abs=1)
    expected = planned * model.segment_bytes_per_trip + 2 * (private + rows * writes["delta_bytes_per_trip"])
    assert plan.get("memory per machine") == pytest.approx(expected, abs=1)
    # one more worker adds its private memory only, not another copy of the index
    three = make_plan(meas, _targets(trips=3_000_000, writes_per_s=10, workers_per_machine=3), memory=model)
    assert three.get("memory per machine") - plan.get("memory per machine") == pytest.approx(private + rows * writes["delta_bytes_per_trip"], abs=2)


@pytest.mark.parametrize("writes_per_s", [0.0, 10.0], ids=["read-only", "writes"])
@pytest.mark.parametrize("memory", ["300MiB", "2GiB", "24GiB", "1TiB"])
@pytest.mark.parametrize("workers", [1, 2, 8])
def test_trips_that_fit_answers_the_inverse_question(measured: Path, shared_run: Path, memory: str, workers: int, writes_per_s: float) -> None:
    meas = Measurements.load(measured)
    model = memory_model(meas, load_shared_index(shared_run), shared_run)
    size = parse_size(memory)
    writes = writes_per_s > 0
    most = model.trips_that_fit(size, workers, writes)
    if most == 0:
        assert model.machine_bytes(0, workers, writes) > size or model.machine_bytes(1, workers, writes) > size
    else:
        assert model.machine_bytes(most, workers, writes) <= size < model.machine_bytes(most + 1, workers, writes)
    fit = make_fit(meas, FitTargets(size, workers, writes_per_s), model)
    trips = fit.get("trips that fit")
    assert trips == math.floor(most / 1.3)
    if trips:
        assert fit.feasible and fit.get("memory per machine") <= size
        # the plan for that many trips on that many workers asks for no more than the memory given
        plan = make_plan(meas, _targets(trips=trips, writes_per_s=writes_per_s, workers_per_machine=workers, searches_per_s=1), memory=model)
        assert plan.get("memory per machine") <= size
    else:
        assert not fit.feasible and any("before any trip" in w for w in fit.warnings)


def test_plan_memory_command(measured: Path, shared_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["capacity", "plan", "--measurements", str(measured), "--memory-measurements", str(shared_run), "--memory", "24GiB", "--workers", "2"]
    assert main(args) == 0
    text = capsys.readouterr().out
    model = memory_model(Measurements.load(measured), load_shared_index(shared_run), shared_run)
    trips = math.floor(model.trips_that_fit(24 * 2**30, 2, writes=False) / 1.3)
    assert "trips that fit" in text and f"{trips:,} trips" in text and "memory per machine" in text
    assert main(args + ["--writes-per-s", "20", "--json"]) == 0
    data = orjson.loads(capsys.readouterr().out)
    figures = {f["name"]: f for f in data["figures"]}
    assert figures["trips that fit"]["value"] == math.floor(model.trips_that_fit(24 * 2**30, 2, writes=True) / 1.3) < trips
    assert all(f["source"] for f in data["figures"])


@pytest.mark.parametrize(("args", "says"), [
    (["--memory", "24XB", "--workers", "2"], "--memory: expected a size"),
    (["--memory", "0GiB", "--workers", "2"], "--memory: the size must be above 0"),
    (["--memory", "24GiB"], "--memory needs --workers"),
    (["--memory", "24GiB", "--workers", "0"], "--workers must be at least 1"),
    (["--memory", "24GiB", "--workers", "2", "--trips", "1000"], "give one of them"),
    (["--memory", "24GiB", "--workers", "2", "--p99-ms", "50"], "--p99-ms go with --trips"),
    (["--memory", "24GiB", "--workers", "2", "--backend", "elasticsearch"], "--memory answers for the embedded backend"),
    (["--trips", "1000"], "plan needs --searches-per-s, --p99-ms"),
    (["--trips", "1000", "--searches-per-s", "10", "--p99-ms", "50", "--workers", "0"], "--workers must be at least 1"),
    (["--memory", "24GiB", "--workers", "2", "--memory-measurements", "MISSING"], "no such file"),
    (["--memory", "24GiB", "--workers", "2", "--memory-measurements", "NOT_A_RUN"], "not a shared-index benchmark result"),
])
def test_plan_memory_errors_name_the_option_and_the_reason(measured: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str) -> None:
    (tmp_path / "NOT_A_RUN").write_bytes(orjson.dumps({"trips": 10, "memory": []}))
    args = [str(tmp_path / a) if a in ("MISSING", "NOT_A_RUN") else a for a in args]
    assert main(["capacity", "plan", "--measurements", str(measured), *args]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


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


def test_report_without_matplotlib_names_the_extra(tmp_path: Path) -> None:
    # sys.modules[name] = None is how Python makes a module unimportable: as on an install without the extra.
    script = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from tripsearch.cli import main\n"
        f"sys.exit(main(['capacity', 'report', '--measurements', {str(ROOT / 'benchmarks' / 'results' / 'capacity.json')!r}, '--out-dir', {str(tmp_path)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "pip install 'tripsearch[capacity]'" in done.stderr and "Traceback" not in done.stderr
