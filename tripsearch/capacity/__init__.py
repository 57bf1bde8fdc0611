"""Capacity planning from measurements: ``tripsearch capacity measure | plan | report``.

- :func:`measure` runs the measurements on this machine and saves them as JSON;
- :func:`make_plan` turns them and a target (trips, searches/s, writes/s,
  p99) into workers, machines, memory and, for Elasticsearch, data nodes,
  primaries, replicas and API cores from the costs per search of saved
  hot-corridor runs (:func:`load_corridor_runs`), each number with the
  measurement or rule it comes from;
- :func:`make_fit` answers the inverse for the embedded backend: the trips
  that fit on a machine of some memory with N workers, from the memory
  model of the shared index (:class:`MemoryModel`);
- :func:`write_report` writes a Markdown report with PNG plots.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .corridor import CorridorRun, load_corridor_runs
    from .data import Measurements
    from .errors import CapacityError
    from .measure import DEFAULT_OUT, MeasureOptions, machine_info, measure
    from .memory import MemoryModel, load_shared_index, memory_model, parse_size
    from .plan import FitTargets, Plan, Targets, make_fit, make_plan, render_plan
    from .report import write_report

__all__ = ["measure", "MeasureOptions", "machine_info", "Measurements", "CorridorRun", "load_corridor_runs", "Targets", "FitTargets", "Plan", "make_plan", "make_fit", "render_plan", "MemoryModel", "memory_model", "load_shared_index", "parse_size", "write_report", "CapacityError", "DEFAULT_OUT"]

# Imported on first use, so that ``python -m tripsearch.capacity.loadgen`` and the
# workload do not load the measurement machinery (and the whole engine) first.
_HOME = {
    **dict.fromkeys(["CorridorRun", "load_corridor_runs"], ".corridor"),
    "Measurements": ".data",
    "CapacityError": ".errors",
    **dict.fromkeys(["DEFAULT_OUT", "MeasureOptions", "machine_info", "measure"], ".measure"),
    **dict.fromkeys(["MemoryModel", "load_shared_index", "memory_model", "parse_size"], ".memory"),
    **dict.fromkeys(["FitTargets", "Plan", "Targets", "make_fit", "make_plan", "render_plan"], ".plan"),
    "write_report": ".report",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name], __name__), name)
    # Kept, so later lookups skip this; for ``measure`` it also replaces the submodule of that name.
    globals()[name] = value
    return value
