"""Facets: counts beside the filters, one facet model every backend computes the same way."""

from .counts import FACET_FILTER, RATING_THRESHOLDS, TIME_OF_DAY_BUCKETS, FacetTallies, render_facets, tally_evaluation

__all__ = ["tally_evaluation", "render_facets", "FacetTallies", "FACET_FILTER", "RATING_THRESHOLDS", "TIME_OF_DAY_BUCKETS"]
