"""A model's `/status` entry: window, reference, last results and the retraining decision."""

from __future__ import annotations

import math

from stream_monitor.alerts.contract import rfc3339
from stream_monitor.checks.run import retrain_recommended
from stream_monitor.engine.models import MonitoredModel


def model_status(model: MonitoredModel, window_size: int) -> dict[str, object]:
    """JSON-ready: what the model's last check found, and where its window stands."""
    window = model.window
    results = {
        r.state_key: {  # the kind, or its channel (a candidate against its baseline)
            "test": r.test,
            "score": _finite(r.score),
            "threshold": _finite(r.threshold),
            "healthy": r.healthy,
            "reason": r.reason,
            **{k: _finite(v) for k, v in r.details.items()},
        }
        for r in model.last_results
    }
    return {
        "model": model.model_name,
        "model_version": model.version,
        "segment": model.segment,
        "events_seen": model.events_seen,
        "checks": model.checks,
        "window": {
            "size": window_size,
            "filled": 0 if window is None else window.count,
            "oldest": None if window is None else rfc3339(window.oldest_timestamp()),
            "newest": None if window is None else rfc3339(window.newest_timestamp()),
        },
        "reference": None
        if model.reference is None
        else {
            "events": model.reference.events,
            "reference_id": model.reference.reference_id,
            "features": list(model.reference.feature_names),
        },
        "drift_checked": model.reference is not None,
        "firing": model.alerts.firing_kinds(),
        "results": results,
        "should_retrain": retrain_recommended(model.last_results)
        or (model.charts is not None and model.charts.firing),
        "notes": model.notes,
    }


def _finite(value: float | str | None) -> float | str | None:
    """JSON-safe: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
