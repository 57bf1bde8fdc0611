"""The last line of a test run: every real component whose tests were skipped, and why.

Elasticsearch, RabbitMQ, Chromium, wrk and a tmpfs mount are real parts the
tests start or need; outside CI a test that cannot have one skips. This line
makes such a run say so at its very end, so a green local run cannot hide it.
"""

from __future__ import annotations

import collections
from typing import Iterable

import pytest

__all__ = ["COMPONENTS", "skipped_components", "summary_line", "pytest_terminal_summary", "pytest_unconfigure"]

# The component a skip reason names (the first match wins).
COMPONENTS = {
    "Elasticsearch": ("elasticsearch",),
    "RabbitMQ": ("rabbitmq",),
    "Chromium": ("chromium", "playwright"),
    "wrk": ("wrk",),
    "tmpfs": ("tmpfs",),
}
_LINE = pytest.StashKey[str]()


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def skipped_components(reports: Iterable[pytest.TestReport]) -> dict[str, tuple[int, str]]:
    """Return, for each real component some skipped test needed, how many tests skipped and the first reason."""
    counts: collections.Counter[str] = collections.Counter()
    reasons: dict[str, str] = {}
    for report in reports:
        if not report.skipped or hasattr(report, "wasxfail"):
            continue
        reason = _reason(report)
        lowered = reason.lower()
        for name, words in COMPONENTS.items():
            if any(word in lowered for word in words):
                counts[name] += 1
                reasons.setdefault(name, reason)
                break
    return {name: (counts[name], reasons[name]) for name in COMPONENTS if name in counts}


def summary_line(skipped: dict[str, tuple[int, str]]) -> str:
    """Return the last line of the run.

    >>> summary_line({})
    'real components skipped: none'
    >>> summary_line({"wrk": (1, "wrk is missing: apt-get install wrk")})
    'real components skipped: wrk (1 test: wrk is missing: apt-get install wrk)'
    """
    if not skipped:
        return "real components skipped: none"
    parts = [f"{name} ({n} test{'s' if n != 1 else ''}: {reason})" for name, (n, reason) in skipped.items()]
    return "real components skipped: " + "; ".join(parts)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    reports = [r for r in terminalreporter.stats.get("skipped", []) if isinstance(r, pytest.TestReport)]
    config.stash[_LINE] = summary_line(skipped_components(reports))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # After the counts pytest prints at the end of the session, so the run ends with it.
    line = config.stash.get(_LINE, None)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if line is not None and reporter is not None:
        reporter.write_line(line, yellow="none" not in line, bold=True)
