"""The command line: fixtures, index, search (table and JSON), errors without tracebacks."""

from __future__ import annotations

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
