"""Throw-away Elasticsearch clusters for the tests, started through scripts/elasticsearch.

One cluster per node count and test session (``tripsearch-test-<pid>-<n>n``),
started on first use, stopped and removed at the end of the session. When
the first test needs the one-node cluster, the two-node one (if any selected
test needs it) starts booting beside it, so the two start-ups overlap.

If a cluster cannot start, its tests are skipped with the reason, except
when the environment variable ``CI`` is set: then they fail, so a broken CI
machine is never mistaken for a green run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from elasticsearch import Elasticsearch

from . import unavailable

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "elasticsearch"
START_TIMEOUT_S = 300
TWO_NODES_FIXTURE = "es_cluster_2nodes"


@dataclass(frozen=True)
class Cluster:
    name: str
    urls: tuple[str, ...]

    @property
    def url(self) -> str:
        return self.urls[0]

    def script(self, *args: str, timeout: float = START_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        """Run ``scripts/elasticsearch ARGS --name NAME``."""
        return subprocess.run([sys.executable, str(SCRIPT), *args, "--name", self.name], capture_output=True, text=True, timeout=timeout)

    def client(self) -> Elasticsearch:
        return Elasticsearch(list(self.urls), request_timeout=30)

    def drop(self, alias: str) -> None:
        """Delete the indices and the template of an alias (what a test engine created)."""
        with self.client() as es:
            es.options(ignore_status=404).indices.delete(index=f"{alias}-*")
            es.options(ignore_status=404).indices.delete_index_template(name=f"tripsearch-{alias}")


class _Boot:
    """One `scripts/elasticsearch start`, running in the background until :meth:`wait`."""

    def __init__(self, name: str, nodes: int) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "start", "--name", name, "--nodes", str(nodes), "--timeout", str(START_TIMEOUT_S - 20)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.result: Cluster | str | None = None

    def wait(self) -> Cluster | str:
        """Return the started cluster, or why it did not start."""
        if self.result is None:
            try:
                out, err = self.proc.communicate(timeout=START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out, err = self.proc.communicate()
                err = f"no answer within {START_TIMEOUT_S} s\n{err}"
            if self.proc.returncode == 0:
                state = json.loads(out)
                self.result = Cluster(self.name, tuple(state["urls"]))
            else:
                lines = [ln for ln in err.strip().splitlines() if ln.strip()]
                # the script's notes (download, user, permissions) come first; its error line and the log tail after them
                errors = [i for i, ln in enumerate(lines) if ": error: " in ln]
                shown = lines[errors[0] : errors[0] + 6] if errors else lines[-3:]
                self.result = " | ".join(shown) or f"scripts/elasticsearch exited with {self.proc.returncode}"
        return self.result


class Clusters:
    """The clusters of one test session, by node count."""

    def __init__(self) -> None:
        self.boots: dict[int, _Boot] = {}

    def boot(self, nodes: int) -> _Boot:
        if nodes not in self.boots:
            self.boots[nodes] = _Boot(f"tripsearch-test-{os.getpid()}-{nodes}n", nodes)
        return self.boots[nodes]

    def get(self, nodes: int) -> Cluster:
        result = self.boot(nodes).wait()
        if isinstance(result, str):
            unavailable("Elasticsearch", f"{nodes}-node cluster: {result}")
        assert isinstance(result, Cluster)
        return result

    def stop_all(self) -> None:
        for boot in self.boots.values():
            boot.wait()
            subprocess.run([sys.executable, str(SCRIPT), "stop", "--name", boot.name, "--clean"], capture_output=True, timeout=120)


@contextmanager
def own_cluster(purpose: str, nodes: int = 1) -> Iterator[Cluster]:
    """A cluster for one test that stops its nodes (the session's clusters are shared), removed afterwards."""
    boot = _Boot(f"tripsearch-test-{os.getpid()}-{purpose}", nodes)
    try:
        result = boot.wait()
        if isinstance(result, str):
            unavailable("Elasticsearch", f"{nodes}-node cluster for {purpose}: {result}")
        assert isinstance(result, Cluster)
        yield result
    finally:
        subprocess.run([sys.executable, str(SCRIPT), "stop", "--name", boot.name, "--clean"], capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def es_clusters() -> Iterator[Clusters]:
    clusters = Clusters()
    yield clusters
    clusters.stop_all()


@pytest.fixture(scope="session")
def es_cluster(request: pytest.FixtureRequest, es_clusters: Clusters) -> Cluster:
    """A one-node cluster for the whole session."""
    es_clusters.boot(1)
    if any(TWO_NODES_FIXTURE in getattr(item, "fixturenames", ()) for item in request.session.items):
        es_clusters.boot(2)  # boots beside the first one
    return es_clusters.get(1)


def fresh_alias(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"

