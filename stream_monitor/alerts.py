"""Alert events (contract §4) and the firing/resolved state machine per model and kind.

An alert is emitted on a transition only: healthy -> unhealthy fires once, unhealthy ->
healthy resolves once. Its id is a UUID derived from what defines the transition (model,
kind, status and the model's event count), so the same input sequence gives the same ids.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import orjson
from pydantic import BaseModel

Kind = Literal[
    "input_drift", "prediction_drift", "performance", "latency", "data_quality", "concept_drift"
]
KINDS: tuple[Kind, ...] = (
    "input_drift",
    "prediction_drift",
    "performance",
    "latency",
    "data_quality",
    "concept_drift",
)
RETRAIN_KINDS = frozenset({"input_drift", "prediction_drift", "performance", "concept_drift"})
CRITICAL_FACTOR = 2.0  # a score at least this many times its threshold is critical

_NAMESPACE = uuid.UUID("6f1c1f3e-2b7a-4c55-9a53-5d1c2e7b9a10")


class FeatureResult(BaseModel):
    name: str
    test: str
    score: float
    p_value: float | None
    drifted: bool


class WindowInfo(BaseModel):
    size: int
    start: str | None
    end: str | None


class SourcePosition(BaseModel):
    topic: str
    partition: int
    offset: int


class Alert(BaseModel):
    """One alert event as published on the alerts topic."""

    alert_id: str
    model: str
    model_version: str | None
    kind: Kind
    status: Literal["firing", "resolved"]
    severity: Literal["warning", "critical"]
    test: str
    score: float
    threshold: float
    features: list[FeatureResult]
    events_seen: int
    window: WindowInfo
    source: SourcePosition
    detected_at: str | None
    recommendation: Literal["retrain"] | None
    details: dict[str, float | str | None] = {}

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


@dataclass(slots=True)
class CheckResult:
    """The outcome of one check of one kind; `healthy` None means it could not be judged."""

    kind: Kind
    test: str
    score: float
    threshold: float
    healthy: bool | None
    details: dict[str, float | str | None] = field(default_factory=dict)
    reason: str | None = None  # why it could not be judged
    # Per-feature results are built only when an alert needs them (p-values cost more
    # than the statistics they come from).
    feature_results: Callable[[], list[FeatureResult]] | None = None
    # (feature, score) without p-values: cheap, for per-feature gauges
    feature_scores: Callable[[], list[tuple[str, float]]] | None = None

    def features(self) -> list[FeatureResult]:
        return [] if self.feature_results is None else self.feature_results()


@dataclass(slots=True)
class CheckContext:
    """Where and when a check ran: the last event of the window."""

    model: str
    model_version: str | None
    events_seen: int
    window_size: int
    window_start: float
    window_end: float
    topic: str
    partition: int
    offset: int
    # set for a check run on label arrival (the labels joined so far): its ids stay distinct
    # from those of other checks at the same events_seen
    labels_joined: int | None = None


def rfc3339(epoch_seconds: float) -> str | None:
    if not math.isfinite(epoch_seconds):
        return None
    text = datetime.fromtimestamp(epoch_seconds, tz=UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def alert_id(
    model: str, kind: str, status: str, events_seen: int, labels_joined: int | None = None
) -> str:
    name = f"{model}\x1f{kind}\x1f{status}\x1f{events_seen}"
    if labels_joined is not None:
        name += f"\x1flabels\x1f{labels_joined}"
    return str(uuid.uuid5(_NAMESPACE, name))


def severity_of(score: float, threshold: float) -> Literal["warning", "critical"]:
    return "critical" if score >= CRITICAL_FACTOR * threshold else "warning"


@dataclass(slots=True)
class AlertState:
    """Firing or not, per kind, for one model; the last firing alert's severity."""

    firing: dict[str, Literal["warning", "critical"]] = field(default_factory=dict)

    def update(self, result: CheckResult, ctx: CheckContext) -> Alert | None:
        """The alert this result causes, if it changes the state."""
        if result.healthy is None:
            return None
        was_firing = result.kind in self.firing
        if result.healthy == (not was_firing):
            return None
        if result.healthy:
            severity = self.firing.pop(result.kind)
            status: Literal["firing", "resolved"] = "resolved"
        else:
            severity = severity_of(result.score, result.threshold)
            self.firing[result.kind] = severity
            status = "firing"
        return Alert(
            alert_id=alert_id(ctx.model, result.kind, status, ctx.events_seen, ctx.labels_joined),
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
            details=result.details,
        )
