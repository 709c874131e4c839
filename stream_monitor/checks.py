"""One check of one model: every detector on the window, each giving a CheckResult.

The rules of the original design, kept as defaults: input drift is the largest per-feature
KS statistic against a threshold; prediction drift the Jensen-Shannon distance of the
prediction histograms (or, with `prediction_test: ks`, the KS statistic of the predictions);
performance the MAE; retraining is recommended on any of these.
"""

from __future__ import annotations

import math

import numpy as np

from stream_monitor import feature_drift
from stream_monitor.alerts import RETRAIN_KINDS, CheckResult, FeatureResult
from stream_monitor.class_labels import ClassLabels
from stream_monitor.config import DetectorSettings
from stream_monitor.detectors.categorical import (
    MISSING,
    UNSEEN,
    category_counts,
    chi_squared,
)
from stream_monitor.detectors.categorical import js_distance as category_js
from stream_monitor.detectors.categorical import psi as category_psi
from stream_monitor.detectors.histogram import bin_counts, js_distance, smoothed
from stream_monitor.detectors.ks import as_scipy_default, ks_pvalue, ks_sorted_statistic
from stream_monitor.detectors.performance import latency_percentiles, regression_errors
from stream_monitor.reference import FloatArray
from stream_monitor.windows import ModelWindow

NO_REFERENCE = "no reference for this model"


def input_drift(window: ModelWindow, settings: DetectorSettings) -> CheckResult:
    threshold = settings.drift_threshold
    ref = window.reference
    n_cat = 0 if ref is None or ref.categorical is None else ref.categorical.n_features
    if ref is None or ref.n_features + n_cat == 0:
        reason = NO_REFERENCE if ref is None else "no features in the reference"
        return CheckResult("input_drift", "ks", math.nan, threshold, None, reason=reason)
    if window.count < settings.effective_min_window:
        return CheckResult(
            "input_drift",
            "ks",
            math.nan,
            threshold,
            None,
            reason=f"window holds {window.count} of {settings.effective_min_window} events needed",
        )
    return feature_drift.input_drift(window, settings)


def prediction_drift(window: ModelWindow, settings: DetectorSettings) -> CheckResult:
    """Numeric predictions: Jensen-Shannon distance of the histograms and the KS statistic;
    `prediction_test` chooses which one is judged, the other is reported in `details`."""
    test = "ks" if settings.prediction_test == "ks" else "jensenshannon"  # psi: class labels
    threshold = settings.threshold_of("ks") if test == "ks" else settings.prediction_drift_threshold
    ref = window.reference
    if ref is not None and ref.classes is not None:
        return _class_drift(window, settings)
    if ref is None or ref.prediction_counts is None:
        reason = NO_REFERENCE if ref is None else "no numeric predictions in the reference"
        return CheckResult("prediction_drift", test, math.nan, threshold, None, reason=reason)
    rows = window.rows()
    counts = bin_counts(window.prediction_bin[rows], ref.prediction_counts.size)
    if counts.sum() < settings.effective_min_window:
        return CheckResult(
            "prediction_drift",
            test,
            math.nan,
            threshold,
            None,
            reason=f"{counts.sum()} numeric predictions in the window, "
            f"{settings.effective_min_window} needed",
        )
    js = js_distance(smoothed(ref.prediction_counts), smoothed(counts))
    # the KS p-value (kstwo.sf) costs more than the statistic: only when KS is judged
    ks, ks_p = prediction_ks(ref.sorted_predictions, window.prediction[rows], test == "ks")
    details: dict[str, float | str | None] = {"jensenshannon": js, "ks": ks}
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
    m = np.array([sorted_reference.size], dtype=np.int64)
    raw = np.array([ks_sorted_statistic(sorted_reference, values)])
    sizes = np.array([values.size if sorted_reference.size else 0], dtype=np.int64)
    if sizes[0] == 0:
        return 0.0, math.nan
    p = float(ks_pvalue(raw, m, sizes)[0]) if with_pvalue else math.nan
    return float(as_scipy_default(raw, m, sizes)[0]), p


def _class_drift(window: ModelWindow, settings: DetectorSettings) -> CheckResult:
    """Class labels: chi-squared of the window's class counts against the reference's
    class proportions (unseen classes pooled, as for categorical features); PSI and
    Jensen-Shannon on the class frequencies in `details`, and judged with
    `prediction_test: psi`."""
    ref = window.reference
    assert ref is not None and ref.classes is not None
    by_psi = settings.prediction_test == "psi"
    test = "psi" if by_psi else "chi2"
    threshold = settings.threshold_of(test)
    codes = window.prediction_class[window.rows()]
    counts = category_counts(ref.classes, codes[:, None])
    if int(counts.sizes[0]) < settings.effective_min_window:
        return CheckResult(
            "prediction_drift",
            test,
            math.nan,
            threshold,
            None,
            reason=f"{int(counts.sizes[0])} class predictions in the window",
        )
    chi = chi_squared(ref.classes, counts)
    p = float(chi.pvalue[0])
    psi = float(category_psi(ref.classes, counts).statistic[0])
    details: dict[str, float | str | None] = {
        "statistic": float(chi.statistic[0]),
        "p_value": p,
        "psi": psi,
        "jensenshannon": float(category_js(ref.classes, counts).statistic[0]),
        "unseen_classes": float(chi.unseen[0]),
    }
    if by_psi:
        return CheckResult("prediction_drift", test, psi, threshold, psi <= threshold, details)
    return CheckResult("prediction_drift", test, p, threshold, p >= threshold, details=details)


def performance(
    window: ModelWindow, settings: DetectorSettings, labels: ClassLabels | None = None
) -> CheckResult:
    if window.classes:
        return _accuracy(window, settings, labels)
    threshold = settings.mae_threshold
    rows = window.rows()
    errors = regression_errors(window.prediction[rows], window.actual[rows])
    details: dict[str, float | str | None] = {
        "mae": None if errors.labeled == 0 else errors.mae,
        "rmse": None if errors.labeled == 0 else errors.rmse,
        "labeled": float(errors.labeled),
    }
    if errors.labeled < settings.min_labeled_events:
        return CheckResult(
            "performance",
            "mae",
            math.nan,
            threshold,
            None,
            details=details,
            reason=f"{errors.labeled} events with actuals, {settings.min_labeled_events} needed",
        )
    return CheckResult(
        "performance", "mae", errors.mae, threshold, errors.mae <= threshold, details=details
    )


def _accuracy(
    window: ModelWindow, settings: DetectorSettings, labels: ClassLabels | None
) -> CheckResult:
    """Class labels: accuracy is the share of labelled events whose prediction was right.

    Macro precision, recall and F1 (from the confusion matrix of the labels kept beside the
    window) go into `details`, for /status and the alert; accuracy stays the judged score.
    """
    rows = window.rows()
    wrong = window.error[rows]
    wrong = wrong[np.isfinite(wrong)]
    labeled = int(wrong.size)
    accuracy = 1.0 - float(wrong.mean()) if labeled else math.nan
    cm = None if labels is None else labels.metrics(rows)
    details: dict[str, float | str | None] = {
        "accuracy": accuracy if labeled else None,
        "labeled": float(labeled),
        "macro_precision": None if cm is None else cm.macro_precision,
        "macro_recall": None if cm is None else cm.macro_recall,
        "macro_f1": None if cm is None else cm.macro_f1,
        "classes": None if cm is None else float(cm.present.sum()),
    }
    threshold = settings.min_accuracy
    if threshold is None or labeled < settings.min_labeled_events:
        reason = (
            "no --min-accuracy configured"
            if threshold is None
            else f"{labeled} events with actuals, {settings.min_labeled_events} needed"
        )
        return CheckResult(
            "performance",
            "accuracy",
            accuracy,
            threshold or math.nan,
            None,
            details=details,
            reason=reason,
        )
    return CheckResult(
        "performance", "accuracy", accuracy, threshold, accuracy >= threshold, details=details
    )


def latency(window: ModelWindow, settings: DetectorSettings) -> CheckResult:
    threshold = settings.latency_p99_threshold_ms
    quantiles = latency_percentiles(window.latency_ms[window.rows()])
    details: dict[str, float | str | None] = {f"latency_{k}_ms": v for k, v in quantiles.items()}
    if threshold is None:
        return CheckResult(
            "latency",
            "p99",
            quantiles.get("p99", math.nan),
            math.nan,
            None,
            details=details,
            reason="no latency threshold configured",
        )
    if not quantiles:
        return CheckResult(
            "latency", "p99", math.nan, threshold, None, reason="no latencies in the window"
        )
    p99 = quantiles["p99"]
    return CheckResult("latency", "p99", p99, threshold, p99 <= threshold, details=details)


def data_quality(window: ModelWindow, settings: DetectorSettings) -> CheckResult:
    """Missing, non-finite, out-of-range and unseen values per feature, each with a threshold.

    Out of range is read from the KS keys already in the window: `#{ref <= x} == 0` means x
    is below the reference's minimum, `#{ref < x} == n` above its maximum.
    """
    ref = window.reference
    if window.count < settings.effective_min_window:
        return CheckResult(
            "data_quality",
            "missing_share",
            math.nan,
            settings.dq_missing_share,
            None,
            reason="window not full enough",
        )
    rows = window.rows()
    found: list[tuple[str, str, float, float]] = []  # feature, measure, share, threshold
    closest: list[tuple[str, float, float]] = [("missing_share", 0.0, settings.dq_missing_share)]

    def over(names: list[str], measure: str, share: np.ndarray, limit: float) -> None:
        for j in np.flatnonzero(share > limit):
            found.append((names[j], measure, float(share[j]), limit))
        if share.size:  # the measure nearest its threshold, reported while all is well
            top = float(share.max())
            if top / limit > closest[0][1] / closest[0][2]:
                closest[0] = (measure, top, limit)

    if ref is not None and ref.n_features:
        names = list(ref.feature_names)
        n = max(window.count, 1)  # the window's running tallies: no pass over its rows
        over(names, "missing_share", window.missing_count / n, settings.dq_missing_share)
        over(names, "nonfinite_share", window.nonfinite_count / n, settings.dq_nonfinite_share)
        finite = window.count - window.missing_count - window.nonfinite_count
        share = window.outside_count / np.maximum(finite, 1)
        over(names, "out_of_range_share", share, settings.dq_out_of_range_share)
    if ref is not None and ref.categorical is not None:
        names = list(ref.categorical.feature_names)
        codes = window.categorical[rows]
        over(names, "missing_share", (codes == MISSING).mean(axis=0), settings.dq_missing_share)
        over(names, "unseen_share", (codes == UNSEEN).mean(axis=0), settings.dq_unseen_share)
    details: dict[str, float | str | None] = {"issues": float(len(found))}
    if not found:
        measure, share, limit = closest[0]
        return CheckResult("data_quality", measure, share, limit, True, details=details)
    worst = max(found, key=lambda f: f[2] / f[3])
    features = [
        FeatureResult(name=n, test=m, score=v, p_value=None, drifted=True) for n, m, v, _ in found
    ]
    return CheckResult(
        "data_quality",
        worst[1],
        worst[2],
        worst[3],
        False,
        details=details,
        feature_results=lambda: features,
    )


def run_checks(
    window: ModelWindow, settings: DetectorSettings, labels: ClassLabels | None = None
) -> list[CheckResult]:
    """Every check of a model, in a fixed order (alerts of one check follow it)."""
    return [
        input_drift(window, settings),
        prediction_drift(window, settings),
        performance(window, settings, labels),
        latency(window, settings),
        data_quality(window, settings),
    ]


def retrain_recommended(results: list[CheckResult]) -> bool:
    """The original design's decision: any drift or the error above its threshold."""
    return any(r.healthy is False and r.kind in RETRAIN_KINDS for r in results)
