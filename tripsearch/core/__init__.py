"""The engine core: trips as columns and the compiled kernels the matching rules, facets and both backends run on."""
