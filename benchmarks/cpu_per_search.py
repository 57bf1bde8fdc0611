"""Print the CPU time of one search (engine plus the HTTP body encoding) on a data directory, for side-by-side comparisons.

Usage::

    python benchmarks/cpu_per_search.py DATA_DIR [--tree CHECKOUT] [--searches 3000]

``--tree`` runs another checkout's code (a ``git worktree`` of an older
commit) on the same data and queries, so two commits can be compared in
alternating fresh processes, which is what this machine's changing speed
calls for. The queries are the benchmark workload (all facets).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--tree", help="checkout whose tripsearch and api packages to run (default: this one)")
    parser.add_argument("--searches", type=int, default=3000)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout, for `benchmarks`
    if args.tree:
        sys.path.insert(0, args.tree)

    # Imported here, after the path is set, so --tree decides which code runs.
    import tripsearch
    from api.routes.search import search_body
    from benchmarks.conftest import workload_sample
    from tripsearch.capacity.workload import build_workload

    engine = tripsearch.open(args.data, refresh_interval=0)
    gc.freeze()
    queries = build_workload(workload_sample(1_000_000), args.searches, seed=1, facets="all").searches
    for query in queries[:200]:
        search_body(engine.search(query))
    started = time.process_time()
    for query in queries:
        search_body(engine.search(query))
    print(f"{tripsearch.__file__}: {(time.process_time() - started) / len(queries) * 1000:.3f} ms of CPU per search")
    engine.close()


if __name__ == "__main__":
    main()
