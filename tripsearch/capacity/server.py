"""``tripsearch serve`` under measurement: started on a free loopback port, waited for, its workers found and stopped."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ..testing.server import ServerProcess, start_server, worker_pids
from .errors import CapacityError

__all__ = ["ApiServer", "machine_cpu"]


class ApiServer:
    """One ``tripsearch serve`` on a free loopback port, in a process group of its own (stopped by its id)."""

    def __init__(self, workers: int, data: str | None = None, backend: str | None = None) -> None:
        self.workers = workers
        self.args = ["--workers", str(workers), *(["--backend", backend] if backend else ["--data", str(data)])]
        self.url = ""
        self.pids: list[int] = []
        self.ready_s: float | None = None
        self._server: ServerProcess | None = None
        self._logs = Path(tempfile.mkdtemp(prefix="tripsearch-capacity-serve-"))

    def start(self, timeout_s: float) -> None:
        """Start the server and wait until every worker answers /ready (see :func:`~tripsearch.testing.server.worker_pids`)."""
        started = time.perf_counter()
        try:
            self._server = start_server(lambda port: [sys.executable, "-m", "tripsearch.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *self.args], self._logs, name="serve", timeout_s=timeout_s)
            self.pids = worker_pids(self._server, self.workers, timeout_s=max(1.0, timeout_s - (time.perf_counter() - started)), poll_s=0.2)
        except AssertionError as e:
            raise CapacityError(f"tripsearch serve: {e}") from None
        self.url = self._server.url
        self.ready_s = time.perf_counter() - started

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        shutil.rmtree(self._logs, ignore_errors=True)


def machine_cpu() -> tuple[float, float] | None:
    """Return (busy, total) CPU seconds of the whole machine so far, from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / tick, sum(fields[:8]) / tick
