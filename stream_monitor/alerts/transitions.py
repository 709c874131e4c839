"""Firing and resolved: an alert is emitted on a transition only, once per change of health."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from stream_monitor.alerts.contract import (
    OPTIONAL_FIELDS,
    RETRAIN_KINDS,
    Alert,
    SourcePosition,
    WindowInfo,
    alert_id,
    rfc3339,
)
from stream_monitor.alerts.results import CheckContext, CheckResult

CRITICAL_FACTOR = 2.0  # a score at least this many times its threshold is critical


def severity_of(score: float, threshold: float) -> Literal["warning", "critical"]:
    return "critical" if score >= CRITICAL_FACTOR * threshold else "warning"


@dataclass(slots=True)
class FiringAlerts:
    """Firing or not, per kind, for one model; the last firing alert's severity."""

    firing: dict[str, Literal["warning", "critical"]] = field(default_factory=dict)

    def firing_kinds(self) -> list[str]:
        """The kinds firing, sorted (sequential and window input drift are one kind)."""
        return sorted({key.partition("/")[0] for key in self.firing})

    def update(self, result: CheckResult, ctx: CheckContext) -> Alert | None:
        """The alert this result causes, if it changes the state."""
        if result.healthy is None:
            return None
        key = result.state_key
        was_firing = key in self.firing
        if result.healthy == (not was_firing):
            return None
        if result.healthy:
            severity = self.firing.pop(key)
            status: Literal["firing", "resolved"] = "resolved"
        else:
            severity = severity_of(result.score, result.threshold)
            self.firing[key] = severity
            status = "firing"
        details = dict(result.details)
        extra = {name: details.pop(name) for name in OPTIONAL_FIELDS if name in details}
        return Alert(
            alert_id=alert_id(ctx.model, key, status, ctx.events_seen, ctx.labels_joined),
            model=ctx.model,
            model_version=ctx.model_version,
            kind=result.kind,
            status=status,
            severity=severity,
            test=result.test,
            score=result.score,
            threshold=result.threshold,
            features=result.features(),
            events_seen=ctx.events_seen,
            window=WindowInfo(
                size=ctx.window_size,
                start=rfc3339(ctx.window_start),
                end=rfc3339(ctx.window_end),
            ),
            source=SourcePosition(topic=ctx.topic, partition=ctx.partition, offset=ctx.offset),
            detected_at=rfc3339(ctx.window_end),
            recommendation="retrain"
            if status == "firing" and result.kind in RETRAIN_KINDS
            else None,
            details=details,
            **extra,
        )
