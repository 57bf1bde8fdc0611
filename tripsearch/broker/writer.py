"""Where the worker's backend writes run: a thread of the worker, or a child process beside its event loop.

A worker spends its time in two stages: the event loop takes deliveries
and reads the events' envelopes; the writer parses the trips, checks that
each is the trip its event names (id and version), and stores them (the
bulk load's own work). Both writers take a batch's upserts and
deletes with :meth:`submit` and run the batches one at a time, in the order
submitted; the worker keeps the next batch submitted while one is written,
so the writer never waits for the event loop between two batches.

- :class:`ThreadWriter`: a backend the caller opened, written from one
  thread (its SQLite connection or Elasticsearch client stays on it). The
  event loop and the write share the GIL, so they overlap only while
  SQLite syncs the disk or Elasticsearch answers.
- :class:`WriterProcess`: a child process that opens the backend itself
  (``tripsearch.open(target, **options)``), so the two stages run on two
  cores. A batch crosses a pipe as the trips' JSON text, its reports come
  back the same way. `tripsearch worker` writes this way by default.

The worker's guarantees do not change: a batch's future resolves once the
write is durable, and the worker acknowledges only then. If the child dies
(or is killed), every batch it had not answered fails with
:class:`~tripsearch.errors.BackendUnavailable`, so the worker holds them,
unacknowledged, and retries; the next batch starts a new child. Versions
make the rewrite of a batch the child may have stored harmless. A child
whose parent is gone reads the end of its pipe and exits after the write in
progress; SIGINT and SIGTERM are left to the parent, which drains and then
closes the child.
"""

from __future__ import annotations

import atexit
import fcntl
import gc
import logging
import multiprocessing
import queue
import signal
import threading
import traceback
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..backend import Backend, DeleteReport, ParsedUpserts, UpsertReport, parse_upserts
from ..errors import BackendUnavailable, TripSearchError
from ..model import gc_paused

__all__ = ["BatchWriter", "ThreadWriter", "Upsert", "WriterProcess", "WriterProcessError", "Written"]

log = logging.getLogger("tripsearch.worker")

Written = tuple[UpsertReport | None, DeleteReport | None]  # a batch's reports (None: the batch had no upserts, or no deletes)
Upsert = tuple[str, int, bytes]  # an upsert event's trip_id, version and trip document (JSON text)
_STOP_S = 30.0  # how long close() waits for the child to finish its writes and exit
_OPEN_S = 120.0  # how long a new child may take to open the backend
_PIPE_BYTES = 1 << 20  # the requests pipe's buffer: a batch of 500 trips of 2 KB fits while the child writes the one before


class WriterProcessError(TripSearchError):
    """The child could not open the backend, or failed in a way retrying cannot fix; the message carries its reason."""


@runtime_checkable
class BatchWriter(Protocol):
    """Writes batches one at a time, in the order submitted."""

    def submit(self, upserts: list[Upsert], deletes: list[tuple[str, int]]) -> Future[Written]:
        """Queue a batch: upserts ((trip_id, version, trip as JSON text): a trip of another id or version is rejected), then deletes ((id, version)); the future resolves once it is durable."""
        ...

    def close(self) -> None:
        """Finish the batches submitted and stop."""
        ...


class ThreadWriter:
    """A backend's writes in one thread of this process; :meth:`close` stops the thread, the backend stays open (its opener closes it)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tripsearch-worker-write")

    def submit(self, upserts: list[Upsert], deletes: list[tuple[str, int]]) -> Future[Written]:
        return self._thread.submit(_write, self._backend, upserts, deletes)

    def close(self) -> None:
        self._thread.shutdown(wait=True)


@gc_paused  # parsed here, written by the backend: the trips are freed before the collector runs again
def _write(backend: Backend, upserts: list[Upsert], deletes: list[tuple[str, int]]) -> Written:
    report = None
    if upserts:
        # parsed here, where the bulk load parses too, and checked against the events' trip_id and version
        trips = ParsedUpserts(*parse_upserts([trip for _, _, trip in upserts], expect=[(trip_id, version) for trip_id, version, _ in upserts]))
        report = backend.upsert(trips)
    return (report, backend.delete(deletes) if deletes else None)


class WriterProcess:
    """A backend opened and written by a child process (``tripsearch.open(target, **options)``); a child that dies is replaced at the next batch."""

    def __init__(self, target: str | Path, **options: Any) -> None:
        self._target = str(target)
        self._options = options
        self._lock = threading.Lock()
        self._child: _Child | None = None
        self._closed = False
        # before multiprocessing's own exit handler, which would wait forever for a child that ignores
        # SIGTERM and still has its pipe open (a caller that forgot close(), an exception on the way out)
        atexit.register(self.close)

    @property
    def pid(self) -> int | None:
        """The child's process id (None before the first batch)."""
        child = self._child
        return None if child is None else child.process.pid

    def start(self) -> None:
        """Start the child and wait until it has opened the backend; raise :class:`WriterProcessError` (or ``BackendUnavailable``) if it cannot."""
        with self._lock:
            self._current()

    def submit(self, upserts: list[Upsert], deletes: list[tuple[str, int]]) -> Future[Written]:
        """Queue a batch (see :class:`BatchWriter`); starts a child first when there is none alive, which takes a second or so."""
        with self._lock:
            try:
                child = self._current()
            except (WriterProcessError, BackendUnavailable) as exc:
                failed: Future[Written] = Future()
                failed.set_exception(exc)
                return failed
        return child.submit((upserts, deletes))

    def close(self) -> None:
        """Let the child finish the batches submitted, close the backend and exit; kill it if it does not within ``_STOP_S``."""
        with self._lock:
            child, self._child = self._child, None
            self._closed = True
        atexit.unregister(self.close)
        if child is not None:
            child.close(_STOP_S)

    def _current(self) -> _Child:
        if self._closed:
            raise WriterProcessError("the writer process was closed")
        if self._child is not None and self._child.alive:
            return self._child
        if self._child is not None:
            self._child.close(0)
        self._child = None
        self._child = _Child(self._target, self._options)
        return self._child


def _widen(pipe: Connection) -> None:
    """Give a pipe a buffer of up to ``_PIPE_BYTES`` (Linux), so the next batch is in it when the child asks.

    With the default 64 KB the sender could put only the start of a batch in
    the pipe; the rest crossed while the child waited for it, 64 KB at a time,
    each piece sent by a thread that must take the GIL from the busy event
    loop first: 11% of the child's time went in waiting for batches.
    """
    set_size: int | None = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    if set_size is None:
        return
    for size in (_PIPE_BYTES, _PIPE_BYTES // 4):  # the second if the system's pipe-max-size is lower
        try:
            fcntl.fcntl(pipe.fileno(), set_size, size)
            return
        except OSError:
            continue


class _Child:
    """One child process: a thread sends the batches down one pipe, another reads the answers, in order, from a second."""

    def __init__(self, target: str, options: dict[str, Any]) -> None:
        self.alive = True
        self._closing = False
        self._lock = threading.Lock()
        self._pending: deque[Future[Written]] = deque()  # sent or about to be, answered in this order
        self._outbox: queue.SimpleQueue[tuple[list[Upsert], list[tuple[str, int]]] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        context = multiprocessing.get_context("spawn")  # not fork: the parent runs threads and an event loop
        requests_in, self._requests = context.Pipe(duplex=False)
        _widen(self._requests)
        self._answers, answers_out = context.Pipe(duplex=False)
        self.process = context.Process(target=_serve, args=(requests_in, answers_out, target, options), name="tripsearch-writer", daemon=True)
        try:
            self.process.start()
        except OSError as exc:  # no process or file descriptor left: the machine may recover
            for end in (requests_in, answers_out, self._requests, self._answers):
                end.close()
            raise BackendUnavailable(f"cannot start the writer process: {exc}", retry_after=1.0) from None
        requests_in.close()
        answers_out.close()
        status, value = self._opened(target)
        if status != "ok":
            self.close(5)
            if status == "unavailable":  # the store or cluster is down now: retried like a failed write
                reason, retry_after = value
                raise BackendUnavailable(reason, retry_after=retry_after)
            raise WriterProcessError(value)
        self._threads = [threading.Thread(target=self._send_all, name="tripsearch-writer-send", daemon=True),
                         threading.Thread(target=self._read_all, name="tripsearch-writer-read", daemon=True)]
        for thread in self._threads:
            thread.start()

    def _opened(self, target: str) -> tuple[str, Any]:
        """Wait for the child's first answer: whether it opened the backend."""
        try:
            if self._answers.poll(_OPEN_S):
                answer: tuple[str, Any] = self._answers.recv()
                return answer
            return "unavailable", (f"the writer process did not open {target} within {_OPEN_S:.0f} s", 1.0)
        except (EOFError, OSError):
            return "unavailable", (f"the writer process exited while opening {target} (exit code {self.process.exitcode})", 1.0)

    def submit(self, batch: tuple[list[Upsert], list[tuple[str, int]]]) -> Future[Written]:
        future: Future[Written] = Future()
        # running at once, so never cancelled: the batch goes to the child whatever the caller does, and
        # its answer must find its future (a worker whose session ends cancels what it waits for)
        future.set_running_or_notify_cancel()
        with self._lock:
            if not self.alive:
                future.set_exception(self._gone())
                return future
            self._pending.append(future)
        self._outbox.put(batch)
        return future

    def close(self, timeout: float) -> None:
        """Send the end after the batches queued, wait ``timeout`` for the child to exit (then kill it), read its last answers and close the pipes."""
        self._closing = True
        self._outbox.put(None)
        self.process.join(timeout)
        if self.process.is_alive():
            if timeout:
                log.warning("the writer process did not exit within %.0f s; killing it", timeout)
            self.process.kill()
            self.process.join()
        for thread in self._threads:  # the reader ends at the end of the answers, the sender after the None
            thread.join(5)
        self._fail()
        self._requests.close()
        self._answers.close()

    def _send_all(self) -> None:
        while True:
            batch = self._outbox.get()
            try:
                self._requests.send(batch)
            except OSError:  # the child is gone: the reader fails what is pending
                return
            if batch is None:
                return

    def _read_all(self) -> None:
        try:
            while True:
                try:
                    status, value = self._answers.recv()
                except (EOFError, OSError):
                    return
                with self._lock:
                    future = self._pending.popleft()
                if status == "ok":
                    future.set_result(value)
                elif status == "unavailable":
                    reason, retry_after = value
                    future.set_exception(BackendUnavailable(reason, retry_after=retry_after))
                else:
                    future.set_exception(WriterProcessError(f"the writer process failed: {value}"))
        finally:
            # however the answers end, nothing waits on this child any more: it is replaced at the next batch
            if not self._closing and self.process.is_alive():
                self.process.kill()
            self._fail()

    def _fail(self) -> None:
        """Mark the child gone and fail every batch it has not answered."""
        with self._lock:
            self.alive = False
            pending = list(self._pending)
            self._pending.clear()
        for future in pending:
            future.set_exception(self._gone())

    def _gone(self) -> BackendUnavailable:
        code = self.process.exitcode
        return BackendUnavailable(f"the writer process ended (exit code {code}) before answering; a new one is started", retry_after=0.5)


def _serve(requests: Connection, answers: Connection, target: str, options: dict[str, Any]) -> None:
    """The child: open the backend, then write each batch received, in order, until None or the end of the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent drains on these, then closes us
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import tripsearch

    try:
        backend = tripsearch.open(target, **options)
    except BackendUnavailable as exc:  # the store or cluster is down now: the parent retries later
        answers.send(("unavailable", (f"cannot open {target}: {exc.reason}", exc.retry_after)))
        return
    except Exception as exc:  # a setting that retrying cannot fix: said to the parent, which raises it
        answers.send(("error", f"cannot open {target}: {exc}"))
        return
    answers.send(("ok", None))
    gc.freeze()  # what the imports and the opening made stays: full collections walk only the batches
    try:
        while True:
            try:
                batch = requests.recv()
            except EOFError:  # the parent is gone
                return
            if batch is None:
                return
            try:
                answer: tuple[str, Any] = ("ok", _write(backend, *batch))
            except BackendUnavailable as exc:
                answer = ("unavailable", (exc.reason, exc.retry_after))
            except Exception as exc:
                answer = ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            try:
                answers.send(answer)
            except OSError:  # the parent is gone; what was written stays written
                return
    finally:
        backend.close()
