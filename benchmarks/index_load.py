"""Time `tripsearch index FILE --data DIR` in fresh processes, one checkout against another, and print one line of JSON per run.

Usage::

    python -m benchmarks.index_load FILE [--tree CHECKOUT] [--rounds 2] [--batch-size 5000] [--json PATH]

The load as a user runs it: the command line, into a new data directory,
until it has exited (the index applied and its segment written). With
``--tree`` (a ``git worktree`` of an older commit) each round runs that
checkout's code first, then this one's, on the same file, so the two are
compared side by side on this machine's changing speed. Each run reports
its wall time, trips/s, the CPU of its process (user and system) and its
peak resident memory; the data directories are deleted after each run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent


def run_once(tree: Path, source: Path, batch_size: int, scratch: Path) -> dict[str, object]:
    """Load ``source`` with the command line of ``tree`` into a new directory under ``scratch``; return the run's figures."""
    data = scratch / "data"
    shutil.rmtree(data, ignore_errors=True)
    trips = sum(1 for line in source.open("rb") if line.strip())
    started = time.perf_counter()
    # The checkout's own package first on the path (the working directory), whatever is installed.
    child = subprocess.Popen([sys.executable, "-m", "tripsearch.cli", "index", str(source), "--data", str(data), "--quiet", "--batch-size", str(batch_size)], cwd=tree, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own CPU and peak memory
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        sys.exit(f"tripsearch index exited with {child.returncode} ({tree})")
    shutil.rmtree(data, ignore_errors=True)
    return {
        "tree": str(tree),
        "trips": trips,
        "seconds": round(seconds, 2),
        "trips_per_s": round(trips / seconds),
        "user_s": round(usage.ru_utime, 2),
        "system_s": round(usage.ru_stime, 2),
        "cores": round((usage.ru_utime + usage.ru_stime) / seconds, 2),
        "max_rss_mb": usage.ru_maxrss // 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--tree", type=Path, help="another checkout to run first in each round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--json", type=Path, help="also write the runs here (a JSON object: the file, the batch size, the runs)")
    args = parser.parse_args()
    trees = ([args.tree.resolve()] if args.tree else []) + [ROOT]
    runs = []
    with tempfile.TemporaryDirectory(prefix="index-load-", dir=os.environ.get("TMPDIR")) as scratch:
        for _ in range(args.rounds):
            for tree in trees:
                run = run_once(tree, args.file.resolve(), args.batch_size, Path(scratch))
                runs.append(run)
                print(orjson.dumps(run).decode(), flush=True)
    if args.json:
        out = {"file": str(args.file), "batch_size": args.batch_size, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": runs}
        args.json.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":
    main()
