"""The query model, the exact matching rules and the ranking."""

from .matching import Evaluation, evaluate
from .model import FACET_NAMES, SORTS, Query, parse_query, replace

__all__ = ["Query", "parse_query", "replace", "FACET_NAMES", "SORTS", "Evaluation", "evaluate"]
