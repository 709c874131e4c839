"""Operational checks that need no labels: latency percentiles and data quality (missing,
non-finite, out-of-range and unseen values)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from stream_monitor.alerts.contract import Detail, FeatureResult
from stream_monitor.alerts.results import CheckResult
from stream_monitor.checks.plan import CheckPlan
from stream_monitor.checks.verdicts import not_judged
from stream_monitor.detectors.categorical import (
    MISSING,
    UNSEEN,
)
from stream_monitor.detectors.performance import LATENCY_QUANTILES
from stream_monitor.kernels import (
    linear_percentiles,  # bit for bit np.percentile's
    numeric_quality,
)
from stream_monitor.window.ring import ModelWindow

NUMERIC_MEASURES = ("missing_share", "nonfinite_share", "out_of_range_share")


def latency(window: ModelWindow, plan: CheckPlan) -> CheckResult:
    threshold = plan.latency_p99_ms
    found = linear_percentiles(window.latency_ms[window.rows()], list(LATENCY_QUANTILES))
    quantiles = {f"p{int(k)}": v for k, v in zip(LATENCY_QUANTILES, found, strict=False)}
    details: dict[str, Detail] = {f"latency_{k}_ms": v for k, v in quantiles.items()}
    if threshold is None:
        reason = "no latency threshold configured"
        return not_judged(
            "latency", "p99", math.nan, reason, quantiles.get("p99", math.nan), details
        )
    if not quantiles:
        return not_judged("latency", "p99", threshold, "no latencies in the window")
    p99 = quantiles["p99"]
    return CheckResult("latency", "p99", p99, threshold, p99 <= threshold, details=details)


def data_quality(window: ModelWindow, plan: CheckPlan) -> CheckResult:
    """Missing, non-finite, out-of-range and unseen values per feature, each with a threshold.

    Out of range is read from the KS keys already in the window: `#{ref <= x} == 0` means x
    is below the reference's minimum, `#{ref < x} == n` above its maximum.
    """
    ref = window.reference
    if window.count < plan.min_window:
        return not_judged(
            "data_quality", "missing_share", plan.dq_missing_share, "window not full enough"
        )
    rows = window.rows()
    found: list[tuple[str, str, float, float]] = []  # feature, measure, share, threshold
    closest: list[tuple[str, float, float]] = [("missing_share", 0.0, plan.dq_missing_share)]

    def nearest(measure: str, top: float, limit: float) -> None:
        """The measure nearest its threshold, reported while all is well."""
        if top / limit > closest[0][1] / closest[0][2]:
            closest[0] = (measure, top, limit)

    def over(names: Sequence[str], measure: str, share: np.ndarray, limit: float) -> None:
        for j in np.flatnonzero(share > limit).tolist():
            found.append((names[j], measure, float(share[j]), limit))
        if share.size:
            nearest(measure, float(share.max()), limit)

    if ref is not None and ref.n_features:
        numeric = ref.feature_names
        limits = (plan.dq_missing_share, plan.dq_nonfinite_share, plan.dq_out_of_range_share)
        # from the window's running tallies (no pass over its rows), in one native call
        above, tops = numeric_quality(
            window.missing_count, window.nonfinite_count, window.outside_count, window.count, limits
        )
        found.extend((numeric[j], NUMERIC_MEASURES[m], share, limits[m]) for j, m, share in above)
        for measure, top, limit in zip(NUMERIC_MEASURES, tops, limits, strict=True):
            nearest(measure, top, limit)
    if ref is not None and ref.categorical is not None:
        names = ref.categorical.feature_names
        codes = window.categorical[rows]
        over(names, "missing_share", (codes == MISSING).mean(axis=0), plan.dq_missing_share)
        over(names, "unseen_share", (codes == UNSEEN).mean(axis=0), plan.dq_unseen_share)
    details: dict[str, Detail] = {"issues": len(found)}
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
