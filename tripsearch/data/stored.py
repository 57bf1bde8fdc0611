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

A table read is marked so (its file's time is set to now). When a table is
written, the files of the same name under another key that nobody has read
for :data:`KEEP_UNREAD_S` go: those of an upgrade, not those of another
checkout or release still in use on the machine.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Callable, Sequence, TypeVar

__all__ = ["stored", "tables_dir"]

log = logging.getLogger("tripsearch.data")

T = TypeVar("T")

_KEY_DIGITS = 24  # hexadecimal digits of a table's key in its file name
KEEP_UNREAD_S = 30 * 24 * 3600.0  # a table under another key, not read for this long, goes when its name is written again


def tables_dir() -> Path:
    """Return the directory of the stored tables."""
    return Path(os.environ.get("TRIPSEARCH_CACHE") or "~/.cache/tripsearch").expanduser() / "tables"


def _key(name: str, sources: Sequence[ModuleType], packages: Sequence[str]) -> str:
    digest = hashlib.sha256(f"{name}|{sys.version_info[:2]}".encode())
    for package in ("numpy", *packages):
        digest.update(f"|{package}={importlib.metadata.version(package)}".encode())
    for module in sources:
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()[:_KEY_DIGITS]


def stored(name: str, build: Callable[[], T], sources: Sequence[ModuleType], packages: Sequence[str] = ()) -> T:
    """Return the table ``name`` (its arguments included) as stored, else ``build()`` it and store it.

    ``sources``: the modules whose code builds it; ``packages``: the
    installed packages whose data it reads.
    """
    path = tables_dir() / f"{name}-{_key(name, sources, packages)}.pickle"
    try:
        with path.open("rb") as file:
            table: T = pickle.load(file)
        _mark_read(path)
        return table
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
    else:
        _prune(path, name)
    return table


def _mark_read(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:  # a cache read only: nothing is pruned there either
        pass


def _prune(path: Path, name: str) -> None:
    """Delete the files of table ``name`` under other keys than ``path``'s that were not read for :data:`KEEP_UNREAD_S`."""
    oldest = time.time() - KEEP_UNREAD_S
    for other in path.parent.glob(f"{name}-*.pickle"):
        key = other.name[len(name) + 1 : -len(".pickle")]  # the file of a name that starts with this one ("t-x-KEY" for "t") has a longer one
        try:
            if other != path and len(key) == _KEY_DIGITS and all(c in "0123456789abcdef" for c in key) and other.stat().st_mtime < oldest:
                other.unlink()
                log.debug("table %s: %s not read for %d days, deleted", name, other, KEEP_UNREAD_S // 86400)
        except OSError as exc:  # gone meanwhile (another process pruned it), or not ours to delete
            log.debug("table %s: %s not deleted: %s", name, other, exc)
