"""One error hierarchy for the whole project.

Three abstract groups, each mapped to one HTTP status family by the API:
:class:`InvalidTrip` and :class:`InvalidQuery` (the caller's input, 4xx) and
:class:`BackendUnavailable` (the store or cluster cannot serve now, 503).
Every concrete error carries the ``field`` it is about and the ``reason`` in
words, so a person can fix the input without reading code.
"""

from __future__ import annotations

__all__ = [
    "TripSearchError",
    "InvalidInput",
    "InvalidTrip",
    "InvalidQuery",
    "InvalidCursor",
    "NotFound",
    "BackendUnavailable",
    "StoreReadOnly",
    "InvalidAlert",
    "AlertNotFound",
    "AlertLimitReached",
]


class TripSearchError(Exception):
    """Base of every error tripsearch raises on purpose."""


class InvalidInput(TripSearchError, ValueError):
    """Input that breaks a rule: names the field and the reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


class InvalidTrip(InvalidInput):
    """A trip document that breaks the trip model."""


class InvalidQuery(InvalidInput):
    """A search query that breaks the query model."""


class InvalidCursor(InvalidQuery):
    """A pagination cursor that is malformed or belongs to another query."""

    def __init__(self, reason: str) -> None:
        super().__init__("cursor", reason)


class NotFound(TripSearchError, KeyError):
    """No trip with that id."""

    def __init__(self, trip_id: str) -> None:
        super().__init__(trip_id)
        self.trip_id = trip_id

    def __str__(self) -> str:
        return f"no trip with id {self.trip_id!r}"


class BackendUnavailable(TripSearchError):
    """The store or the cluster cannot serve the request now; retrying later may work."""

    def __init__(self, reason: str, retry_after: float = 1.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class StoreReadOnly(BackendUnavailable):
    """Writes are refused (disk full, read-only directory); searches still answer."""


class InvalidAlert(InvalidQuery):
    """A saved search (alert) that breaks the alert model (its search fields follow the query model)."""


class AlertNotFound(NotFound):
    """No alert with that id for this owner (another owner's alert is not found either)."""

    def __str__(self) -> str:
        return f"no alert with id {self.trip_id!r}"


class AlertLimitReached(TripSearchError):
    """The owner already has as many active alerts as allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"an owner may keep at most {limit} active alerts; delete one first")
        self.limit = limit
