"""Start a server process on a free loopback port and wait until it answers (and, for several workers, until each does)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import urlsplit

__all__ = ["ServerProcess", "free_port", "start_server", "worker_pids"]

ATTEMPTS = 3


@dataclass
class ServerProcess:
    """A running server: its address, process (the leader of its own session) and log."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """SIGTERM, then SIGKILL the whole process group if it has not stopped within 20 s."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL the whole process group (the server and anything it started)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 now (another process may take it before the server binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    command: Callable[[int], list[str]],
    log_dir: Path,
    *,
    name: str = "server",
    ready_path: str = "/ready",
    ready_status: int = 200,
    ready: Callable[[ServerProcess], bool] | None = None,
    timeout_s: float = 120.0,
    poll_s: float = 0.1,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ServerProcess:
    """Run ``command(port)`` in a session of its own and return once ``GET ready_path`` answers ``ready_status``.

    ``ready``, when given, is the check instead: a function of the started
    server, true once it is ready. A process that exits before it is ready
    most likely lost its port between :func:`free_port` and its bind: it is
    started again on another port, up to three times. A server that runs
    without getting ready within ``timeout_s`` is killed and the error
    carries the tail of its log.
    """
    def answers(server: ServerProcess) -> bool:
        return _get(server, ready_path)[0][0] == ready_status

    check, what = (answers, f"{ready_path} did not answer {ready_status}") if ready is None else (ready, "the server was not ready")
    for attempt in range(ATTEMPTS):
        port = free_port()
        log = log_dir / f"{name}-{attempt}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(command(port), env=None if env is None else dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        server = ServerProcess(f"http://127.0.0.1:{port}", process, log)
        try:
            started = _wait(server, check, lambda: what, timeout_s, poll_s)
        except BaseException:
            server.kill()
            raise
        if started:
            return server
        server.kill()
    raise AssertionError(f"the server did not start ({ATTEMPTS} attempts):\n{log.read_text()[-3000:]}")


def worker_pids(server: ServerProcess, workers: int, *, ready_path: str = "/ready", timeout_s: float = 120.0, poll_s: float = 0.1) -> list[int]:
    """Wait until ``workers`` worker processes of a tripsearch API each answer ``GET ready_path`` 200; return their process ids.

    Each check asks ``/health`` (which names the worker by its ``pid``) and
    then ``ready_path`` on one fresh connection: one worker serves a
    connection from start to end, and the next connection may go to another.
    """
    ready: set[int] = set()

    def check(server: ServerProcess) -> bool:
        (health_status, health), (status, _) = _get(server, "/health", ready_path)
        if health_status == 200 and status == 200:
            ready.add(int(json.loads(health)["pid"]))
        return len(ready) >= workers

    if not _wait(server, check, lambda: f"only {len(ready)} of {workers} workers answered {ready_path}", timeout_s, poll_s):
        raise AssertionError(f"the server exited with {server.process.returncode}:\n{server.log.read_text()[-3000:]}")
    return sorted(ready)


def _get(server: ServerProcess, *paths: str) -> list[tuple[int, bytes]]:
    """GET ``paths`` in turn on one new connection; return the status and body of each."""
    address = urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=10)
    try:
        answers = []
        for path in paths:
            connection.request("GET", path)
            response = connection.getresponse()
            answers.append((response.status, response.read()))
        return answers
    finally:
        connection.close()


def _wait(server: ServerProcess, ready: Callable[[ServerProcess], bool], what: Callable[[], str], timeout_s: float, poll_s: float) -> bool:
    """Check ``ready(server)`` every ``poll_s`` until it is true; False if the process exited first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            if ready(server):
                return True
        except (OSError, http.client.HTTPException):  # not listening yet, or a connection dropped while starting
            pass
        time.sleep(poll_s)
    raise AssertionError(f"{what()} within {timeout_s} s:\n{server.log.read_text()[-3000:]}")
