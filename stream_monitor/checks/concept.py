"""Concept drift: a change detector on a model's stream of errors, ADWIN (the default) or
Page-Hinkley (`--concept-detector page_hinkley`).

Errors reach it from two places, both in arrival order: events that carry their `actual`,
and labels joined later to their prediction. Both feed the same `ErrorStream`.
ADWIN needs no scale (its delta is a confidence); Page-Hinkley's tolerated change and
threshold are in the errors' units, so it suits a model whose error scale is known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stream_monitor.alerts.contract import Detail
from stream_monitor.alerts.results import CheckResult
from stream_monitor.arrays import FloatArray
from stream_monitor.checks.verdicts import not_judged
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.detectors.page_hinkley import PageHinkley
from stream_monitor.kernels import Adwin  # bit for bit detectors.adwin.ADWIN


@dataclass(slots=True)
class ErrorStream:
    """A model's errors in arrival order, watched by a change detector (made at the first
    error): ADWIN with confidence `delta`, or a two-sided Page-Hinkley test."""

    delta: float
    detector: Adwin | PageHinkley | None = None
    changed: bool = False  # a change was detected since the last check
    baseline: float = math.nan  # the error mean at the last check that saw no change
    method: str = "adwin"  # or "page_hinkley"
    tolerance: float = 0.05  # Page-Hinkley: the tolerated change of the mean (error units)
    evidence: float = 25.0  # Page-Hinkley: lambda, the evidence needed (error units)

    @classmethod
    def for_settings(cls, settings: DetectorSettings) -> ErrorStream:
        return cls(
            settings.concept_delta,
            method=settings.concept_detector,
            tolerance=settings.page_hinkley_delta,
            evidence=settings.page_hinkley_threshold,
        )

    def new_detector(self) -> Adwin | PageHinkley:
        if self.method == "page_hinkley":
            return PageHinkley(delta=self.tolerance, threshold=self.evidence, two_sided=True)
        return Adwin(delta=self.delta)

    def watch(self, errors: FloatArray) -> None:
        """Feed the finite errors to the change detector, in order."""
        finite = errors[np.isfinite(errors)]
        if not finite.size:
            return
        if self.detector is None:
            self.detector = self.new_detector()
        detector = self.detector
        if isinstance(detector, Adwin):
            if detector.update_many(finite):  # in order: ADWIN is sequential
                self.changed = True
            return
        for x in finite.tolist():
            if detector.update(x):
                self.changed = True

    def check(self) -> CheckResult:
        """Unhealthy at the check after the error stream changed; healthy at the next.

        The score is the error mean ADWIN keeps (the part of the stream after its cut),
        the threshold the error mean at the last check that saw no change: the alert says
        from what to what the errors moved. ADWIN's delta is a setting (its confidence),
        not a threshold in the errors' unit; it is in `details`."""
        if self.detector is None:
            return not_judged("concept_drift", self.method, math.nan, "no labelled events yet")
        changed, self.changed = self.changed, False
        detector = self.detector
        if isinstance(detector, Adwin):
            mean = detector.estimation
            settings: dict[str, Detail] = {"adwin_delta": self.delta}
        else:
            mean = detector.mean
            settings = {
                "page_hinkley_delta": self.tolerance,
                "page_hinkley_threshold": self.evidence,
            }
        baseline = self.baseline
        if not changed:
            self.baseline = baseline = mean
        return CheckResult(
            "concept_drift",
            self.method,
            mean,
            baseline,
            not changed,
            details={"error_mean": mean, "error_window": int(detector.n), **settings},
        )
