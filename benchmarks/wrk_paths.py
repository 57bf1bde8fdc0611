"""Write the HTTP benchmark's request paths, one per line, for wrk (``benchmarks/wrk.lua``).

Usage::

    python benchmarks/wrk_paths.py > /tmp/paths.txt
    wrk -t1 -c12 -d15s --latency -s benchmarks/wrk.lua http://127.0.0.1:PORT -- /tmp/paths.txt

The paths are the capacity tool's HTTP workload (searches with all facets
and place autocompletes, in its shuffled order). wrk replays them in turn
from a random start per thread; it does not follow cursors to page 2, so
the mix is the loadgen's without its page-2 follows. A cross-check of
``tripsearch.capacity.loadgen`` with a load generator written in C (Debian's
``wrk``), which takes less of the machine's CPU.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tripsearch.capacity.datasets import WORKLOAD_SAMPLE, http_calls

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    sys.stdout.writelines(path + "\n" for _, path, _ in http_calls(n, WORKLOAD_SAMPLE))


if __name__ == "__main__":
    main()
