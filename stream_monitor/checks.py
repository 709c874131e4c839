"""One check of one model: every detector on the window, each giving a CheckResult.

The rules of the original design, kept as defaults: input drift is the largest per-feature
KS statistic against a threshold; prediction drift the Jensen-Shannon distance of the
prediction histograms; performance the MAE; retraining is recommended on any of these.
"""

from __future__ import annotations

import math

from stream_monitor.alerts import CheckResult, FeatureResult
from stream_monitor.config import DetectorSettings
from stream_monitor.detectors.histogram import bin_counts, js_distance, smoothed
from stream_monitor.detectors.ks import as_scipy_default, ks_pvalue, ks_statistic
from stream_monitor.detectors.performance import latency_percentiles, regression_errors
from stream_monitor.windows import ModelWindow

NO_REFERENCE = "no reference for this model"


def input_drift(window: ModelWindow, settings: DetectorSettings) -> CheckResult:
    threshold = settings.drift_threshold
    ref = window.reference
    if ref is None or ref.n_features == 0:
        reason = NO_REFERENCE if ref is None else "no numeric features in the reference"
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
    rows = window.rows()
    raw, sizes = ks_statistic(window.ks_key[rows], ref.sizes)
    stat = as_scipy_default(raw, ref.sizes, sizes)

    def features() -> list[FeatureResult]:
        pvalues = ks_pvalue(raw, ref.sizes, sizes)
        return [
            FeatureResult(
                name=name,
                test="ks",
                score=float(stat[j]),
                p_value=None if math.isnan(pvalues[j]) else float(pvalues[j]),
                drifted=bool(stat[j] > threshold),
            )
            for j, name in enumerate(ref.feature_names)
        ]

    score = float(stat.max())
    return CheckResult(
        "input_drift", "ks", score, threshold, score <= threshold, feature_results=features
    )


def prediction_drift(window: ModelWindow, settings: DetectorSettings) -> CheckResult:
    threshold = settings.prediction_drift_threshold
    ref = window.reference
    if ref is None or ref.prediction_counts is None:
        reason = NO_REFERENCE if ref is None else "no numeric predictions in the reference"
        return CheckResult(
            "prediction_drift", "jensenshannon", math.nan, threshold, None, reason=reason
        )
    counts = bin_counts(window.prediction_bin[window.rows()], ref.prediction_counts.size)
    if counts.sum() < settings.effective_min_window:
        return CheckResult(
            "prediction_drift",
            "jensenshannon",
            math.nan,
            threshold,
            None,
            reason=f"{counts.sum()} numeric predictions in the window, "
            f"{settings.effective_min_window} needed",
        )
    score = js_distance(smoothed(ref.prediction_counts), smoothed(counts))
    return CheckResult("prediction_drift", "jensenshannon", score, threshold, score <= threshold)


def performance(window: ModelWindow, settings: DetectorSettings) -> CheckResult:
    threshold = settings.mae_threshold
    rows = window.rows()
    errors = regression_errors(window.prediction[rows], window.actual[rows])
    details: dict[str, float | None] = {
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


def latency(window: ModelWindow, settings: DetectorSettings) -> CheckResult:
    threshold = settings.latency_p99_threshold_ms
    quantiles = latency_percentiles(window.latency_ms[window.rows()])
    details: dict[str, float | None] = {f"latency_{k}_ms": v for k, v in quantiles.items()}
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


def run_checks(window: ModelWindow, settings: DetectorSettings) -> list[CheckResult]:
    """Every check of a model, in a fixed order (alerts of one check follow it)."""
    return [
        input_drift(window, settings),
        prediction_drift(window, settings),
        performance(window, settings),
        latency(window, settings),
    ]


def retrain_recommended(results: list[CheckResult]) -> bool:
    """The original design's decision: any drift or the error above its threshold."""
    return any(
        r.healthy is False and r.kind in ("input_drift", "prediction_drift", "performance")
        for r in results
    )
