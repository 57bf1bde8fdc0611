"""Facet aggregations: one facet model every backend computes the same way."""

from .facets import FACET_FILTER, RATING_THRESHOLDS, TIME_OF_DAY_BUCKETS, compute_facets

__all__ = ["compute_facets", "FACET_FILTER", "RATING_THRESHOLDS", "TIME_OF_DAY_BUCKETS"]
