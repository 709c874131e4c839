"""Label records (contract §2) in, validated labels grouped by model out, one batch at a time.

A label is `{"event_id": str, "actual": number|string}`, optionally `model` and `timestamp`;
the record key names the model (key and `model` must agree when both are given). As for
predictions, validation is a few type checks per record, and what cannot be read becomes a
dead letter with a reason code instead of an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from stream_monitor.decode.common import BadRecord, kind_of, parse_timestamp, readable_records
from stream_monitor.sources.records import DeadLetter, RecordBatch


@dataclass(slots=True)
class ModelLabels:
    """The readable labels of one model in one batch, in arrival order."""

    model: str
    index: list[int] = field(default_factory=list)  # position in the batch
    event_ids: list[str] = field(default_factory=list)
    actuals: list[float | str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.index)


@dataclass(slots=True)
class DecodedLabels:
    by_model: dict[str, ModelLabels]
    dead_letters: list[DeadLetter]
    dead_letter_models: list[str]  # model of each dead letter when readable, else ""


def decode_labels(batch: RecordBatch) -> DecodedLabels:
    """Parse and validate every label record; group the readable ones by model."""
    by_model: dict[str, ModelLabels] = {}
    dead: list[DeadLetter] = []
    dead_models: list[str] = []
    for i, model, (event_id, actual) in readable_records(batch, _label_fields, dead, dead_models):
        labels = by_model.get(model)
        if labels is None:
            labels = by_model[model] = ModelLabels(model)
        labels.index.append(i)
        labels.event_ids.append(event_id)
        labels.actuals.append(actual)
    return DecodedLabels(by_model, dead, dead_models)


def _label_fields(obj: dict[str, Any], _position: int) -> tuple[str, float | str]:
    """A label's event id and actual; BadRecord when either is missing or mistyped."""
    event_id = _event_id(obj.get("event_id"))
    actual = obj.get("actual")
    ta = type(actual)
    if ta is not float and ta is not int and ta is not str:
        if actual is None:
            raise BadRecord("missing_actual", "actual is missing")
        raise BadRecord("bad_type", f"actual must be a number or a string, got {kind_of(actual)}")
    if obj.get("timestamp") is not None:
        parse_timestamp(obj["timestamp"])  # validated; the join does not depend on it
    return event_id, cast("float | str", actual)


def _event_id(value: object) -> str:
    """A non-empty string; an integer is read as its decimal text (as for predictions)."""
    if type(value) is str and value:
        return value
    if type(value) is int:
        return str(value)
    if value is None:
        raise BadRecord("missing_event_id", "event_id is missing")
    raise BadRecord("bad_type", f"event_id must be a non-empty string, got {kind_of(value)}")
