"""Raw records in, validated prediction events out, one batch at a time.

Validation is deliberately cheap (type checks on the parsed dict, no pydantic per event):
it is the per-event Python work of the hot path. What cannot be read becomes a dead letter
with a reason code; nothing raised here escapes the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from stream_monitor.decode.common import (
    BadRecord,
    key_model,
    kind_of,
    parse_timestamp,
    read_object,
)
from stream_monitor.sources.records import DeadLetter, RecordBatch


@dataclass(slots=True)
class ModelEvents:
    """The valid events of one model in one batch, in arrival order, as parallel lists."""

    model: str
    index: list[int] = field(default_factory=list)
    features: list[dict[str, object]] = field(default_factory=list)
    predictions: list[float | str] = field(default_factory=list)
    actuals: list[float | str | None] = field(default_factory=list)
    latencies: list[float | None] = field(default_factory=list)
    timestamps: list[float | None] = field(default_factory=list)
    versions: list[str | None] = field(default_factory=list)
    event_ids: list[str | None] = field(default_factory=list)  # what late labels join on

    def __len__(self) -> int:
        return len(self.index)


@dataclass(slots=True)
class DecodedBatch:
    by_model: dict[str, ModelEvents]
    dead_letters: list[DeadLetter]
    dead_letter_models: list[str]  # model of each dead letter when readable, else ""


def decode_batch(batch: RecordBatch) -> DecodedBatch:
    """Parse and validate every record; group the valid ones by model key."""
    by_model: dict[str, ModelEvents] = {}
    dead: list[DeadLetter] = []
    dead_models: list[str] = []
    for i, value in enumerate(batch.values):
        model_hint = ""
        try:
            model_hint = key_model(batch.keys[i])
            obj, model_hint = read_object(value, model_hint)
            features = obj.get("features")
            if type(features) is not dict:
                if features is None:
                    raise BadRecord("missing_features", "features is missing")
                raise BadRecord("bad_type", f"features must be an object, got {kind_of(features)}")
            prediction = obj.get("prediction")
            tp = type(prediction)
            if tp is not float and tp is not int and tp is not str:
                if prediction is None:
                    raise BadRecord("missing_prediction", "prediction is missing")
                raise BadRecord(
                    "bad_type",
                    f"prediction must be a number or a string, got {kind_of(prediction)}",
                )
            actual = obj.get("actual")
            ta = type(actual)
            if actual is not None and ta is not float and ta is not int and ta is not str:
                raise BadRecord(
                    "bad_type", f"actual must be a number or a string, got {kind_of(actual)}"
                )
            latency = obj.get("latency_ms")
            tl = type(latency)
            if latency is not None and tl is not float and tl is not int:
                raise BadRecord("bad_type", f"latency_ms must be a number, got {kind_of(latency)}")
            version = obj.get("model_version")
            if version is not None and type(version) is not str:
                raise BadRecord(
                    "bad_type", f"model_version must be a string, got {kind_of(version)}"
                )
            ts = obj.get("timestamp")
            timestamp = batch.timestamps[i] if ts is None else parse_timestamp(ts)
        except BadRecord as bad:
            dead.append(DeadLetter(i, bad.reason, bad.detail))
            dead_models.append(model_hint)
            continue
        events = by_model.get(model_hint)
        if events is None:
            events = by_model[model_hint] = ModelEvents(model_hint)
        events.index.append(i)
        events.features.append(features)
        events.predictions.append(cast("float | str", prediction))
        events.actuals.append(actual)
        events.latencies.append(latency)
        events.timestamps.append(timestamp)
        events.versions.append(version)
        event_id = obj.get("event_id")  # a string; an integer is read as its decimal text
        te = type(event_id)
        events.event_ids.append(
            event_id if te is str and event_id else str(event_id) if te is int else None
        )
    return DecodedBatch(by_model, dead, dead_models)
