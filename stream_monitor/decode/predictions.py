"""Raw records in, validated prediction events out, one batch at a time.

Validation is deliberately cheap (type checks on the parsed dict, no pydantic per event):
it is the per-event Python work of the hot path. What cannot be read becomes a dead letter
with a reason code; nothing raised here escapes the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from stream_monitor.decode.common import BadRecord, kind_of, parse_timestamp, readable_records
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


def route_key(model: str, version: str | None) -> str:
    """The key a model's events are kept under when versions keep their own windows:
    `model@version`, or the model for an event without a version."""
    return f"{model}@{version}" if version else model


def decode_batch(batch: RecordBatch, split_versions: bool = False) -> DecodedBatch:
    """Parse and validate every record; group the valid ones by model key (by
    `model@version` with `split_versions`; dead letters keep the model)."""
    by_model: dict[str, ModelEvents] = {}
    dead: list[DeadLetter] = []
    dead_models: list[str] = []
    times = batch.timestamps

    def fields(obj: dict[str, Any], i: int) -> _Fields:
        return _prediction_fields(obj, times[i])

    for i, model, row in readable_records(batch, fields, dead, dead_models):
        features, prediction, actual, latency, timestamp, version, event_id = row
        if split_versions and version:
            model = route_key(model, version)
        events = by_model.get(model)
        if events is None:
            events = by_model[model] = ModelEvents(model)
        events.index.append(i)
        events.features.append(features)
        events.predictions.append(prediction)
        events.actuals.append(actual)
        events.latencies.append(latency)
        events.timestamps.append(timestamp)
        events.versions.append(version)
        events.event_ids.append(event_id)
    return DecodedBatch(by_model, dead, dead_models)


_Fields = tuple[
    dict[str, object],  # features
    "float | str",  # prediction
    "float | str | None",  # actual
    "float | None",  # latency_ms
    "float | None",  # timestamp
    "str | None",  # model_version
    "str | None",  # event_id
]


def _prediction_fields(obj: dict[str, Any], record_time: float | None) -> _Fields:
    """A prediction event's fields, typed; BadRecord for the first one that is missing or
    mistyped. The timestamp falls back to the record's own time."""
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
            "bad_type", f"prediction must be a number or a string, got {kind_of(prediction)}"
        )
    actual = obj.get("actual")
    ta = type(actual)
    if actual is not None and ta is not float and ta is not int and ta is not str:
        raise BadRecord("bad_type", f"actual must be a number or a string, got {kind_of(actual)}")
    latency = obj.get("latency_ms")
    tl = type(latency)
    if latency is not None and tl is not float and tl is not int:
        raise BadRecord("bad_type", f"latency_ms must be a number, got {kind_of(latency)}")
    version = obj.get("model_version")
    if version is not None and type(version) is not str:
        raise BadRecord("bad_type", f"model_version must be a string, got {kind_of(version)}")
    ts = obj.get("timestamp")
    timestamp = record_time if ts is None else parse_timestamp(ts)
    event_id = obj.get("event_id")  # a string; an integer is read as its decimal text
    te = type(event_id)
    eid = event_id if te is str and event_id else str(event_id) if te is int else None
    return features, cast("float | str", prediction), actual, latency, timestamp, version, eid
