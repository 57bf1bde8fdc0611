"""The error of the capacity commands."""

from __future__ import annotations

from ..errors import TripSearchError

__all__ = ["CapacityError"]


class CapacityError(TripSearchError, ValueError):
    """A capacity command cannot do what was asked (missing measurements, a bad option); says why."""
