"""What the tests and the benchmarks share: throw-away Elasticsearch clusters and RabbitMQ brokers (pytest fixtures).

Needs the ``dev`` extra (pytest) and a checkout (the services start through ``scripts/``).
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["unavailable"]


def unavailable(service: str, reason: str, remedy: str | None = None) -> NoReturn:
    """Skip the test: ``service`` cannot run here; in CI (``CI`` set) fail instead, so a broken CI machine is never a green run."""
    if os.environ.get("CI"):
        pytest.fail(f"{service} is required in CI and did not start: {reason}", pytrace=False)
    pytest.skip(f"{service} did not start ({reason}); {remedy + ', or ' if remedy else ''}set CI=1 to make this a failure")
