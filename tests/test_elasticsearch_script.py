"""Smoke test of scripts/elasticsearch: start a one-node cluster, talk to it, stop it."""

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "elasticsearch"
NAME = "tripsearch-scripttest"


def es_script(*args, timeout=300):
    return subprocess.run([sys.executable, str(SCRIPT), *args, "--name", NAME],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.elasticsearch
def test_start_status_stop():
    started = es_script("start")
    try:
        assert started.returncode == 0, started.stderr
        state = json.loads(started.stdout)
        assert state["name"] == NAME and len(state["urls"]) == 1 and state["pids"][0]
        url = state["urls"][0]

        # integ-test-zip has no rest-root module: `GET /` is answered by Elasticsearch, but with 405
        try:
            with urllib.request.urlopen(url + "/", timeout=10) as resp:
                headers = resp.headers
        except urllib.error.HTTPError as exc:
            headers = exc.headers
        assert headers["X-Elastic-Product"] == "Elasticsearch"
        with urllib.request.urlopen(url + "/_cluster/health", timeout=10) as resp:
            assert json.load(resp)["status"] in ("green", "yellow")

        assert es_script("status").returncode == 0
    finally:
        stopped = es_script("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert es_script("status").returncode == 1
    es_script("stop", "--clean")
