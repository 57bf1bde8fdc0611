"""Matching in a process of its own: follow a data directory's change feed and record what each change tells the alerts.

An :class:`~tripsearch.alerts.backend.AlertingBackend` opened with
``matching="process"`` (what ``tripsearch serve`` passes unless
``TRIPSEARCH_ALERTS_MATCHING=inline``) does not
match in the write: it stores the trips and returns, and a follower process
started beside it (:class:`Follower`) matches every change after the alert
store's cursor, as a write that finds changes nobody recorded does (the
same code: :meth:`AlertingBackend.follow`), and moves the cursor. A write
therefore pays nothing for alerts but the trip store's commit, and its
alerts are told a few milliseconds later.

- One follower works per data directory at a time: it holds an exclusive
  ``flock`` on :data:`LOCK_NAME`. Every writing process starts its own, and
  those that do not hold the lock wait for it, so when the working one's
  process ends, another takes over.
- The writing process wakes its follower after each write (a byte on a
  pipe); a follower also looks at the feed every :data:`POLL_S` seconds,
  for the writes of other processes.
- The pipe is the follower's tie to its writer: when the writer closes (or
  dies, SIGKILL included), the follower reads its end, matches what is left
  and exits. A follower that dies (SIGKILL) loses nothing: the changes
  stay after the cursor, and the next follower (another writer's, or its
  own writer's new one at its next write) records them.
- With many alerts (:data:`AHEAD_MIN_ALERTS`), a follower that is a batch
  or more behind (a bulk load) has helper processes match the next
  batches while it records the one before
  (:class:`~tripsearch.alerts.ahead.MatchAhead`): matching is two thirds
  of the work, recording one third, and recording takes the alert store's
  lock. A helper only reads, so one that dies loses nothing either.
"""

from __future__ import annotations

import fcntl
import logging
import os
import select
import subprocess
import sys
from pathlib import Path

from .ahead import MatchAhead
from .store import AlertStore

__all__ = ["AHEAD_MIN_ALERTS", "Follower", "follow", "LOCK_NAME", "POLL_S"]

log = logging.getLogger("tripsearch.alerts")

LOCK_NAME = "alerts.follower.lock"
POLL_S = 0.05  # how often a follower looks at the feed when its writer does not wake it (other processes' writes)
CLOSE_TIMEOUT_S = 300.0  # how long a writer's close waits for its follower to match what is left
AHEAD_MIN_ALERTS = 100_000  # alerts from which a follower has helper processes match ahead (MatchAhead): below, matching is cheap beside recording


_MAIN = "import sys; from tripsearch.alerts.follower import main; sys.exit(main())"  # not -m: the package imports this module first


class Follower:
    """The writing process's handle on its follower process."""

    def __init__(self, data: Path, alerts: Path) -> None:
        self.data, self.alerts = data, alerts
        self._start()

    def _start(self) -> None:
        read, wake = os.pipe()
        try:
            # a session of its own: a Ctrl-C at the terminal stops the writer, whose close (or death) ends the follower
            self.process = subprocess.Popen([sys.executable, "-c", _MAIN, str(self.data), str(self.alerts)], stdin=read, close_fds=True, start_new_session=True)
        except BaseException:
            os.close(wake)
            raise
        finally:
            os.close(read)
        os.set_blocking(wake, False)
        self._wake = wake

    def wake(self) -> None:
        """Tell the follower that the feed has changed (starting a new one if it has died). Not thread-safe: the caller serialises."""
        if self.process.poll() is not None:
            log.warning("the alerts follower of %s exited (%s); starting another", self.data, self.process.returncode)
            if self._wake >= 0:
                os.close(self._wake)
                self._wake = -1
            self._start()
        try:
            os.write(self._wake, b"\0")
        except BlockingIOError:  # the pipe is full of wake-ups already
            pass
        except BrokenPipeError:  # it died just now: the next wake starts another
            pass

    def close(self) -> None:
        """Let the follower match what is left and exit (at most :data:`CLOSE_TIMEOUT_S`)."""
        if self._wake >= 0:
            os.close(self._wake)
            self._wake = -1
        try:
            self.process.wait(CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("the alerts follower of %s did not finish within %.0f s; stopped (what it left is matched by the next)", self.data, CLOSE_TIMEOUT_S)
            self.process.kill()
            self.process.wait()


def _writer_gone(wake: int, timeout: float) -> bool:
    """Wait up to ``timeout`` for a wake-up; return whether the writer has closed its end."""
    ready, _, _ = select.select([wake], [], [], timeout)
    return bool(ready) and os.read(wake, 4096) == b""


def follow(data: Path, alerts: Path, wake: int, poll_s: float = POLL_S, ahead_min_alerts: int = AHEAD_MIN_ALERTS) -> None:
    """Follow ``data``'s change feed for the alert store ``alerts`` until the writer closes ``wake`` (see the module's docstring).

    With at least ``ahead_min_alerts`` alerts when it starts, matching runs
    ahead in helper processes (:class:`MatchAhead`).
    """
    from ..index.embedded import EmbeddedBackend
    from .backend import FEED_BATCH, AlertingBackend

    lock = os.open(data / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:  # another process's follower works: wait for it to go, or for our writer to
            if _writer_gone(wake, 0.5):
                return
    # the alert store's WAL checkpointed in a thread: the helpers matching ahead need not wait for a checkpoint's syncs
    own = AlertStore(alerts, background_checkpoints=True) if alerts.is_file() else None
    engine = AlertingBackend(EmbeddedBackend(data, refresh_interval=0, search=False), alerts if own is None else own)  # its open matches what was left
    store = engine.existing_alerts()
    ahead = MatchAhead(engine.change_feed, data, store, FEED_BATCH, close_fds=[lock]) if store is not None and len(store.index()) >= ahead_min_alerts else None
    try:
        while not _writer_gone(wake, poll_s):
            engine.follow(ahead)
        engine.follow(ahead)
    finally:
        if ahead is not None:
            ahead.close()
        engine.close()
        if own is not None:
            own.close()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    follow(Path(sys.argv[1]), Path(sys.argv[2]), sys.stdin.fileno())
    return 0


