"""Saved searches (alerts): an immutable value, parsed with the search query's own rules.

An alert holds the fields of a search that decide which trips match (from,
to, radii, time window, seats, max price, options, min rating) and a date
or a date range of at most :data:`MAX_DAYS` days. Its fields are read by
:func:`~tripsearch.query.model.parse_query`, so they mean, and are checked,
exactly as in ``/v1/search``.

>>> a = parse_alert({"from": [48.8566, 2.3522], "to": [45.764, 4.8357], "date_from": "2026-12-01", "date_to": "2026-12-03"})
>>> a.query.date.isoformat(), a.date_to.isoformat(), a.query.from_radius_km
('2026-12-01', '2026-12-03', 10.0)
>>> [q.date.isoformat() for q in a.day_queries()]
['2026-12-01', '2026-12-02', '2026-12-03']
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any, Iterator, Mapping

from ..errors import InvalidAlert, InvalidQuery
from ..query.model import Query, parse_query

__all__ = ["AlertSpec", "parse_alert", "MAX_DAYS", "ALERT_FIELDS", "expires_at", "has_expired"]

MAX_DAYS = 90
# The search fields that decide matches; the rest of a query (sort, paging, facets) means nothing for an alert.
SEARCH_FIELDS = ("from", "to", "from_radius_km", "to_radius_km", "seats", "time_from", "time_to", "max_price", "options", "min_rating")
ALERT_FIELDS = (*SEARCH_FIELDS, "date", "date_from", "date_to")
# A local date ends, somewhere on Earth, up to 12 hours after it ends in UTC (UTC-12).
_LAST_OFFSET = dt.timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class AlertSpec:
    """What an alert looks for: a search (its ``date`` is the first day) and the last day."""

    query: Query
    date_to: dt.date

    @property
    def date_from(self) -> dt.date:
        return self.query.date

    @property
    def day_from(self) -> int:
        return self.query.day

    @property
    def day_to(self) -> int:
        return (self.date_to - dt.date(1970, 1, 1)).days

    def day_queries(self) -> Iterator[Query]:
        """Yield the search of each day of the range: a trip matches the alert when one of them returns it."""
        for day in range((self.date_to - self.date_from).days + 1):
            yield replace(self.query, date=self.date_from + dt.timedelta(days=day))

    def to_dict(self) -> dict[str, Any]:
        """Return the alert's fields as :func:`parse_alert` reads them (and the API returns them)."""
        q = self.query.to_dict()
        out = {k: q[k] for k in SEARCH_FIELDS if k in q}
        out["date_from"] = self.date_from.isoformat()
        out["date_to"] = self.date_to.isoformat()
        return out


def parse_alert(data: Mapping[str, Any], now: dt.datetime | None = None) -> AlertSpec:
    """Return an :class:`AlertSpec`, or raise :class:`InvalidAlert` naming the field.

    ``date`` is one day; ``date_from`` and ``date_to`` a range of at most
    :data:`MAX_DAYS` days. With ``now``, a range that has already ended
    everywhere on Earth is refused.
    """
    if not isinstance(data, Mapping):
        raise InvalidAlert("", "an alert must be an object of search fields")
    unknown = sorted(set(data) - set(ALERT_FIELDS))
    if unknown:
        raise InvalidAlert(unknown[0], f"is not an alert field (known: {', '.join(sorted(ALERT_FIELDS))})")
    has_day = data.get("date") is not None
    has_range = data.get("date_from") is not None or data.get("date_to") is not None
    if has_day and has_range:
        raise InvalidAlert("date", "give either date or date_from and date_to, not both")
    if not has_day and not has_range:
        raise InvalidAlert("date", "is required (or date_from and date_to)")
    if has_range:
        for name in ("date_from", "date_to"):
            if data.get(name) is None:
                raise InvalidAlert(name, "is required with " + ("date_to" if name == "date_from" else "date_from"))
    fields = {k: v for k, v in data.items() if k in SEARCH_FIELDS}
    first = data["date"] if has_day else data["date_from"]
    last = data["date"] if has_day else data["date_to"]
    query = _as_alert_error(lambda: parse_query({**fields, "date": first, "facets": []}), "date" if has_day else "date_from")
    date_to = _as_alert_error(lambda: parse_query({**fields, "date": last, "facets": []}), "date" if has_day else "date_to").date
    if date_to < query.date:
        raise InvalidAlert("date_to", f"is before date_from ({date_to} < {query.date})")
    days = (date_to - query.date).days + 1
    if days > MAX_DAYS:
        raise InvalidAlert("date_to", f"the range covers {days} days; an alert covers at most {MAX_DAYS}")
    spec = AlertSpec(query, date_to)
    if now is not None and has_expired(spec, now):
        raise InvalidAlert("date" if has_day else "date_to", f"{date_to} has already passed everywhere; an alert looks for trips to come")
    return spec


def _as_alert_error(parse: Any, date_field: str) -> Query:
    try:
        q: Query = parse()
    except InvalidQuery as exc:
        raise InvalidAlert(date_field if exc.field == "date" else exc.field, exc.reason) from None
    return q


def expires_at(spec: AlertSpec) -> dt.datetime:
    """Return when the alert's last day has ended in every UTC offset (UTC-12 is the last)."""
    end = dt.datetime.combine(spec.date_to + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)
    return end + _LAST_OFFSET


def has_expired(spec: AlertSpec, now: dt.datetime) -> bool:
    """Return whether no trip can match the alert any more because its date range has passed."""
    return now >= expires_at(spec)
