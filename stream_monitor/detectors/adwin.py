"""ADWIN: an adaptive window over a stream of errors that drops its older part on a change.

One of the error-stream detectors of `error_stream` (same `update()` API and exact state).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Self

from stream_monitor.detectors.error_stream import State, require


class ADWIN:
    """ADWIN2 (Bifet & Gavaldà 2007): a window that drops its older part when the means differ.

    The window W is kept as an exponential histogram: row i holds buckets of 2**i values
    (their sum and their sum of squared deviations), oldest first; when a row holds more than
    `max_buckets` (the paper's M) buckets, its two oldest merge into one bucket of row i + 1.
    Bucket sizes are therefore powers of two, non-increasing from the oldest to the newest,
    and no row holds more than M buckets after an update; memory is O(M log |W|).

    Every `clock` updates each split W = W0 · W1 at a bucket boundary (both parts holding at
    least `min_window_length` values) is tested with the paper's ADWIN2 bound

        1/m = 1/n0 + 1/n1,   delta' = delta / ln |W|,   sigma_W^2 = variance of W
        eps_cut = sqrt(2/m * sigma_W^2 * ln(2/delta')) + 2/(3m) * ln(2/delta')
        cut when |mean(W0) - mean(W1)| >= eps_cut

    and, as long as some split violates the bound, the oldest values up to the newest
    violating split are dropped (the paper only asks to "drop elements from the tail of W
    until" no split violates; dropping up to the newest violating split leaves fewer pre-change
    values behind to fire a second time). An update that dropped anything returns True.

    Example: the mean of the errors moves from 0.2 to 0.6 after 1 000 values; the window is
    cut soon after and keeps only values from after the change.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> errors = np.concatenate([rng.normal(0.2, 0.05, 1000), rng.normal(0.6, 0.05, 1000)])
    >>> detector = ADWIN()
    >>> cuts = [i for i, x in enumerate(errors) if detector.update(x)]
    >>> cuts[0], detector.width < 1000, round(detector.estimation, 1)
    (1023, True, 0.6)
    """

    __slots__ = (
        "_drift",
        "_tick",
        "_total",
        "_totals",
        "_variance",
        "_variances",
        "_width",
        "clock",
        "delta",
        "max_buckets",
        "min_window_length",
    )

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
    ) -> None:
        require(0.0 < delta < 1.0, "delta must be in (0, 1)")
        require(clock >= 1, "clock must be >= 1")
        require(max_buckets >= 2, "max_buckets must be >= 2")
        require(min_window_length >= 1, "min_window_length must be >= 1")
        self.delta = float(delta)
        self.clock = int(clock)
        self.max_buckets = int(max_buckets)
        self.min_window_length = int(min_window_length)
        self.reset()

    def reset(self) -> None:
        """Empty the window."""
        self._totals: list[list[float]] = []  # row i: sums of buckets of 2**i values
        self._variances: list[list[float]] = []  # row i: their sums of squared deviations
        self._width = 0
        self._total = 0.0
        self._variance = 0.0  # sum of squared deviations from the mean over W
        self._tick = 0  # updates since the last clock tick
        self._drift = False

    @property
    def drift_detected(self) -> bool:
        """Whether the last update cut the window."""
        return self._drift

    @property
    def n(self) -> int:
        """Values in the window: those since the last reset or cut that the cut kept."""
        return self._width

    @property
    def width(self) -> int:
        """Values in the window (the same as `n`)."""
        return self._width

    @property
    def estimation(self) -> float:
        """Mean of the window (0.0 when it is empty)."""
        return self._total / self._width if self._width else 0.0

    @property
    def variance(self) -> float:
        """Population variance of the window (0.0 when it is empty)."""
        return self._variance / self._width if self._width else 0.0

    def buckets(self) -> list[tuple[int, float, float]]:
        """(size, sum, sum of squared deviations) of each bucket, oldest first."""
        return [
            (1 << i, total, var)
            for i in range(len(self._totals) - 1, -1, -1)
            for total, var in zip(self._totals[i], self._variances[i], strict=True)
        ]

    def update(self, x: float) -> bool:
        """Add one value; True exactly when this update cut the window."""
        return self.update_many((x,))

    def update_many(self, values: Iterable[float]) -> bool:
        """Add values in order, exactly as one `update` each would (same arithmetic, same
        cuts); True when any of them cut the window, and `drift_detected` tells whether the
        last one did. One call per block of values: the per-value work stays in locals."""
        any_cut = last = False
        width, total, variance, tick = self._width, self._total, self._variance, self._tick
        totals, variances, most, clock = self._totals, self._variances, self.max_buckets, self.clock
        for value in values:
            last = False
            if not math.isfinite(value):
                continue
            x = float(value)
            if width:
                d = x - total / width
                variance += width * d * d / (width + 1)
            width += 1
            total += x
            if not totals:
                totals.append([])
                variances.append([])
            totals[0].append(x)
            variances[0].append(0.0)
            row = 0
            while len(totals[row]) > most:  # merge the row's two oldest buckets upwards
                size = 1 << row
                t1, t2 = totals[row].pop(0), totals[row].pop(0)
                v1, v2 = variances[row].pop(0), variances[row].pop(0)
                if row + 1 == len(totals):
                    totals.append([])
                    variances.append([])
                d = t1 - t2
                totals[row + 1].append(t1 + t2)
                variances[row + 1].append(v1 + v2 + d * d / (2 * size))
                row += 1
            tick += 1
            if tick == clock:
                tick = 0
                if width >= 2 * self.min_window_length:
                    self._width, self._total, self._variance = width, total, variance
                    last = self._cut()
                    any_cut = any_cut or last
                    width, total, variance = self._width, self._total, self._variance
        self._width, self._total, self._variance, self._tick = width, total, variance, tick
        self._drift = last
        return any_cut

    def _newest_violating_split(self) -> int:
        """Values in W0 for the newest split that violates eps_cut (0 when none does)."""
        width, total = self._width, self._total
        sigma2 = self._variance / width
        log_term = math.log(2.0 * math.log(width) / self.delta)
        least = self.min_window_length
        n0, t0, cut = 0, 0.0, 0
        for row in range(len(self._totals) - 1, -1, -1):
            size = 1 << row
            for bucket_total in self._totals[row]:
                n0 += size
                t0 += bucket_total
                n1 = width - n0
                if n1 < least:
                    return cut
                if n0 < least:
                    continue
                inv_m = 1.0 / n0 + 1.0 / n1
                eps = math.sqrt(2.0 * inv_m * sigma2 * log_term) + 2.0 / 3.0 * inv_m * log_term
                if abs(t0 / n0 - (total - t0) / n1) >= eps:
                    cut = n0
        return cut

    def _cut(self) -> bool:
        cut = False
        while self._width >= 2 * self.min_window_length:
            drop = self._newest_violating_split()
            if drop == 0:
                break
            cut = True
            while drop:
                top = len(self._totals) - 1
                self._totals[top].pop(0)
                self._variances[top].pop(0)
                drop -= 1 << top
                while self._totals and not self._totals[-1]:
                    self._totals.pop()
                    self._variances.pop()
            self._summarise()
        return cut

    def _summarise(self) -> None:
        """Width, sum and squared deviations of W again from its buckets (after a cut)."""
        width, total, variance = 0, 0.0, 0.0
        for size, bucket_total, bucket_variance in self.buckets():
            if width:
                d = bucket_total / size - total / width
                variance += bucket_variance + d * d * width * size / (width + size)
            else:
                variance = bucket_variance
            width += size
            total += bucket_total
        self._width, self._total, self._variance = width, total, variance

    def state(self) -> State:
        """Parameters, buckets and window sums as plain numbers and lists (exact)."""
        return {
            "delta": self.delta,
            "clock": self.clock,
            "max_buckets": self.max_buckets,
            "min_window_length": self.min_window_length,
            "totals": [list(row) for row in self._totals],
            "variances": [list(row) for row in self._variances],
            "width": self._width,
            "total": self._total,
            "variance": self._variance,
            "tick": self._tick,
            "drift_detected": self._drift,
        }

    @classmethod
    def from_state(cls, state: State) -> Self:
        """The detector `state()` described, ready to continue identically."""
        detector = cls(
            delta=float(state["delta"]),
            clock=int(state["clock"]),
            max_buckets=int(state["max_buckets"]),
            min_window_length=int(state["min_window_length"]),
        )
        detector._totals = [[float(v) for v in row] for row in state["totals"]]
        detector._variances = [[float(v) for v in row] for row in state["variances"]]
        require(
            [len(r) for r in detector._totals] == [len(r) for r in detector._variances],
            "totals and variances must have the same shape",
        )
        detector._width = int(state["width"])
        detector._total = float(state["total"])
        detector._variance = float(state["variance"])
        detector._tick = int(state["tick"])
        detector._drift = bool(state["drift_detected"])
        return detector
