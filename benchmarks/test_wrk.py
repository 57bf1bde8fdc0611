"""``benchmarks/http_wrk.py``, the HTTP throughput measurement with wrk, run for a few seconds on the benchmark data.

Kept in the suite so the command in benchmarks/README.md cannot rot: it
starts a real ``tripsearch serve`` with 2 workers, drives it with Debian's
wrk and must report a run without a failed request. Skipped without wrk;
failed without it when ``CI`` is set (``scripts/install-test-deps`` installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .http_wrk import parse_wrk

SCRIPT = Path(__file__).with_name("http_wrk.py")

WRK_REPORT = """\
Running 15s test @ http://127.0.0.1:18801
  1 threads and 12 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.56ms    2.99ms  39.38ms   73.51%
    Req/Sec     1.79k   146.23     2.05k    72.00%
  Latency Distribution
     50%    6.32ms
     75%    8.09ms
     90%   10.31ms
     99%  850.00us
  26753 requests in 15.00s, 656.17MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   1782.97
Transfer/sec:     43.73MB
"""


def test_parse_wrk() -> None:
    run = parse_wrk(WRK_REPORT)
    assert run == {"rps": 1782.97, "p50_ms": 6.32, "p99_ms": 0.85, "requests": 26753, "errors": 3}
    with pytest.raises(ValueError, match="not a wrk report"):
        parse_wrk("wrk: connection refused")


def test_http_wrk_runs(data_dir: Path) -> None:
    if shutil.which("wrk") is None:
        if os.environ.get("CI"):
            pytest.fail("wrk is missing: scripts/install-test-deps (as root) installs Debian's wrk", pytrace=False)
        pytest.skip("wrk is missing: apt-get install wrk")
    cmd = [sys.executable, str(SCRIPT), str(data_dir), "--runs", "2", "--seconds", "2", "--warmup", "1", "--connections", "4"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = re.findall(r"^\| \d\d:\d\d:\d\d \| ([\d,]+) \| ([\d.]+) / ([\d.]+) ms \| ([\d.]+) ms \|", done.stdout, re.M)
    assert len(rows) == 2, done.stdout
    for rate, p50, p99, cpu in rows:
        assert int(rate.replace(",", "")) > 0 and 0 < float(p50) <= float(p99) and float(cpu) > 0
    assert re.search(r"^median of 2: [\d,]+ searches/s", done.stdout, re.M), done.stdout
