"""Alert events as published (contract §4), their kinds, and their deterministic ids.

An alert is emitted on a transition only: healthy -> unhealthy fires once, unhealthy ->
healthy resolves once. Its id is a UUID derived from what defines the transition (model,
kind, status and the model's event count), so the same input sequence gives the same ids.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

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
# a value in an alert's or a result's details: counts are ints, measures floats
Detail = int | float | str | None
OPTIONAL_FIELDS = ("score_kind", "direction", "change_start_event", "reference_id", "segment")
RETRAIN_KINDS = frozenset({"input_drift", "prediction_drift", "performance", "concept_drift"})

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
    details: dict[str, Detail] = {}
    # contract section 4's optional fields: absent (not null) when unknown
    score_kind: Literal["statistic", "p_value", "chart", "neg_log10_p_value"] | None = None
    direction: Literal["up", "down", "scale"] | None = None
    change_start_event: int | None = None
    reference_id: str | None = None  # the content hash of the reference judged against
    segment: str | None = None  # the segment of a model monitored per segment

    def to_json(self) -> bytes:
        return orjson.dumps(self.as_dict())

    def as_dict(self) -> dict[str, Any]:
        """The published object: the optional fields only where known."""
        data = self.model_dump(mode="json")
        for name in OPTIONAL_FIELDS:
            if data[name] is None:
                del data[name]
        return data


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
