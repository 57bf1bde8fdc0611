"""The processes that search a data directory, and how far each has refreshed: what ``refresh="wait_for"`` waits on.

Every engine that refreshes on its own (a refresh thread) keeps a small file
under ``readers/`` for as long as it is open: it holds an exclusive
``flock`` on it and writes into it, after each refresh, the change-feed seq
it has applied up to. A writer that must wait for every reader reads the
files whose lock is held; a file whose lock it can take belongs to an
engine that is gone (closed or killed: the kernel drops the lock with the
process), and is removed. A file is created under a temporary name, locked,
then renamed, so no writer ever sees a live reader's file unlocked.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
import uuid
from pathlib import Path

__all__ = ["READERS_DIR", "ReaderMark", "wait_for_readers"]

log = logging.getLogger(__name__)

READERS_DIR = "readers"
_SUFFIX = ".seq"
_POLL_S = 0.005


class ReaderMark:
    """This engine's file under ``readers/``: locked while it is open, holding the seq it has refreshed through."""

    def __init__(self, directory: Path, seq: int) -> None:
        directory.mkdir(exist_ok=True)
        name = f"{os.getpid()}-{uuid.uuid4().hex}"
        draft = directory / (name + ".tmp")
        self.path = directory / (name + _SUFFIX)
        self._fd = os.open(draft, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            self.publish(seq)
            os.rename(draft, self.path)
        except BaseException:
            os.close(self._fd)
            draft.unlink(missing_ok=True)
            raise

    def publish(self, seq: int) -> None:
        """Say that every change up to ``seq`` is searchable here."""
        os.pwrite(self._fd, seq.to_bytes(8, "little"), 0)

    def close(self) -> None:
        self.path.unlink(missing_ok=True)
        os.close(self._fd)


def wait_for_readers(directory: Path, seq: int, timeout_s: float) -> bool:
    """Return True once every live reader has refreshed through ``seq``; False (logging who lags) after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        behind = _readers_behind(directory, seq)
        if not behind:
            return True
        if time.monotonic() >= deadline:
            log.warning("refresh=wait_for: %d reader(s) of %s not past change %d after %.1f s: %s", len(behind), directory.parent, seq, timeout_s, ", ".join(behind))
            return False
        time.sleep(_POLL_S)


def _readers_behind(directory: Path, seq: int) -> list[str]:
    try:
        names = [n for n in os.listdir(directory) if n.endswith(_SUFFIX)]
    except FileNotFoundError:
        return []
    behind = []
    for name in names:
        path = directory / name
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # closed meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:  # its engine is open
                if _read_seq(fd) < seq:
                    behind.append(name)
                continue
            path.unlink(missing_ok=True)  # its engine is gone without closing
        finally:
            os.close(fd)
    return behind


def _read_seq(fd: int) -> int:
    """The seq a reader's file holds, read until two reads agree (a read that overlaps its write may see half of each)."""
    last = os.pread(fd, 8, 0)
    while True:
        again = os.pread(fd, 8, 0)
        if again == last:
            return int.from_bytes(again, "little")
        last = again
