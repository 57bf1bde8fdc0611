"""Start a server process on a free loopback port and wait until it answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import httpx

__all__ = ["ServerProcess", "free_port", "start_server"]

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
    timeout_s: float = 120.0,
    poll_s: float = 0.1,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ServerProcess:
    """Run ``command(port)`` in a session of its own and return once ``GET ready_path`` answers ``ready_status``.

    A process that exits before it answers most likely lost its port between
    :func:`free_port` and its bind: it is started again on another port, up
    to three times. A server that runs without answering within
    ``timeout_s`` is killed and the error carries the tail of its log.
    """
    for attempt in range(ATTEMPTS):
        port = free_port()
        log = log_dir / f"{name}-{attempt}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(command(port), env=None if env is None else dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        server = ServerProcess(f"http://127.0.0.1:{port}", process, log)
        try:
            answered = _wait_answer(server, ready_path, ready_status, timeout_s, poll_s)
        except BaseException:
            server.kill()
            raise
        if answered:
            return server
        server.kill()
    raise AssertionError(f"the server did not start ({ATTEMPTS} attempts):\n{log.read_text()[-3000:]}")


def _wait_answer(server: ServerProcess, path: str, status: int, timeout_s: float, poll_s: float) -> bool:
    """Wait for ``GET path`` to answer ``status``; False if the process exited first."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=server.url, timeout=2) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                return False
            try:
                if client.get(path).status_code == status:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(poll_s)
    raise AssertionError(f"{path} did not answer {status} within {timeout_s} s:\n{server.log.read_text()[-3000:]}")
