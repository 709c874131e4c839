"""Version comparison: a candidate version (canary or shadow traffic) judged against the live
window of the version it would replace, not against a reference.

A reference says what the inputs looked like when the model was validated; the baseline's
live window says what they look like now, so a candidate that sees other traffic than its
baseline (a routing bug, a feature pipeline of its own) is told apart from drift that
both see. Each numeric feature and the numeric predictions get a two-sample KS statistic
(`scipy.stats.ks_2samp`, exact) against the model's KS threshold; the results have their
own firing state (channel), so a candidate can alert against its reference and against its
baseline independently. The alert's `details.baseline_version` names what it was compared
with.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import ks_2samp

from stream_monitor.alerts.contract import Detail, FeatureResult
from stream_monitor.alerts.results import CheckResult
from stream_monitor.arrays import FloatArray
from stream_monitor.checks.verdicts import not_judged
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.window.ring import ModelWindow

INPUT_CHANNEL = "input_drift/versus_baseline"
PREDICTION_CHANNEL = "prediction_drift/versus_baseline"
TEST = "ks"
TINY = 1e-300  # a p-value of 0 is reported as this (its -log10 is finite)


def versus_baseline(
    candidate: ModelWindow | None,
    baseline: ModelWindow | None,
    feature_names: tuple[str, ...],
    baseline_names: tuple[str, ...],
    settings: DetectorSettings,
    baseline_version: str,
) -> list[CheckResult]:
    """Input and prediction drift of the candidate's window against the baseline's."""
    per_check = settings.check_every / settings.false_alarm_events
    details: dict[str, Detail] = {"baseline_version": baseline_version}
    reason = _unjudged(candidate, baseline, settings.effective_min_window)
    if reason is not None:
        out = []
        for kind, channel in (
            ("input_drift", INPUT_CHANNEL),
            ("prediction_drift", PREDICTION_CHANNEL),
        ):
            result = not_judged(kind, TEST, -math.log10(per_check), reason, details=dict(details))  # type: ignore[arg-type]
            result.channel, result.score_kind = channel, "neg_log10_p_value"
            out.append(result)
        return out
    assert candidate is not None and baseline is not None
    tests = []
    for j, name in enumerate(feature_names):
        if name in baseline_names:
            k = baseline_names.index(name)
            a, b = candidate.features[: candidate.count, j], baseline.features[: baseline.count, k]
            stat, p = _ks(a, b)
            if math.isfinite(stat):
                tests.append((name, stat, p))
    level = per_check / max(len(tests), 1)
    features = [
        FeatureResult(name=n, test=TEST, score=s, p_value=p, drifted=p < level) for n, s, p in tests
    ]
    smallest = min((p for _, _, p in tests), default=math.nan)
    input_result = CheckResult(
        "input_drift",
        TEST,
        -math.log10(max(smallest, TINY)) if tests else math.nan,
        -math.log10(level),
        None if not tests else smallest >= level,
        details={
            **details,
            "p_value": smallest if tests else None,
            "tested_features": len(tests),
            "drifted_features": sum(f.drifted for f in features),
        },
        reason=None if tests else "no numeric feature shared with the baseline",
        feature_results=lambda: features,
        channel=INPUT_CHANNEL,
        score_kind="neg_log10_p_value",
    )
    stat, p = _ks(candidate.prediction[: candidate.count], baseline.prediction[: baseline.count])
    judged = math.isfinite(stat)
    prediction_result = CheckResult(
        "prediction_drift",
        TEST,
        -math.log10(max(p, TINY)) if judged else math.nan,
        -math.log10(per_check),
        None if not judged else p >= per_check,
        details={**details, "ks": stat if judged else None, "p_value": p if judged else None},
        reason=None if judged else "no numeric predictions in both windows",
        channel=PREDICTION_CHANNEL,
        score_kind="neg_log10_p_value",
    )
    return [input_result, prediction_result]


def _unjudged(
    candidate: ModelWindow | None, baseline: ModelWindow | None, min_window: int
) -> str | None:
    if baseline is None:
        return "no live window of the baseline version here"
    if candidate is None or candidate.count < min_window or baseline.count < min_window:
        return "windows not full enough"
    return None


def _ks(a: FloatArray, b: FloatArray) -> tuple[float, float]:
    """The two-sample KS statistic and p-value of the finite values (NaN: one side empty)."""
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if not a.size or not b.size:
        return math.nan, math.nan
    result = ks_2samp(a, b, method="asymp")
    return float(result.statistic), float(result.pvalue)
