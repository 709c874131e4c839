"""Page-Hinkley: a cumulative test for a change in the mean of a stream of errors.

One of the error-stream detectors of `error_stream` (same `update()` API and exact state).
"""

from __future__ import annotations

import math
from typing import Self

from stream_monitor.detectors.error_stream import State, require


class PageHinkley:
    """Page-Hinkley test (Page 1954, Hinkley 1971) for a rise (or, two-sided, any change).

    With x̄_T the running mean of the T values since the last reset,

        x̄_T = x̄_{T-1} + (x_T - x̄_{T-1}) / T
        m_T = alpha * m_{T-1} + (x_T - x̄_T - delta),    m_0 = 0,   M_T = min(m_0, ..., m_T)
        alarm (rise) when T >= min_instances and m_T - M_T > threshold

    and, when `two_sided`, also the mirror image for a fall:

        u_T = alpha * u_{T-1} + (x_T - x̄_T + delta),    u_0 = 0,   U_T = max(u_0, ..., u_T)
        alarm (fall) when T >= min_instances and U_T - u_T > threshold

    `delta` is the change in the mean that is tolerated, `threshold` (Hinkley's lambda) the
    evidence needed, both in the units of x. alpha = 1 is the classical test; alpha < 1
    fades old deviations (Gama et al. 2013). After an alarm every statistic restarts from
    zero, so the next alarm needs evidence gathered after this one.

    Example: errors around 0.1 that rise to 0.5 at the 51st value.

    >>> detector = PageHinkley(delta=0.005, threshold=1.0, min_instances=10)
    >>> errors = [0.1] * 50 + [0.5] * 50
    >>> [i for i, x in enumerate(errors) if detector.update(x)]
    [52]
    >>> PageHinkley.from_state(detector.state()).state() == detector.state()
    True
    """

    __slots__ = (
        "_down",
        "_down_max",
        "_drift",
        "_mean",
        "_n",
        "_up",
        "_up_min",
        "alpha",
        "delta",
        "min_instances",
        "threshold",
        "two_sided",
    )

    def __init__(
        self,
        delta: float = 0.05,
        threshold: float = 25.0,
        min_instances: int = 30,
        alpha: float = 1.0,
        two_sided: bool = False,
    ) -> None:
        require(delta >= 0.0, "delta must be >= 0")
        require(threshold > 0.0, "threshold must be > 0")
        require(min_instances >= 1, "min_instances must be >= 1")
        require(0.0 < alpha <= 1.0, "alpha must be in (0, 1]")
        self.delta = float(delta)
        self.threshold = float(threshold)
        self.min_instances = int(min_instances)
        self.alpha = float(alpha)
        self.two_sided = bool(two_sided)
        self.reset()

    def reset(self) -> None:
        """Forget everything seen (also what an alarm does)."""
        self._n = 0
        self._mean = 0.0
        self._up = 0.0
        self._up_min = 0.0
        self._down = 0.0
        self._down_max = 0.0
        self._drift = False

    @property
    def drift_detected(self) -> bool:
        """Whether the last update detected a change."""
        return self._drift

    @property
    def n(self) -> int:
        """Values seen since the last reset or alarm."""
        return self._n

    @property
    def mean(self) -> float:
        """The running mean of the values since the last reset or alarm."""
        return self._mean

    @property
    def statistic(self) -> float:
        """The larger of m_T - M_T and (two-sided) U_T - u_T: compare with `threshold`."""
        rise = self._up - self._up_min
        return max(rise, self._down_max - self._down) if self.two_sided else rise

    def update(self, x: float) -> bool:
        """Add one value; True exactly when this value completes the evidence of a change."""
        self._drift = False
        if not math.isfinite(x):
            return False
        n = self._n + 1
        mean = self._mean + (x - self._mean) / n
        dev = x - mean
        up = self.alpha * self._up + (dev - self.delta)
        up_min = min(self._up_min, up)
        alarm = up - up_min > self.threshold
        if self.two_sided:
            down = self.alpha * self._down + (dev + self.delta)
            down_max = max(self._down_max, down)
            alarm = alarm or down_max - down > self.threshold
            self._down, self._down_max = down, down_max
        if alarm and n >= self.min_instances:
            self.reset()
            self._drift = True
            return True
        self._n, self._mean, self._up, self._up_min = n, mean, up, up_min
        return False

    def state(self) -> State:
        """Parameters and statistics as plain numbers (exact: floats are kept as they are)."""
        return {
            "delta": self.delta,
            "threshold": self.threshold,
            "min_instances": self.min_instances,
            "alpha": self.alpha,
            "two_sided": self.two_sided,
            "n": self._n,
            "mean": self._mean,
            "up": self._up,
            "up_min": self._up_min,
            "down": self._down,
            "down_max": self._down_max,
            "drift_detected": self._drift,
        }

    @classmethod
    def from_state(cls, state: State) -> Self:
        """The detector `state()` described, ready to continue identically."""
        detector = cls(
            delta=float(state["delta"]),
            threshold=float(state["threshold"]),
            min_instances=int(state["min_instances"]),
            alpha=float(state["alpha"]),
            two_sided=bool(state["two_sided"]),
        )
        detector._n = int(state["n"])
        detector._mean = float(state["mean"])
        detector._up = float(state["up"])
        detector._up_min = float(state["up_min"])
        detector._down = float(state["down"])
        detector._down_max = float(state["down_max"])
        detector._drift = bool(state["drift_detected"])
        return detector
