"""Running an event loop: uvloop's when it is installed (it comes with ``uvicorn[standard]``), asyncio's otherwise."""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine, TypeVar

__all__ = ["run"]

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` in a new event loop and return its result, as :func:`asyncio.run` does.

    uvloop runs the loop's own work (sockets, callbacks, timers) in C: the
    indexer worker, whose event loop reads three AMQP frames per message,
    spends about a tenth less CPU per message on it (benchmarks/README.md).
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a platform uvicorn[standard] leaves it out of
        return asyncio.run(main)
    return uvloop.run(main)
