"""The fleet's models stopped mid-batch, checked first and then resumed together.

The native fleet runs a batch's models side by side, each to its first stop: a due check,
or a chart that changed state (the checks and the alerts are Python's). Resumed one by one
after their checks, the models ran the rest of their events on one thread, one call each:
with 50 models a sixth of the monitor's time (docs/benchmarks.md, stage 13). So the engine
takes every stopped model's first stop, then resumes them all in one call, side by side,
and goes on in waves until none stops again. A model's checks read its own window, charts
and alert state alone (a version compared with its baseline reads another's: then the
engine takes each model to its end before the next, as before), so every model gets the
same windows, checks and alerts. Only the alerts' order within the batch would differ (a
model's later stops after the others' first ones); `AlertOrder` puts them back in the
order a model-by-model pass gives them: by the first batch position of their model.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from stream_monitor.alerts.contract import Alert
from stream_monitor.engine.native_windows import Due

Stop = tuple[int, bool]  # the batch position of a stop, and whether checks are due there


class AlertOrder:
    """Each alert of a batch tagged with its model's first batch position, as it comes."""

    def __init__(self, alerts: list[Alert]) -> None:
        self.alerts = alerts
        self.tags: list[int] = []

    def mark(self, first: int) -> None:
        """The alerts appended since the last mark came from the model first seen at `first`."""
        self.tags.extend([first] * (len(self.alerts) - len(self.tags)))

    def restore(self) -> None:
        """The alerts in model order (stable: each model's own in the order they came)."""
        tags = self.tags
        if all(a <= b for a, b in itertools.pairwise(tags)):
            return
        order = sorted(range(len(tags)), key=tags.__getitem__)
        self.alerts[: len(order)] = [self.alerts[i] for i in order]
        self.tags = [tags[i] for i in order]


class StoppedModels:
    """A batch's fleet models stopped mid-batch, taken in first-seen order with the models
    the Python writes: in waves, or (`one_by_one`) each to its last event before the next."""

    def __init__(
        self,
        alerts: list[Alert],
        one_by_one: bool,
        stopped: Callable[[str, Stop], None],
        resume_many: Callable[[list[str]], list[Stop | None]],
        still_staged: Callable[[str], bool],
    ) -> None:
        self.order = AlertOrder(alerts)
        self.waiting: list[tuple[int, str]] | None = None if one_by_one else []
        self._stopped = stopped
        self._resume_many = resume_many
        self._still_staged = still_staged

    def take(self, due: Due) -> None:
        """A model's first stop; then it waits for the next wave, or goes on to its end."""
        first, name, index, check = due
        if self.waiting is not None:
            self._stopped(name, (index, check))
            self.waiting.append((first, name))
        else:
            at: Stop | None = (index, check)
            while at is not None:
                self._stopped(name, at)
                at = self._resume_many([name])[0]
        self.order.mark(first)

    def finish(self) -> None:
        """Resume the waiting models all at once, take each next stop and resume those
        again, until none stops; then the alerts back in model order. A model forgotten
        since its stop (an older version pushed out by a key the batch met later) is not."""
        waiting = [w for w in self.waiting or [] if self._still_staged(w[1])]
        while waiting:
            stops = self._resume_many([name for _first, name in waiting])
            again = []
            for (first, name), stop in zip(waiting, stops, strict=True):
                if stop is not None:
                    self._stopped(name, stop)
                    self.order.mark(first)
                    again.append((first, name))
            waiting = again
        self.order.restore()
