"""What the tests, the benchmarks and capacity runs share: servers started and waited for, throw-away Elasticsearch clusters and RabbitMQ brokers (pytest fixtures).

The fixtures need the ``dev`` extra (pytest) and a checkout (the services
start through ``scripts/``); :mod:`tripsearch.testing.server` needs neither,
so ``tripsearch capacity`` runs from an installed package.
"""

from __future__ import annotations

import os
from typing import NoReturn

__all__ = ["unavailable"]


def unavailable(service: str, reason: str, remedy: str | None = None) -> NoReturn:
    """Skip the test: ``service`` cannot run here; in CI (``CI`` set) fail instead, so a broken CI machine is never a green run."""
    import pytest  # here, not above: tripsearch.testing.server runs without the dev extra

    if os.environ.get("CI"):
        pytest.fail(f"{service} is required in CI and did not start: {reason}", pytrace=False)
    pytest.skip(f"{service} did not start ({reason}); {remedy + ', or ' if remedy else ''}set CI=1 to make this a failure")
