"""Progress of a long command on stderr: a bar on a terminal, a plain line every few seconds otherwise.

On a terminal the bar is redrawn in place (``\\r``) at most ten times a
second: trips done, trips/s, and, when the size of the input is known, the
share done and the time left. In a log (stderr not a terminal: a pipe, a
file, a CI job) a full line is written every ``interval_s`` seconds
instead, so the log stays readable and still shows the command alive.
"""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["Progress", "format_duration"]

_BAR_WIDTH = 24
_REDRAW_S = 0.1


def format_duration(seconds: float) -> str:
    """Return seconds as ``m:ss`` or ``h:mm:ss``.

    >>> format_duration(5.2), format_duration(75), format_duration(3725)
    ('0:05', '1:15', '1:02:05')
    """
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Report trips done (and bytes read) on ``stream``, against ``total_trips`` or else ``total_bytes`` when known."""

    def __init__(self, stream: TextIO, total_bytes: int | None = None, *, total_trips: int | None = None, label: str = "indexing", interval_s: float = 5.0, terminal: bool | None = None, enabled: bool = True) -> None:
        self.stream = stream
        self.total_bytes = total_bytes if total_bytes else None
        self.total_trips = total_trips if total_trips else None  # when given, the share and ETA count trips, not bytes
        self.label = label
        self.interval_s = interval_s
        self.terminal = stream.isatty() if terminal is None else terminal
        self.enabled = enabled
        self.trips = 0
        self.bytes = 0
        self.started = time.perf_counter()
        self._shown = self.started
        self._drawn = False

    def update(self, trips: int, nbytes: int) -> None:
        """Count ``trips`` more trips and ``nbytes`` more bytes read; redraw if it is time."""
        self.trips += trips
        self.bytes += nbytes
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._shown >= (_REDRAW_S if self.terminal else self.interval_s):
            self._shown = now
            self._show(now)

    def message(self, text: str) -> None:
        """Write a line of its own (a rejected trip, say) without mixing it into the bar; the bar is redrawn at the next update."""
        if self.enabled and self.terminal:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state (on a terminal) and end the line."""
        if not self.enabled:
            return
        if self.terminal:
            self._show(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        """Return the progress as text: trips, trips/s, and the share done and time left when the input size is known."""
        elapsed = max((time.perf_counter() if now is None else now) - self.started, 1e-9)
        rate = self.trips / elapsed
        parts = [f"{self.trips:,} trips", f"{rate:,.0f} trips/s"]
        share = self.share()
        if share is not None:
            if self.total_trips:
                done, total, speed = self.trips, self.total_trips, rate
                parts.append(f"{share:.0%} of {total:,}")
            else:
                assert self.total_bytes is not None
                done, total, speed = self.bytes, self.total_bytes, self.bytes / elapsed
                parts.append(f"{share:.0%} of {total / 1e6:,.1f} MB")
            parts.append(f"ETA {format_duration(max(0, total - done) / speed)}" if speed > 0 else "ETA ?")
        parts.append(f"elapsed {format_duration(elapsed)}")
        return ", ".join(parts)

    def share(self) -> float | None:
        """Return the share done (0 to 1), or None when the total is unknown."""
        if self.total_trips:
            return min(1.0, self.trips / self.total_trips)
        if self.total_bytes:
            return min(1.0, self.bytes / self.total_bytes)
        return None

    def _show(self, now: float) -> None:
        text = self.line(now)
        if self.terminal:
            share = self.share()
            if share is not None:
                filled = int(_BAR_WIDTH * share)
                text = f"[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {text}"
            self.stream.write(f"\r{self.label} {text}\x1b[K")
        else:
            self.stream.write(f"{self.label}: {text}\n")
        self.stream.flush()
