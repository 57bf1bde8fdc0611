"""``benchmarks/index_load.py``, `tripsearch index` timed in fresh processes, run on 200 trips so the command in benchmarks/README.md cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent


def test_index_load_times_each_checkout_in_turn(tmp_path: Path) -> None:
    """One round against this checkout as the other tree: two runs, each of every trip, with its CPU and memory."""
    source = ROOT / "fixtures" / "trips-200.ndjson"
    out = tmp_path / "runs.json"
    subprocess.run([sys.executable, "-m", "benchmarks.index_load", str(source), "--tree", str(ROOT), "--rounds", "1", "--json", str(out)], cwd=ROOT, check=True, timeout=300, capture_output=True)
    runs = orjson.loads(out.read_bytes())["runs"]
    assert [r["trips"] for r in runs] == [200, 200]
    assert all(r["trips_per_s"] > 0 and r["user_s"] > 0 and r["max_rss_mb"] > 50 for r in runs)
