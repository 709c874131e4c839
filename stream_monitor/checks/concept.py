"""Concept drift: an ADWIN change detector on a model's stream of errors.

Errors reach it from two places, both in arrival order: events that carry their `actual`,
and labels joined later to their prediction. Both feed the same `ErrorStream`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream_monitor.alerts.results import CheckResult
from stream_monitor.arrays import FloatArray
from stream_monitor.checks.verdicts import not_judged
from stream_monitor.kernels import Adwin  # bit for bit detectors.adwin.ADWIN


@dataclass(slots=True)
class ErrorStream:
    """A model's errors in arrival order, watched by ADWIN (made at the first error)."""

    delta: float
    detector: Adwin | None = None
    changed: bool = False  # a change was detected since the last check

    def watch(self, errors: FloatArray) -> None:
        """Feed the finite errors to the change detector, in order."""
        finite = errors[np.isfinite(errors)]
        if not finite.size:
            return
        if self.detector is None:
            self.detector = Adwin(delta=self.delta)
        if self.detector.update_many(finite):  # in order: ADWIN is sequential
            self.changed = True

    def check(self) -> CheckResult:
        """Unhealthy at the check after the error stream changed; healthy at the next."""
        if self.detector is None:
            return not_judged("concept_drift", "adwin", self.delta, "no labelled events yet")
        changed, self.changed = self.changed, False
        mean = self.detector.estimation
        return CheckResult(
            "concept_drift",
            "adwin",
            mean,
            self.delta,
            not changed,
            details={"error_mean": mean, "error_window": float(self.detector.n)},
        )
