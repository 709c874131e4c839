"""A one-line progress display for long file replays: events/s and ETA on a terminal.

Replays of a month of predictions take minutes; a person at a terminal wants to know how
long. A pipe or a log file wants no carriage returns, so the display writes nothing unless
its stream is a terminal. It redraws at most every `interval` seconds, so it costs nothing
per event.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class TextStream(Protocol):
    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...

    def isatty(self) -> bool: ...


def _is_terminal(stream: TextStream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Events, events/s, share of the file read and ETA, redrawn in place on a terminal."""

    def __init__(
        self,
        stream: TextStream,
        total_bytes: int,
        label: str = "replay",
        interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.total_bytes = total_bytes
        self.label = label
        self.interval = interval
        self.clock = clock
        self.enabled = _is_terminal(stream)
        self.started = clock()
        self._last_draw = self.started
        self._width = 0  # of the last line drawn, to blank what a shorter line leaves

    def update(self, events: int, bytes_read: int) -> None:
        """Redraw if the last drawing is at least `interval` old (cheap otherwise)."""
        if not self.enabled:
            return
        now = self.clock()
        if now - self._last_draw < self.interval:
            return
        self._last_draw = now
        self._draw(self.line(events, bytes_read, now - self.started))

    def close(self, events: int, bytes_read: int) -> None:
        """The final line, then a newline so that later output starts on its own line."""
        if not self.enabled:
            return
        self._draw(self.line(events, bytes_read, self.clock() - self.started, done=True))
        self.stream.write("\n")
        self.stream.flush()

    def line(self, events: int, bytes_read: int, elapsed: float, done: bool = False) -> str:
        rate = events / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.label}: {events:,} events", f"{rate:,.0f} events/s"]
        if self.total_bytes > 0:
            share = min(bytes_read / self.total_bytes, 1.0)
            parts.append(f"{share:.0%} of {self.total_bytes / 1e6:,.1f} MB")
            if done:
                parts.append(f"in {_duration(elapsed)}")
            elif 0 < share < 1:
                parts.append(f"ETA {_duration(elapsed * (1 - share) / share)}")
        return "  ".join(parts)

    def _draw(self, text: str) -> None:
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)
