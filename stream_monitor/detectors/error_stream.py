"""What the engine needs of a detector that follows a stream of model errors.

A window check compares a window with a fixed reference; these detectors instead follow the
stream one value at a time (an absolute error, or 0/1 for a misclassification) and say at
which update its mean changed. The API follows River's `drift` module: `update(x)` returns
True exactly at the update where a change is detected, `drift_detected` repeats that answer
until the next update, and the detector then carries on from the change, so one change
fires once. `state()` is a small dict of plain numbers and lists (JSON-safe, no infinities)
and `from_state(state)` rebuilds a detector that continues bit for bit as the original would.

Non-finite values (a missing error) are ignored: they neither count nor move a statistic.
The detectors: `page_hinkley.PageHinkley` and `adwin.ADWIN`. Definitions and the
measurements behind the defaults: docs/detectors-sequential.md.
"""

from __future__ import annotations

from typing import Any, Protocol

State = dict[str, Any]


class DriftDetector(Protocol):
    """What the engine relies on: one value in, True exactly when a change is detected."""

    @property
    def drift_detected(self) -> bool: ...

    @property
    def n(self) -> int: ...

    def update(self, x: float) -> bool: ...

    def reset(self) -> None: ...

    def state(self) -> State: ...


def require(ok: bool, message: str) -> None:
    """Reject a bad parameter with a ValueError that names it."""
    if not ok:
        raise ValueError(message)
