"""Concept drift: an ADWIN change detector on a model's stream of errors.

Errors reach it from two places, both in arrival order: events that carry their `actual`
(engine), and labels joined later to their prediction (label join). Kept apart from the
engine so that both feed it the same way.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from stream_monitor.alerts import CheckResult
from stream_monitor.detectors.sequential import ADWIN
from stream_monitor.reference import FloatArray

if TYPE_CHECKING:
    from stream_monitor.engine import ModelState


def watch_errors(state: ModelState, errors: FloatArray) -> None:
    """Feed the finite errors to the model's change detector, in order."""
    finite = errors[np.isfinite(errors)]
    if not finite.size:
        return
    if state.concept is None:
        state.concept = ADWIN(delta=state.settings.concept_delta)
    if state.concept.update_many(finite.tolist()):  # in order: ADWIN is sequential
        state.concept_changed = True


def concept_drift(state: ModelState) -> CheckResult:
    """Unhealthy at the check after the error stream changed; healthy at the next."""
    delta = state.settings.concept_delta
    if state.concept is None:
        return CheckResult(
            "concept_drift", "adwin", math.nan, delta, None, reason="no labelled events yet"
        )
    changed, state.concept_changed = state.concept_changed, False
    mean = state.concept.estimation
    return CheckResult(
        "concept_drift",
        "adwin",
        mean,
        delta,
        not changed,
        details={"error_mean": mean, "error_window": float(state.concept.n)},
    )
