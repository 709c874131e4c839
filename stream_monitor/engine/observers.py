"""What the engine tells whoever listens: the events a model took, and every check it ran.

One small protocol instead of reaching in: the late-label join learns of the predictions it
may later join, the backtest records every check result, and the in-process API or a test
can watch both. An observer sees; it never changes the engine's decisions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from stream_monitor.alerts.contract import Alert
from stream_monitor.alerts.results import CheckContext, CheckResult
from stream_monitor.decode.native import DecodedModel, complete_events
from stream_monitor.decode.predictions import ModelEvents
from stream_monitor.engine.models import MonitoredModel
from stream_monitor.window.ring import WindowBlock


@dataclass(frozen=True, slots=True)
class TakenEvents:
    """Events one model took into its window from one batch."""

    model: MonitoredModel
    decoded: DecodedModel  # the model's decoded events of the batch (some may be dead letters)
    positions: list[int]  # batch positions of the events taken, in order: the block's rows
    block: WindowBlock  # their arrays, as appended to the window
    seen_before: int  # the model's event count before them (their ordinals follow it)

    @property
    def events(self) -> ModelEvents:
        """The decoded events as lists; a natively read model's lists are made on first
        use, so the engine pays for them only when an observer reads them."""
        return complete_events(self.decoded)


class EngineObserver:
    """Called by the engine, in event order, from the thread that processes the batch; a
    subclass overrides the calls it needs (the others do nothing)."""

    def events_taken(self, taken: TakenEvents) -> None:
        """A model took events into its window."""
        del taken

    def checked(self, result: CheckResult, ctx: CheckContext, alert: Alert | None) -> None:
        """A check of one kind ran at `ctx`; `alert` is the transition it caused, if any."""
        del result, ctx, alert


class Observers:
    """The engine's observers, each told in the order it was added."""

    def __init__(self) -> None:
        self._all: list[EngineObserver] = []

    def add(self, observer: EngineObserver) -> None:
        self._all.append(observer)

    def __iter__(self) -> Iterator[EngineObserver]:
        return iter(self._all)

    def __bool__(self) -> bool:
        return bool(self._all)

    def events_taken(self, taken: TakenEvents) -> None:
        for o in self._all:
            o.events_taken(taken)

    def checked(self, result: CheckResult, ctx: CheckContext, alert: Alert | None) -> None:
        for o in self._all:
            o.checked(result, ctx, alert)
