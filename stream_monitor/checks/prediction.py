"""Prediction drift: Jensen-Shannon distance of the prediction histograms or the KS statistic
of the predictions (numbers), chi-squared or PSI of the class frequencies (class labels)."""

from __future__ import annotations

import math

import numpy as np

from stream_monitor.alerts.contract import Detail
from stream_monitor.alerts.results import CheckResult
from stream_monitor.arrays import FloatArray
from stream_monitor.checks.plan import CheckPlan
from stream_monitor.checks.verdicts import NO_REFERENCE, not_judged
from stream_monitor.detectors.categorical import (
    category_counts,
    chi_squared,
)
from stream_monitor.detectors.categorical import js_distance as category_js
from stream_monitor.detectors.categorical import psi as category_psi
from stream_monitor.detectors.ks import as_scipy_default_one, ks_pvalue
from stream_monitor.kernels import (
    histogram_js,
    ks_sorted_statistic,  # both bit for bit as detectors.ks and detectors.histogram
)
from stream_monitor.window.ring import ModelWindow


def prediction_drift(window: ModelWindow, plan: CheckPlan) -> CheckResult:
    """Numeric predictions: Jensen-Shannon distance of the histograms and the KS statistic;
    `prediction_test` chooses which one is judged, the other is reported in `details`."""
    test, threshold = plan.prediction_test, plan.prediction_threshold
    ref = window.reference
    if ref is not None and ref.classes is not None:
        return _class_drift(window, plan)
    if ref is None or ref.prediction_counts is None:
        reason = NO_REFERENCE if ref is None else "no numeric predictions in the reference"
        return not_judged("prediction_drift", test, threshold, reason)
    rows = window.rows()
    # bit for bit js_distance(reference's, smoothed(bin_counts(window's bins)))
    binned, js = histogram_js(window.prediction_bin[rows], ref.smoothed_prediction_counts())
    if binned < plan.min_window:
        reason = f"{binned} numeric predictions in the window, {plan.min_window} needed"
        return not_judged("prediction_drift", test, threshold, reason)
    # the KS p-value (kstwo.sf) costs more than the statistic: only when KS is judged
    ks, ks_p = prediction_ks(ref.sorted_predictions, window.prediction[rows], test == "ks")
    details: dict[str, Detail] = {"jensenshannon": js, "ks": ks}
    if test == "ks":
        details["ks_p_value"] = ks_p
    score = ks if test == "ks" else js
    return CheckResult(
        "prediction_drift", test, score, threshold, score <= threshold, details=details
    )


def prediction_ks(
    sorted_reference: FloatArray, predictions: FloatArray, with_pvalue: bool = True
) -> tuple[float, float]:
    """Two-sample KS of the finite predictions against the reference's (sorted once).

    The statistic equals `scipy.stats.ks_2samp(reference, window)` with its default method
    to the last bit, ties included; the p-value is its `method="asymp"` one. The window's
    predictions are sorted at check time and searched in the reference in that order: no
    per-event state is kept for it.
    """
    values = np.sort(predictions[np.isfinite(predictions)])
    m, n = sorted_reference.size, values.size
    if m == 0 or n == 0:
        return 0.0, math.nan
    raw = ks_sorted_statistic(sorted_reference, values)
    p = math.nan
    if with_pvalue:
        sizes = np.array([m]), np.array([n])
        p = float(ks_pvalue(np.array([raw]), *sizes)[0])
    return as_scipy_default_one(raw, m, n), p


def _class_drift(window: ModelWindow, plan: CheckPlan) -> CheckResult:
    """Class labels: chi-squared of the window's class counts against the reference's
    class proportions (unseen classes pooled, as for categorical features); PSI and
    Jensen-Shannon on the class frequencies in `details`, and judged with
    `prediction_test: psi`."""
    ref = window.reference
    assert ref is not None and ref.classes is not None
    test, threshold = plan.prediction_test, plan.prediction_threshold
    by_psi = test == "psi"
    codes = window.prediction_class[window.rows()]
    counts = category_counts(ref.classes, codes[:, None])
    if int(counts.sizes[0]) < plan.min_window:
        reason = f"{int(counts.sizes[0])} class predictions in the window"
        return not_judged("prediction_drift", test, threshold, reason)
    chi = chi_squared(ref.classes, counts)
    p = float(chi.pvalue[0])
    psi = float(category_psi(ref.classes, counts).statistic[0])
    details: dict[str, Detail] = {
        "statistic": float(chi.statistic[0]),
        "p_value": p,
        "psi": psi,
        "jensenshannon": float(category_js(ref.classes, counts).statistic[0]),
        "unseen_classes": float(chi.unseen[0]),
    }
    if by_psi:
        return CheckResult("prediction_drift", test, psi, threshold, psi <= threshold, details)
    return CheckResult("prediction_drift", test, p, threshold, p >= threshold, details=details)
