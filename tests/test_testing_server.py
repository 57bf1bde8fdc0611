"""tripsearch.testing.server: start a server on a free port and wait until it answers (what the API, page and crash tests use)."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from tripsearch.testing.server import start_server


def test_returns_once_the_server_answers_and_stops_it(tmp_path: Path) -> None:
    (tmp_path / "ready").write_text("yes")
    server = start_server(lambda port: [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], tmp_path, cwd=tmp_path, timeout_s=30)
    try:
        assert httpx.get(f"{server.url}/ready").text == "yes"
    finally:
        server.stop()
    assert server.process.returncode is not None


def test_a_server_that_dies_at_once_is_retried_then_reported_with_its_log(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import sys; print('cannot bind'); sys.exit(1)"]
    with pytest.raises(AssertionError, match="did not start \\(3 attempts\\):\ncannot bind"):
        start_server(lambda port: command, tmp_path, timeout_s=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server-0.log", "server-1.log", "server-2.log"]
