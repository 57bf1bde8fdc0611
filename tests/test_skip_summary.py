"""The last line of a test run names every real component that was skipped, and why."""

from __future__ import annotations

import pytest

from .conftest import ROOT
from .skip_summary import summary_line

pytest_plugins = ["pytester"]

_TESTS = '''
import pytest

def test_search_on_a_cluster():
    pytest.skip("Elasticsearch did not start (no java); set CI=1 to make this a failure")

def test_another_on_the_cluster():
    pytest.skip("Elasticsearch did not start (no java); set CI=1 to make this a failure")

def test_a_load_run():
    pytest.skip("wrk is missing: apt-get install wrk")

@pytest.mark.skip(reason="not a component")
def test_skipped_for_another_reason():
    pass

def test_passes():
    pass
'''


def test_the_run_ends_with_the_skipped_components(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the run in pytester's directory imports this checkout's tests package
    pytester.makeconftest("from tests.skip_summary import pytest_terminal_summary, pytest_unconfigure  # noqa: F401")
    pytester.makepyfile(test_parts=_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=4)
    assert result.outlines[-1] == (
        "real components skipped: Elasticsearch (2 tests: Elasticsearch did not start (no java); set CI=1 to make this a failure); "
        "wrk (1 test: wrk is missing: apt-get install wrk)"
    )


def test_a_run_without_skips_says_none() -> None:
    assert summary_line({}) == "real components skipped: none"
