"""Tables built from the shipped data once, kept on disk for every later process.

The place index takes about 3 s of CPU to build from GeoNames' JSON, in
every process that names places: each API worker, each test server, each
fixture generator. Read back from a file it takes a tenth of that.

A table is stored under ``${TRIPSEARCH_CACHE:-~/.cache/tripsearch}/tables/``
in a file named by everything it is built from: its name and arguments, the
source of the modules that build it, and the versions of Python, numpy and
the packages whose data it reads. Changing any of them names another file,
so a stale table is never read. Files are written whole (a temporary file,
renamed), and one that cannot be read or written is only built in memory
again: the cache is never an error.

Tables are pickled. The directory is the user's own, like numba's cache of
compiled functions that the engine already loads.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import pickle
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Callable, Sequence, TypeVar

__all__ = ["stored", "tables_dir"]

log = logging.getLogger("tripsearch.data")

T = TypeVar("T")


def tables_dir() -> Path:
    """Return the directory of the stored tables."""
    return Path(os.environ.get("TRIPSEARCH_CACHE") or "~/.cache/tripsearch").expanduser() / "tables"


def _key(name: str, sources: Sequence[ModuleType], packages: Sequence[str]) -> str:
    digest = hashlib.sha256(f"{name}|{sys.version_info[:2]}".encode())
    for package in ("numpy", *packages):
        digest.update(f"|{package}={importlib.metadata.version(package)}".encode())
    for module in sources:
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()[:24]


def stored(name: str, build: Callable[[], T], sources: Sequence[ModuleType], packages: Sequence[str] = ()) -> T:
    """Return the table ``name`` (its arguments included) as stored, else ``build()`` it and store it.

    ``sources``: the modules whose code builds it; ``packages``: the
    installed packages whose data it reads.
    """
    path = tables_dir() / f"{name}-{_key(name, sources, packages)}.pickle"
    try:
        with path.open("rb") as file:
            return pickle.load(file)  # type: ignore[no-any-return]
    except FileNotFoundError:
        pass
    except Exception as exc:  # unreadable, or cut short by a full disk: built again
        log.debug("table %s not read from %s: %s", name, path, exc)
    table = build()
    temporary: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{name}-", delete=False) as file:
            temporary = file.name
            pickle.dump(table, file, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)
    except Exception as exc:  # a read-only home: built in memory only
        log.debug("table %s not stored in %s: %s", name, path, exc)
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
    return table
