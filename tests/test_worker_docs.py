"""docs/workers.md documents every worker metric, every option of `tripsearch worker`, and the event schema's fields; its regular trip example is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from tripsearch.cli import build_parser
from tripsearch.broker.events import _KNOWN_FIELDS, EVENT_TYPES, SCHEMA, parse_event
from tripsearch.broker.worker import WorkerMetrics
from tripsearch.model import parse_trip
from tripsearch.occurrences import occurrences, split_key

DOC = (Path(__file__).resolve().parents[1] / "docs" / "workers.md").read_text()


def _metric_names() -> list[str]:
    names = []
    for metric in WorkerMetrics().registry.collect():
        names.append(metric.name + ("_total" if metric.type == "counter" else ""))
    return names


@pytest.mark.parametrize("name", _metric_names())
def test_every_metric_is_documented(name: str) -> None:
    assert f"`{name}" in DOC, f"docs/workers.md does not list the metric {name}"


def _worker_options() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    worker = sub.choices["worker"]  # type: ignore[index]
    return [opt for action in worker._actions for opt in action.option_strings if opt.startswith("--") and opt != "--help"]


@pytest.mark.parametrize("option", _worker_options())
def test_every_worker_option_is_documented(option: str) -> None:
    assert f"`{option}`" in DOC, f"docs/workers.md does not list {option}"


def test_the_event_schema_is_documented() -> None:
    assert f'"{SCHEMA}"' in DOC
    for field in _KNOWN_FIELDS:
        assert f"`{field}`" in DOC, field
    for kind in EVENT_TYPES:
        assert f"`{kind}`" in DOC, kind


def test_the_regular_trip_example_is_a_valid_event_with_one_date_cancelled_and_another_changed() -> None:
    block = DOC.split("**Regular trips and seat changes.**", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    event = parse_event(block)
    assert event.type == "trip.updated" and event.trip is not None
    seats = {split_key(o.id)[1]: o.seats_available for o in occurrences(parse_trip(event.trip))}
    assert "2027-01-08" not in seats and "2027-01-07" in seats
    assert seats["2027-01-12"] == 1 and seats["2027-01-11"] == 3
