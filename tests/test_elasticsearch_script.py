"""tripsearch dev elasticsearch and its wrapper scripts/elasticsearch: start a one-node cluster, talk to it, stop it."""

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


def test_the_script_is_a_wrapper_of_tripsearch_dev_elasticsearch():
    name = "tripsearch-no-such-cluster"
    script = subprocess.run([sys.executable, str(SCRIPT), "status", "--name", name], capture_output=True, text=True, timeout=60)
    command = subprocess.run([sys.executable, "-m", "tripsearch.cli", "dev", "elasticsearch", "status", "--name", name], capture_output=True, text=True, timeout=60)
    assert script.returncode == command.returncode == 1
    assert json.loads(script.stdout) == json.loads(command.stdout) == {"name": name, "urls": [], "pids": [], "up": [], "running": False}
    assert script.stderr == command.stderr == f"elasticsearch: no cluster named {name}\n"
    for argv, prog in (([sys.executable, str(SCRIPT)], "scripts/elasticsearch"), ([sys.executable, "-m", "tripsearch.cli", "dev", "elasticsearch"], "tripsearch dev elasticsearch")):
        usage = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60)
        assert usage.returncode == 0 and usage.stdout.startswith(f"usage: {prog} ")
        assert all(c in usage.stdout for c in ("start", "stop", "restart-node", "status"))
