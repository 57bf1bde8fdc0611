"""Checkpoints of the alert store's write-ahead log in a thread of their own, off the commits of the follower process.

SQLite copies the WAL's pages into the database file (a checkpoint) in the
commit that takes the WAL past its ``wal_autocheckpoint`` pages, and a
checkpoint syncs both files. At a million alerts the follower's commit that
checkpointed took 350 ms (64 ms of CPU, the rest the syncs) while the
helpers matching ahead (:mod:`tripsearch.alerts.ahead`) waited for it: a
tenth of a bulk load's time. SQLite's documentation suggests the way out:
automatic checkpoints off, and checkpoints run by another thread
(``PASSIVE``: readers and writers go on meanwhile).

A :class:`Checkpointer` does that for one process's connections that write
without a sync of their own: woken after each commit, its thread
checkpoints at most every :data:`EVERY_S`. Until a checkpoint has copied
every page, the WAL grows (SQLite starts it over only at the first write
after a checkpoint that left nothing behind), and a writer that commits
every few hundred milliseconds, as the follower does in a bulk load, leaves
some behind each time. So when a checkpoint finds the WAL longer than
``restart_pages``, the thread checkpoints no more until the writer has run
one in its own thread, before its next transaction (:meth:`before_write`):
that one copies what was committed since (a batch or two), and the
transaction then starts the WAL over.

The follower forks its matching helpers: a fork while the thread is inside
SQLite could leave one of SQLite's own locks held in the child for good.
The thread holds :data:`_IN_SQLITE` while it is, and a fork waits for it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

__all__ = ["Checkpointer", "EVERY_S"]

log = logging.getLogger("tripsearch.alerts")

EVERY_S = 1.0  # at most one checkpoint a second: what a commit leaves unsynced is synced within about that

_IN_SQLITE = threading.Lock()  # held by a checkpointing thread while it calls SQLite, and across a fork
os.register_at_fork(before=_IN_SQLITE.acquire, after_in_parent=_IN_SQLITE.release, after_in_child=_IN_SQLITE.release)


class Checkpointer:
    """A thread that checkpoints the WAL of the SQLite file at ``path`` after commits (see the module's docstring)."""

    def __init__(self, path: Path, restart_pages: int, every_s: float = EVERY_S) -> None:
        self.path, self.restart_pages, self.every_s = path, restart_pages, every_s
        self.checkpoints = 0  # how many the thread ran
        self.pages = 0  # the WAL's pages at the last of them
        self._state = threading.Condition()
        self._due = False  # a commit since the last checkpoint
        self._restart = False  # the WAL is long: the writer's next transaction checkpoints first
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="tripsearch-alerts-checkpoints", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """Say that a transaction committed: a checkpoint is due."""
        with self._state:
            self._due = True
            self._state.notify()

    def before_write(self, db: sqlite3.Connection) -> None:
        """Before a write transaction on ``db``: when the WAL is long, checkpoint what is left of it here, so that the transaction starts it over."""
        if not self._restart:
            return
        _checkpoint(db)  # the thread waits meanwhile: the two never checkpoint at once
        with self._state:
            self._restart = False
            self._state.notify()

    def close(self) -> None:
        """Checkpoint what is due, then end the thread."""
        with self._state:
            self._closed = True
            self._state.notify()
        self._thread.join()

    def _run(self) -> None:
        with _IN_SQLITE:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            last = time.monotonic() - self.every_s
            while True:
                with self._state:
                    while not self._closed and (not self._due or self._restart or time.monotonic() < last + self.every_s):
                        self._state.wait(None if not self._due or self._restart else last + self.every_s - time.monotonic())
                    if not self._due:  # closed, nothing left
                        return
                    self._due = False
                with _IN_SQLITE:
                    self.pages = _checkpoint(db)
                last = time.monotonic()
                self.checkpoints += 1
                with self._state:
                    self._restart = self.pages >= self.restart_pages and not self._closed
        finally:
            with _IN_SQLITE:
                db.close()


def _checkpoint(db: sqlite3.Connection) -> int:
    """Run a PASSIVE checkpoint; return how many pages the WAL has (0 when it failed, with a warning: the next one tries again)."""
    try:
        _busy, pages, _copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(pages)
    except sqlite3.Error as exc:
        log.warning("checkpoint of the alert store failed (%s); the next one tries again", exc)
        return 0
