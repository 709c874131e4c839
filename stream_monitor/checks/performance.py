"""Performance: MAE and RMSE of numeric predictions, accuracy (with macro precision, recall
and F1) of class labels, from the actuals in the window."""

from __future__ import annotations

import math

import numpy as np

from stream_monitor.alerts.contract import Detail
from stream_monitor.alerts.results import CheckResult
from stream_monitor.checks.plan import CheckPlan
from stream_monitor.checks.verdicts import not_judged
from stream_monitor.kernels import regression_errors  # bit for bit detectors.performance's
from stream_monitor.window.class_tally import ClassTally
from stream_monitor.window.ring import ModelWindow


def performance(
    window: ModelWindow, plan: CheckPlan, tally: ClassTally | None = None
) -> CheckResult:
    if window.classes:
        return _accuracy(window, plan, tally)
    threshold = plan.mae_threshold
    rows = window.rows()
    labeled, mae, rmse = regression_errors(window.prediction[rows], window.actual[rows])
    details: dict[str, Detail] = {
        "mae": None if labeled == 0 else mae,
        "rmse": None if labeled == 0 else rmse,
        "labeled": labeled,
    }
    if labeled < plan.min_labeled_events:
        reason = f"{labeled} events with actuals, {plan.min_labeled_events} needed"
        return not_judged("performance", "mae", threshold, reason, details=details)
    return CheckResult("performance", "mae", mae, threshold, mae <= threshold, details=details)


def _accuracy(window: ModelWindow, plan: CheckPlan, tally: ClassTally | None) -> CheckResult:
    """Class labels: accuracy is the share of labelled events whose prediction was right.

    Macro precision, recall and F1 (from the confusion matrix of the labels kept beside the
    window) go into `details`, for /status and the alert; accuracy stays the judged score.
    """
    rows = window.rows()
    wrong = window.error[rows]
    wrong = wrong[np.isfinite(wrong)]
    labeled = int(wrong.size)
    accuracy = 1.0 - float(wrong.mean()) if labeled else math.nan
    cm = None if tally is None else tally.metrics(rows)
    details: dict[str, Detail] = {
        "accuracy": accuracy if labeled else None,
        "labeled": int(labeled),
        "macro_precision": None if cm is None else cm.macro_precision,
        "macro_recall": None if cm is None else cm.macro_recall,
        "macro_f1": None if cm is None else cm.macro_f1,
        "classes": None if cm is None else float(cm.present.sum()),
    }
    threshold = plan.min_accuracy
    if threshold is None or labeled < plan.min_labeled_events:
        reason = (
            "no --min-accuracy configured"
            if threshold is None
            else f"{labeled} events with actuals, {plan.min_labeled_events} needed"
        )
        return not_judged(
            "performance", "accuracy", threshold or math.nan, reason, accuracy, details
        )
    return CheckResult(
        "performance",
        "accuracy",
        accuracy,
        threshold,
        accuracy >= threshold,
        details=details,
        higher_is_worse=False,
    )
