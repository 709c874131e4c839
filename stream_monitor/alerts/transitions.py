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

CRITICAL_FACTOR = 2.0  # a statistic or chart this many times past its threshold is critical
CRITICAL_DECADES = 2.0  # a p-value this many powers of ten below its level is critical


def severity_of(result: CheckResult) -> Literal["warning", "critical"]:
    """How far past its threshold a score is, on the test's own scale: twice the threshold
    for a statistic or a chart (half of it for a score where lower is worse, accuracy), a
    p-value a hundred times below its level."""
    score, threshold = result.score, result.threshold
    if result.score_kind == "neg_log10_p_value":
        critical = score >= threshold + CRITICAL_DECADES
    elif result.higher_is_worse:
        critical = score >= CRITICAL_FACTOR * threshold
    else:
        critical = score * CRITICAL_FACTOR <= threshold
    return "critical" if critical else "warning"


@dataclass(slots=True)
class FiringAlerts:
    """Firing or not, per kind, for one model; the last firing alert's severity; and, for
    each firing kind, how many healthy checks in a row it has had (hysteresis: a window
    test's alert resolves after `resolve_after` of them, so a score near its threshold
    does not fire and resolve at every other check)."""

    firing: dict[str, Literal["warning", "critical"]] = field(default_factory=dict)
    healthy_streak: dict[str, int] = field(default_factory=dict)

    def firing_kinds(self) -> list[str]:
        """The kinds firing, sorted (sequential and window input drift are one kind)."""
        return sorted({key.partition("/")[0] for key in self.firing})

    def update(
        self, result: CheckResult, ctx: CheckContext, resolve_after: int = 1
    ) -> Alert | None:
        """The alert this result causes, if it changes the state: firing at the first
        unhealthy result, resolved at the `resolve_after`-th healthy one in a row."""
        if result.healthy is None:
            return None
        key = result.state_key
        was_firing = key in self.firing
        if was_firing and not result.healthy:
            self.healthy_streak.pop(key, None)
        if result.healthy == (not was_firing):
            return None
        if result.healthy:
            streak = self.healthy_streak.get(key, 0) + 1
            if streak < resolve_after:
                self.healthy_streak[key] = streak
                return None
            self.healthy_streak.pop(key, None)
            severity = self.firing.pop(key)
            status: Literal["firing", "resolved"] = "resolved"
        else:
            severity = severity_of(result)
            self.firing[key] = severity
            status = "firing"
        details = dict(result.details)
        extra = {name: details.pop(name) for name in OPTIONAL_FIELDS if name in details}
        extra.setdefault("score_kind", result.score_kind)
        if ctx.reference_id is not None:
            extra["reference_id"] = ctx.reference_id
        if ctx.segment is not None:
            extra["segment"] = ctx.segment
        return Alert(
            alert_id=alert_id(ctx.model_key, key, status, ctx.events_seen, ctx.labels_joined),
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
