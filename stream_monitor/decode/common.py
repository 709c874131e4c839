"""What decoding predictions and labels shares: a record's JSON object and model, timestamps,
and the dead letter a record becomes when it cannot be read."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from stream_monitor.sources.records import DeadLetter, RecordBatch

Row = TypeVar("Row")

_NUMBER = (int, float)


class BadRecord(Exception):
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
            raise BadRecord("bad_type", f"timestamp {value!r} is not RFC 3339") from None
        if parsed.tzinfo is None:  # RFC 3339 requires an offset; read a missing one as UTC
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise BadRecord(
        "bad_type", f"timestamp must be a number or an RFC 3339 string, got {kind_of(value)}"
    )


def kind_of(value: object) -> str:
    return type(value).__name__.replace("NoneType", "null").replace("dict", "object")


def key_model(key: bytes | None) -> str:
    """The model a record's key names ("" without a key)."""
    if key is None:
        return ""
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRecord("bad_key", "message key is not UTF-8") from None


def read_object(value: bytes | None, key_hint: str) -> tuple[dict[str, Any], str]:
    """A record's JSON object and its model: the key's, or the `model` field (both must
    agree when both are there). Shared by prediction and label records."""
    if value is None:
        raise BadRecord("empty", "message has no value")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise BadRecord("not_json", f"value is not JSON: {exc}") from None
    if type(obj) is not dict:
        raise BadRecord("not_object", f"value is a JSON {kind_of(obj)}, expected an object")
    model = obj.get("model")
    if model is None:
        model = key_hint
    elif type(model) is not str or not model:
        raise BadRecord("bad_type", "model must be a non-empty string")
    elif key_hint and model != key_hint:
        raise BadRecord("model_mismatch", f"key {key_hint!r} and model {model!r} disagree")
    if not model:
        raise BadRecord("missing_model", "no model: neither a message key nor a model field")
    return obj, model


def readable_records(
    batch: RecordBatch,
    read: Callable[[dict[str, Any], int], Row],
    dead: list[DeadLetter],
    dead_models: list[str],
) -> Iterator[tuple[int, str, Row]]:
    """(position, model, fields) of each record that `read` accepts; every other record
    becomes a dead letter (appended to `dead`, its model, when readable, to `dead_models`).

    The one loop of both decoders: the key, the JSON object and the model are read here,
    the kind's own fields by `read(obj, position)`, which raises BadRecord to reject.
    """
    for i, value in enumerate(batch.values):
        model = ""
        try:
            model = key_model(batch.keys[i])
            obj, model = read_object(value, model)
            row = read(obj, i)
        except BadRecord as bad:
            dead.append(DeadLetter(i, bad.reason, bad.detail))
            dead_models.append(model)
            continue
        yield i, model, row


def decode_event_line(line: bytes) -> dict[str, object]:
    """One JSON object from a JSONL line (references and replay files). A ValueError's text
    follows the caller's `path:lineno: `, so it places a JSON error by its column only."""
    line = line.rstrip(b"\r\n")
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(line_json_error(line, exc)) from None
    if type(obj) is not dict:
        raise ValueError(f"expected a JSON object, got {kind_of(obj)}")
    return obj


def line_json_error(line: bytes, exc: orjson.JSONDecodeError) -> str:
    """`not valid JSON (<what> at column N)` for one line of a file: orjson's own text ends
    in "line 2 column 1 (char 5)", a position in the text parsed, which misleads after a
    `path:lineno`. N counts characters from 1; invalid UTF-8 is placed by its first bad byte
    (orjson places it at 0)."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        column = len(line[: bad.start].decode("utf-8")) + 1
        return f"not valid JSON (invalid UTF-8 at column {column})"
    return f"not valid JSON ({exc.msg} at column {exc.pos + 1})"


def line_detail(reason: str, detail: str, value: bytes | None) -> str:
    """A dead letter's detail as shown after `path:lineno` (a file replayed): a `not_json`
    one in the words of `decode_event_line`. The dead letter keeps the decoder's own
    text, which the dead-letter topic's readers see."""
    if reason != "not_json" or value is None:
        return detail
    line = value.rstrip(b"\r\n")
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return line_json_error(line, exc)
    return detail  # read by orjson, refused by the native decoder: its words stand
