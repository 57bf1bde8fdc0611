"""A throw-away RabbitMQ broker for the tests, started through scripts/rabbitmq.

One broker per test session (``tripsearch-test-<pid>``), started on first
use, stopped and removed at the end. Each test declares a topology of its own
(fresh names), so tests share the broker and never each other's queues.

If the broker cannot start, its tests are skipped with the reason, except
when the environment variable ``CI`` is set: then they fail, so a broken CI
machine is never mistaken for a green run.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Iterator, TypeVar

import pytest

from tripsearch.broker.events import EventPublisher, Topology

from . import unavailable

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "rabbitmq"
START_TIMEOUT_S = 120

T = TypeVar("T")


@dataclass(frozen=True)
class Broker:
    name: str
    url: str

    def script(self, *args: str, timeout: float = START_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        """Run ``scripts/rabbitmq ARGS --name NAME``."""
        return subprocess.run([sys.executable, str(SCRIPT), *args, "--name", self.name], capture_output=True, text=True, timeout=timeout)

    def restart(self) -> None:
        """Stop the broker (a clean shutdown) and start it again on the same port and data."""
        for command in ("stop", "start"):
            done = self.script(command)
            assert done.returncode == 0, done.stderr


def fresh_topology(**options: object) -> Topology:
    """Return a topology whose names no other test uses."""
    tag = uuid.uuid4().hex[:10]
    return Topology(exchange=f"t-{tag}.events", queue=f"t-{tag}.index", dead_letter_exchange=f"t-{tag}.dead", dead_letter_queue=f"t-{tag}.index.dead", **options)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[Broker]:
    """A RabbitMQ broker on loopback for the whole session."""
    name = f"tripsearch-test-{os.getpid()}"
    try:
        started = subprocess.run([sys.executable, str(SCRIPT), "start", "--name", name, "--timeout", str(START_TIMEOUT_S - 20)],
                                 capture_output=True, text=True, timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        started = subprocess.CompletedProcess([], 1, "", f"no answer within {START_TIMEOUT_S} s")
    if started.returncode != 0:
        subprocess.run([sys.executable, str(SCRIPT), "stop", "--name", name, "--clean"], capture_output=True, timeout=60)
        lines = [ln for ln in started.stderr.strip().splitlines() if ln.strip()]
        unavailable("RabbitMQ", " | ".join(lines[:3]) or f"scripts/rabbitmq exited with {started.returncode}", remedy="run scripts/install-test-deps")
    broker = Broker(name, json.loads(started.stdout)["url"])
    yield broker
    subprocess.run([sys.executable, str(SCRIPT), "stop", "--name", name, "--clean"], capture_output=True, timeout=120)


async def publish(broker: Broker, topology: Topology, events: list[Any], pack: int = 1) -> None:
    """Publish ``events`` with publisher confirms (``pack`` events per message)."""
    async with EventPublisher(broker.url, topology, pack=pack) as publisher:
        assert await publisher.publish(events) == len(events)


def run_async(coroutine: Awaitable[T]) -> T:
    """Run a coroutine to the end on an event loop of its own thread.

    Not on this thread: a session fixture of the page tests (Playwright's
    sync API) keeps an event loop running on it for the rest of the session.
    """
    async def main() -> T:
        return await coroutine

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()
