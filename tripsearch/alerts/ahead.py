"""Matching ahead: helper processes match the change feed's next batches while a follower records the one before (:mod:`tripsearch.alerts.follower`).

Recording takes the alert store's lock and is a third of a trip's work;
matching (reading the stored trip, the alerts index, the kernels) is two
thirds and reads only. A follower far behind its feed (a bulk load) hands
ranges of the feed to :data:`AHEAD_HELPERS` helpers, forked from it, and
records what they send back in the feed's order, so matching and recording
use both cores.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
from collections import deque
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Sequence

import numpy as np
from numpy.typing import NDArray

from ..model import paused_gc
from .index import AlertIndex
from .store import AlertStore, TripOutcome

if TYPE_CHECKING:
    from .backend import ChangeFeed

__all__ = ["AHEAD_HELPERS", "MatchAhead", "Matched"]

log = logging.getLogger("tripsearch.alerts")

AHEAD_HELPERS = 2  # one matches while the writer writes, both once it is done (two cores)

# what a helper sends for a batch: (trip id, version, status, groups) per trip, each group's body and size, and every group's alerts in one array
_Packed = tuple[list[tuple[str, int | None, str, int]], list[bytes], NDArray[np.int64], NDArray[np.int64]]


class Matched(NamedTuple):
    """The outcomes of the feed's changes after ``start`` up to ``seen`` (``changes`` of them), matched ahead of their recording."""

    start: int
    seen: int
    changes: int
    outcomes: list[TripOutcome]


class MatchAhead:
    """Helper processes that match the feed's next batches of changes while the follower records the one before.

    Called with the cursor, it returns the changes after it, matched (the
    :class:`Matched` the follower records under the alert store's lock),
    and hands the batches after those to the helpers, so that they match
    while it records. A batch is a range of the feed's sequence numbers
    (of :attr:`batch` changes when it was handed out); each helper reads its
    range's changes itself, and the alert store, and changes nothing.
    Recording under the lock drops the alerts deleted since a helper
    looked; the batches another writer recorded meanwhile are dropped.
    When a helper has died, it returns None (match them yourself), with a
    warning, and starts others.

    The helpers are forked from this process once it has read the alerts:
    they share its alerts index (copy on write: the index's arrays are
    replaced when alerts change, never written to) and read only the
    alerts saved since. Nothing else crosses: each opens its own SQLite
    connections, and closes the descriptors of ``close_fds`` (the
    follower's lock) and of the other helpers' pipes.
    """

    def __init__(self, feed: ChangeFeed, data: Path, alerts: AlertStore, batch: int, helpers: int = AHEAD_HELPERS, close_fds: Sequence[int] = ()) -> None:
        self.feed, self.data, self.alerts, self.batch, self.helpers, self.close_fds = feed, data, alerts, batch, helpers, close_fds
        self.matched = 0  # changes the helpers matched and this process was handed
        self._start()

    def ready(self) -> bool:
        """Whether every helper has opened the stores."""
        return all(helper.ready() for helper in self._helpers)

    def _start(self) -> None:
        index = self.alerts.index()  # read before the fork: the helpers have it then
        # what this process has made so far stays out of the collector's walks, here and in the helpers: a walk writes
        # to every object it visits, and after a fork each page written is copied (Python's gc.freeze documentation)
        gc.freeze()
        self._helpers: list[_Helper] = []
        for _ in range(self.helpers):
            self._helpers.append(_Helper(self.data, self.alerts.path, index, self.batch, [*self.close_fds, *(h.conn.fileno() for h in self._helpers)]))
        self._asked: deque[tuple[int, int, _Helper]] = deque()  # the (after, until] range of each batch a helper matches, in the feed's order

    def __call__(self, cursor: int) -> Matched | None:
        try:
            ready = [helper for helper in self._helpers if helper.ready()]
            if not ready or (not self._asked and self.feed.max_seq() - cursor < self.batch):  # a few writes: matched sooner here
                return None
            if self._asked and self._asked[0][0] != cursor:  # recorded by another writer meanwhile
                for *_, helper in self._asked:
                    helper.conn.recv()
                self._asked.clear()
            self._hand_out(cursor, ready)
            if not self._asked:  # nothing after the cursor any more
                return Matched(cursor, cursor, 0, [])
            after, until, helper = self._asked.popleft()
            changes, outcomes = _unpacked(helper.conn.recv())
            self._hand_out(until, ready)
            self.matched += changes
            return Matched(after, until, changes, outcomes)
        except (EOFError, OSError) as exc:
            log.warning("a matching process of the alerts follower exited (%s); starting others", exc)
            self.close()
            self._start()
            return None

    def _hand_out(self, cursor: int, ready: list[_Helper]) -> None:
        """Give each ready helper not at work the next range of changes after those asked (after ``cursor`` if none is)."""
        after = self._asked[-1][1] if self._asked else cursor
        busy = [helper for *_, helper in self._asked]
        for helper in ready:
            if helper in busy:
                continue
            changes = next(iter(self.feed.changes(after, known=_every, batch=self.batch)), None)  # the numbers only
            if not changes:
                return
            until = changes[-1].seq
            helper.conn.send((after, until, self.alerts.clock()))  # its time is the follower's: both judge expiry alike
            self._asked.append((after, until, helper))
            after = until

    def close(self) -> None:
        for helper in self._helpers:
            helper.close()


def _every(trip_id: str, version: int) -> bool:
    return True


class _Helper:
    """One matching process of :class:`MatchAhead`."""

    def __init__(self, data: Path, alerts: Path, index: AlertIndex, batch: int, close_fds: Sequence[int]) -> None:
        context = multiprocessing.get_context("fork")
        self.conn, theirs = context.Pipe()
        self.process = context.Process(target=_match_ahead, args=(theirs, data, alerts, index, batch, [*close_fds, self.conn.fileno()]), name="tripsearch-alerts-ahead", daemon=True)
        self.process.start()
        theirs.close()
        self._ready = False

    def ready(self) -> bool:
        """Whether it has opened the stores (it says so once)."""
        if not self._ready and self.conn.poll():
            self.conn.recv()
            self._ready = True
        return self._ready

    def close(self) -> None:
        self.conn.close()  # it reads the end of its pipe and exits
        self.process.join(5.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def _match_ahead(conn: Connection, data: Path, alerts: Path, index: AlertIndex, batch: int, close_fds: Sequence[int]) -> None:
    """A helper process of :class:`MatchAhead`: for each (after, until] range received (and the time), match its changes and send how many and their outcomes."""
    from ..index.embedded import EmbeddedBackend
    from .backend import match_changes

    for fd in close_fds:
        os.close(fd)
    feed = EmbeddedBackend(data, refresh_interval=0, search=False).change_feed
    now = [0.0]
    store = AlertStore(alerts, readonly=True, clock=lambda: now[0], index=index)
    conn.send(None)  # ready
    while True:
        try:
            after, until, now[0] = conn.recv()
            with paused_gc():
                # those of the range now: a trip written again since has left it for the feed's end
                changes = [c for c in next(iter(feed.changes(after, batch=batch)), []) if c.seq <= until]
                conn.send((len(changes), _packed(match_changes(store, changes))))
        except (EOFError, OSError):  # the follower is done (or dead)
            return


def _packed(outcomes: list[TripOutcome]) -> _Packed:
    """Return outcomes as a few objects that pickle fast (a batch's alerts in one array, not one per group)."""
    groups = [group for out in outcomes for group in out.matches]
    heads = [(out.trip_id, out.version, out.status, len(out.matches)) for out in outcomes]
    sizes = np.fromiter((len(alerts) for _, alerts in groups), dtype=np.int64, count=len(groups))
    told = np.concatenate([alerts for _, alerts in groups]) if groups else np.zeros(0, dtype=np.int64)
    return heads, [body for body, _ in groups], sizes, told


def _unpacked(sent: tuple[int, _Packed]) -> tuple[int, list[TripOutcome]]:
    changes, (heads, bodies, sizes, told) = sent
    groups = list(zip(bodies, np.split(told, np.cumsum(sizes)[:-1]) if len(sizes) else []))
    outcomes, at = [], 0
    for trip_id, version, status, n in heads:
        outcomes.append(TripOutcome(trip_id, version, status, groups[at : at + n]))
        at += n
    return changes, outcomes
