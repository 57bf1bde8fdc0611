"""``tripsearch serve`` under measurement: started on a free loopback port, waited for, its workers found and stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .errors import CapacityError

__all__ = ["free_port", "ApiServer", "machine_cpu"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ApiServer:
    """One ``tripsearch serve`` on a free loopback port, in a process group of its own (stopped by its id)."""

    def __init__(self, workers: int, data: str | None = None, backend: str | None = None) -> None:
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile("w+b", prefix="tripsearch-capacity-serve-", suffix=".log", delete=False)
        args = [sys.executable, "-m", "tripsearch.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)]
        args += ["--backend", backend] if backend else ["--data", str(data)]
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pids: list[int] = []
        self.ready_s: float | None = None

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until every worker answers /ready (each connection stays with one worker: /health names it)."""
        import httpx

        ready: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(ready) < self.workers:
            if self.proc.poll() is not None:
                raise CapacityError(f"tripsearch serve exited with {self.proc.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                raise CapacityError(f"tripsearch serve: {len(ready)} of {self.workers} workers ready after {timeout_s:.0f} s: {self.tail()}")
            try:
                with httpx.Client(base_url=self.url, timeout=10) as client:
                    pid = int(client.get("/health").json()["pid"])
                    if client.get("/ready").status_code == 200:
                        ready.add(pid)
                        continue
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        self.ready_s = time.perf_counter() - self.started
        self.pids = sorted(ready)

    def tail(self) -> str:
        self.log.flush()
        text = Path(self.log.name).read_bytes()[-2000:].decode(errors="replace").strip()
        return " | ".join(text.splitlines()[-4:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        self.log.close()
        os.unlink(self.log.name)


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
