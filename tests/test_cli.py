"""The command line: fixtures, index, search (table and JSON), errors without tracebacks."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tripsearch.cli import main

from .conftest import FIXTURES


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tripsearch.cli", *args], capture_output=True, text=True, timeout=300)


def test_fixtures_are_deterministic(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["fixtures", "--trips", "30", "--seed", "3"]) == 0
    first = capsysbinary.readouterr().out
    assert main(["fixtures", "--trips", "30", "--seed", "3"]) == 0
    assert capsysbinary.readouterr().out == first
    assert len(first.splitlines()) == 30


def test_index_then_search(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    bad = tmp_path / "mixed.ndjson"
    lines = (FIXTURES / "trips-200.ndjson").read_bytes().splitlines()
    bad.write_bytes(b"\n".join(lines[:50] + [b'{"id": "x"}', b"", b"not json"] + lines[50:]) + b"\n")
    assert main(["index", str(bad), "--data", str(data), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "stored 200, unchanged 0, rejected 2" in out
    assert "line 51: rejected" in err and "line 53: rejected" in err

    trip = orjson.loads(lines[0])
    a, b = trip["stops"][0], trip["stops"][-1]
    args = ["search", "--from", f"{a['lat']},{a['lon']}", "--to", f"{b['lat']},{b['lon']}", "--date", a["time"][:10], "--data", str(data)]
    assert main(args + ["--json"]) == 0
    result = orjson.loads(capsys.readouterr().out)
    assert trip["id"] in [h["id"] for h in result["trips"]] or trip["status"] != "published"
    assert set(result) >= {"total", "trips", "facets", "next_cursor"}
    assert main(args) == 0
    table = capsys.readouterr().out
    assert f"{result['total']} trips match" in table
    assert "dates:" in table and "time of day:" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "--from", "95,2", "--to", "45,4", "--date", "2026-12-01"], "from.lat"),
        (["search", "--from", "48,2", "--to", "45,4", "--date", "tomorrow"], "date"),
        (["search", "--from", "48,2", "--to", "45,4"], "--date"),
        (["index", "/no/such/file.ndjson"], "no such file"),
        (["search", "--from", "48,2", "--to", "45,4", "--date", "2026-12-01", "--sort", "best"], "--sort"),
    ],
)
def test_wrong_arguments_exit_nonzero_without_traceback(tmp_path: Path, args: list[str], message: str) -> None:
    done = run(*args, *(["--data", str(tmp_path / "d")] if args[0] == "search" and "--date" in args else []))
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_help_everywhere() -> None:
    for command in ([], ["fixtures"], ["index"], ["search"], ["serve"], ["stats"]):
        done = run(*command, "--help")
        assert done.returncode == 0 and "usage:" in done.stdout


def test_index_progress_in_a_log_is_a_plain_line_every_interval(tmp_path: Path) -> None:
    """Not on a terminal: whole lines (no carriage returns), with trips, trips/s, and share and ETA when the input size is known."""
    trips = FIXTURES / "trips-200.ndjson"
    done = run("index", str(trips), "--data", str(tmp_path / "a"), "--batch-size", "20", "--progress-interval", "0.001")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("indexing:")]
    assert len(lines) >= 2 and "\r" not in done.stderr
    assert re.fullmatch(r"indexing: [\d,]+ trips, [\d,]+ trips/s, \d+% of [\d.,]+ MB, ETA (\d+:)?\d+:\d\d, elapsed \d+:\d\d", lines[-1]), lines[-1]
    counts = [int(line.split()[1].replace(",", "")) for line in lines]
    assert counts == sorted(counts) and counts[-1] <= 200

    # from a pipe the size is unknown: no share, no ETA
    piped = subprocess.run(
        f"cat {trips} | {sys.executable} -m tripsearch.cli index - --data {tmp_path / 'b'} --batch-size 20 --progress-interval 0.001",
        shell=True, capture_output=True, text=True, timeout=300,
    )
    assert piped.returncode == 0, piped.stderr
    lines = [line for line in piped.stderr.splitlines() if line.startswith("indexing:")]
    assert lines and all("ETA" not in line and "%" not in line for line in lines)
    assert "stored 200" in piped.stdout
    # ... unless told how many trips to expect
    told = subprocess.run(
        f"cat {trips} | {sys.executable} -m tripsearch.cli index - --data {tmp_path / 'e'} --batch-size 20 --progress-interval 0.001 --total 200",
        shell=True, capture_output=True, text=True, timeout=300,
    )
    lines = [line for line in told.stderr.splitlines() if line.startswith("indexing:")]
    assert lines and re.fullmatch(r"indexing: [\d,]+ trips, [\d,]+ trips/s, \d+% of 200, ETA (\d+:)?\d+:\d\d, elapsed \d+:\d\d", lines[-1]), lines

    quiet = run("index", str(trips), "--data", str(tmp_path / "c"), "--progress-interval", "0.001", "--quiet")
    assert quiet.returncode == 0 and "indexing" not in quiet.stderr


def test_index_progress_on_a_terminal_is_a_bar_redrawn_in_place(tmp_path: Path) -> None:
    """stderr a terminal (a pseudo-terminal here): the bar is redrawn with carriage returns and shows trips/s and the ETA."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tripsearch.cli", "index", str(FIXTURES / "trips-200.ndjson"), "--data", str(tmp_path / "d"), "--batch-size", "20"],
            stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
        )
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        out, _ = proc.communicate(timeout=300)
    finally:
        os.close(master)
    assert proc.returncode == 0
    text = seen.decode().replace("\r\n", "\n")  # the terminal turns each newline into CR LF
    assert "\r" in text and "indexing [" in text and "indexing:" not in text
    final = text.rsplit("\r", 1)[-1].strip()
    assert re.search(r"indexing \[#{24}\] 200 trips, [\d,]+ trips/s, 100% of [\d.,]+ MB, ETA 0:00", final), final
    assert b"stored 200" in out


@pytest.mark.parametrize(
    ("variable", "value", "command"),
    [
        ("TRIPSEARCH_PORT", "abc", ["serve"]),
        ("TRIPSEARCH_PORT", "70000", ["serve"]),
        ("TRIPSEARCH_WORKERS", "abc", ["serve"]),
        ("TRIPSEARCH_WORKERS", "0", ["serve"]),
        ("TRIPSEARCH_WORKER_BATCH_TIMEOUT", "soon", ["worker"]),
        ("TRIPSEARCH_WORKER_WRITE_IN", "elsewhere", ["worker"]),
    ],
)
def test_a_bad_environment_variable_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str, command: list[str]
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as help_exit:  # --help still works, and shows the value
        main([*command, "--help"])
    assert help_exit.value.code == 0 and "usage:" in capsys.readouterr().out
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and variable in err and repr(value) in err, err


@pytest.mark.parametrize("command", [["search", "--from", "48.85,2.35", "--to", "45.76,4.83", "--date", "2026-12-01"], ["stats"], ["serve"]])
def test_only_index_creates_a_data_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    missing = tmp_path / "mistyped"
    assert main([*command, "--data", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"no data directory {missing}" in err and f"tripsearch index FILE.ndjson --data {missing}" in err, err
    assert not missing.exists()
    if command[0] != "serve":  # serve starts on an existing empty directory, which the API can fill
        missing.mkdir()
        assert main([*command, "--data", str(missing)]) == 2
        assert f"no index in {missing}" in capsys.readouterr().err
        assert list(missing.iterdir()) == []


def test_token_is_accepted_by_the_api_s_verifier(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from api.auth import TokenVerifier, scopes_of
    from api.settings import Settings

    monkeypatch.delenv("TRIPSEARCH_JWT_SECRET", raising=False)
    assert main(["token", "--scope", "trips:write"]) == 2
    assert "TRIPSEARCH_JWT_SECRET is not set" in capsys.readouterr().err
    monkeypatch.setenv("TRIPSEARCH_JWT_SECRET", "a-development-secret-of-32-bytes-or-more")
    monkeypatch.setenv("TRIPSEARCH_JWT_AUDIENCE", "tripsearch")
    assert main(["token", "--scope", "trips:write", "--scope", "alerts:write", "--sub", "u-7"]) == 0
    token = capsys.readouterr().out.strip()
    claims = TokenVerifier(Settings.from_env()).claims(token)
    assert scopes_of(claims) == {"trips:write", "alerts:write"} and claims["sub"] == "u-7" and claims["aud"] == "tripsearch"


def test_fixtures_start_tomorrow_by_default(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    import datetime as dt

    tomorrow = dt.date.today() + dt.timedelta(days=1)
    assert main(["fixtures", "--trips", "20", "--jobs", "1"]) == 0
    days = {orjson.loads(line)["departure_time"][:10] for line in capsysbinary.readouterr().out.splitlines()}
    assert days and all(tomorrow <= dt.date.fromisoformat(d) < tomorrow + dt.timedelta(days=30) for d in days), days
    with pytest.raises(SystemExit):
        main(["fixtures", "--help"])
    assert f"(default: tomorrow, {tomorrow.isoformat()})" in capsysbinary.readouterr().out.decode()


def test_an_index_applied_behind_the_writes_answers_as_the_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`tripsearch index` stores each batch and applies it to the index in a thread while the next is stored: the directory it leaves holds every trip's latest version, in its segment, and answers as the reference."""
    import zlib

    import importlib

    cli_main = importlib.import_module("tripsearch.cli.main")  # the module: the package exports its function `main` under that name
    monkeypatch.setattr(cli_main, "INDEX_BEHIND_TRIPS", 14)  # two batches of 7 ahead at most: the load waits for the thread

    import numpy as np

    import tripsearch

    from .geometry import REGIONS, random_queries, random_trips
    from .test_reference import check_against_reference, latest_versions

    trips = [t for region in sorted(REGIONS) for t in random_trips(region, 120, seed=zlib.crc32(region.encode()) % 1000)]
    rng = np.random.default_rng(5)
    # new versions (another price) batches after the first, and stale versions sent after those
    newer = [dict(t, version=t["version"] + 1, price={"amount": float(rng.integers(5, 60)), "currency": t["price"]["currency"]}) for t in trips if rng.random() < 0.3]
    stale = [dict(t, price={"amount": 1.0, "currency": t["price"]["currency"]}) for t in trips if rng.random() < 0.1]
    sent = trips + newer + stale
    source = tmp_path / "trips.ndjson"
    source.write_bytes(b"\n".join(orjson.dumps(t) for t in sent) + b"\n")
    data = tmp_path / "data"
    assert main(["index", str(source), "--data", str(data), "--batch-size", "7", "--quiet"]) == 0
    assert f"stored {len(trips) + len(newer)}, unchanged {len(stale)}, rejected 0" in capsys.readouterr().out
    engine = tripsearch.open(data, refresh_interval=0, snapshot_on_close=False)
    try:
        stats = engine.stats()
        assert (stats["trips"], stats["delta_rows"]) == (len(trips), 0) and stats["segment"]
        live = latest_versions(sent)
        assert sum(engine.get(t["id"])["version"] == t["version"] for t in live) == len(trips)
        assert check_against_reference(engine, live, random_queries(trips, 300, seed=9)) > 50
    finally:
        engine.close()


def test_an_error_of_the_index_thread_stops_the_load_at_its_next_batch(tmp_path: Path) -> None:
    """The thread that applies `tripsearch index`'s batches hands its error to the load, which stops at its next batch; what was stored stays.

    The error is injected (a refresh that fails once, as a refresh that
    found the store unreadable would): nothing here can make a real one fail on cue.
    """
    import tripsearch
    from tripsearch.cli.main import _IndexBehind
    from tripsearch.errors import BackendUnavailable

    engine = tripsearch.open(tmp_path / "data", refresh_interval=0)
    lines = (FIXTURES / "trips-200.ndjson").read_bytes().splitlines()
    refreshes = []

    class FailsOnSecondRefresh:
        def refresh(self) -> None:
            refreshes.append(1)
            if len(refreshes) == 2:
                raise BackendUnavailable("cannot read the change feed: injected")
            engine.refresh()

    behind = _IndexBehind(FailsOnSecondRefresh(), batches=1)  # type: ignore[arg-type]
    stopped_at = None
    try:
        for i in range(0, len(lines), 20):
            behind.check()  # as the load does before each batch
            engine.upsert(lines[i : i + 20])
            behind.written()
            if len(refreshes) >= 2:
                behind._thread.join(0.1)  # let the failed refresh land before the next batch asks
    except BackendUnavailable as exc:
        stopped_at = i
        assert "injected" in str(exc)
    behind.close()  # the error was raised once, by the batch it stopped
    assert stopped_at is not None and stopped_at < len(lines) - 20, "the load went on after the thread's error"
    engine.refresh()
    stored = {orjson.loads(line)["id"] for line in lines[:stopped_at]}  # the batch it stopped was not written
    assert engine.stats()["trips"] == len(stored)  # nothing stored before the stop is lost
    engine.close()
