"""One check of one model: every detector on the window, each giving a CheckResult.

The rules of the original design, kept as defaults: input drift is the largest per-feature
KS statistic against a threshold; prediction drift the Jensen-Shannon distance of the
prediction histograms (or, with `prediction_test: ks`, the KS statistic of the predictions);
performance the MAE; retraining is recommended on any of these.
"""

from __future__ import annotations

from collections.abc import Iterable

from stream_monitor.alerts.contract import RETRAIN_KINDS
from stream_monitor.alerts.results import CheckResult
from stream_monitor.checks.input_drift import input_drift
from stream_monitor.checks.operations import data_quality, latency
from stream_monitor.checks.performance import performance
from stream_monitor.checks.plan import CheckPlan
from stream_monitor.checks.prediction import prediction_drift
from stream_monitor.window.class_tally import ClassTally
from stream_monitor.window.ring import ModelWindow


def run_checks(
    window: ModelWindow, plan: CheckPlan, tally: ClassTally | None = None
) -> list[CheckResult]:
    """Every window check of a model, in a fixed order (alerts of one check follow it)."""
    return [
        input_drift(window, plan),
        prediction_drift(window, plan),
        performance(window, plan, tally),
        latency(window, plan),
        data_quality(window, plan),
    ]


def retrain_recommended(results: Iterable[CheckResult]) -> bool:
    """The original design's decision: any drift or the error above its threshold."""
    return any(r.healthy is False and r.alerting and r.kind in RETRAIN_KINDS for r in results)
