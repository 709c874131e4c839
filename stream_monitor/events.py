"""Raw records in, validated prediction events out, one batch at a time.

Validation is deliberately cheap (type checks on the parsed dict, no pydantic per event):
it is the per-event Python work of the hot path. What cannot be read becomes a dead letter
with a reason code; nothing raised here escapes the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import orjson


@dataclass(slots=True)
class RecordBatch:
    """Raw records as parallel lists, whatever their source (Kafka or a file)."""

    keys: list[bytes | None] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    timestamps: list[float | None] = field(default_factory=list)  # epoch seconds
    # partitions whose end was reached in this batch (partition EOF), for the label gate
    ends: set[tuple[str, int]] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.values)

    def append(
        self,
        key: bytes | None,
        value: bytes | None,
        topic: str,
        partition: int,
        offset: int,
        timestamp: float | None,
    ) -> None:
        self.keys.append(key)
        self.values.append(value)
        self.topics.append(topic)
        self.partitions.append(partition)
        self.offsets.append(offset)
        self.timestamps.append(timestamp)


@dataclass(slots=True)
class DeadLetter:
    """A record that is not a readable prediction event; `index` points into its batch."""

    index: int
    reason: str  # short code, a metric label
    detail: str  # a sentence for the operator


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


_NUMBER = (int, float)


class _Bad(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def parse_timestamp(value: object) -> float:
    """Epoch seconds from a number or an RFC 3339 string."""
    if type(value) is float or type(value) is int:
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _Bad("bad_type", f"timestamp {value!r} is not RFC 3339") from None
        if parsed.tzinfo is None:  # RFC 3339 requires an offset; read a missing one as UTC
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise _Bad("bad_type", f"timestamp must be a number or an RFC 3339 string, got {_kind(value)}")


def _kind(value: object) -> str:
    return type(value).__name__.replace("NoneType", "null").replace("dict", "object")


def key_model(key: bytes | None) -> str:
    """The model a record's key names ("" without a key)."""
    if key is None:
        return ""
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        raise _Bad("bad_key", "message key is not UTF-8") from None


def read_object(value: bytes | None, key_hint: str) -> tuple[dict[str, Any], str]:
    """A record's JSON object and its model: the key's, or the `model` field (both must
    agree when both are there). Shared by prediction and label records."""
    if value is None:
        raise _Bad("empty", "message has no value")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise _Bad("not_json", f"value is not JSON: {exc}") from None
    if type(obj) is not dict:
        raise _Bad("not_object", f"value is a JSON {_kind(obj)}, expected an object")
    model = obj.get("model")
    if model is None:
        model = key_hint
    elif type(model) is not str or not model:
        raise _Bad("bad_type", "model must be a non-empty string")
    elif key_hint and model != key_hint:
        raise _Bad("model_mismatch", f"key {key_hint!r} and model {model!r} disagree")
    if not model:
        raise _Bad("missing_model", "no model: neither a message key nor a model field")
    return obj, model


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
                    raise _Bad("missing_features", "features is missing")
                raise _Bad("bad_type", f"features must be an object, got {_kind(features)}")
            prediction = obj.get("prediction")
            tp = type(prediction)
            if tp is not float and tp is not int and tp is not str:
                if prediction is None:
                    raise _Bad("missing_prediction", "prediction is missing")
                raise _Bad(
                    "bad_type", f"prediction must be a number or a string, got {_kind(prediction)}"
                )
            actual = obj.get("actual")
            ta = type(actual)
            if actual is not None and ta is not float and ta is not int and ta is not str:
                raise _Bad("bad_type", f"actual must be a number or a string, got {_kind(actual)}")
            latency = obj.get("latency_ms")
            tl = type(latency)
            if latency is not None and tl is not float and tl is not int:
                raise _Bad("bad_type", f"latency_ms must be a number, got {_kind(latency)}")
            version = obj.get("model_version")
            if version is not None and type(version) is not str:
                raise _Bad("bad_type", f"model_version must be a string, got {_kind(version)}")
            ts = obj.get("timestamp")
            timestamp = batch.timestamps[i] if ts is None else parse_timestamp(ts)
        except _Bad as bad:
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


def decode_event_line(line: bytes) -> dict[str, object]:
    """One JSON object from a JSONL line (references and replay files)."""
    obj = orjson.loads(line)
    if type(obj) is not dict:
        raise ValueError(f"expected a JSON object, got {_kind(obj)}")
    return obj
