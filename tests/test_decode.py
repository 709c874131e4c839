"""Decoding and validation of raw records (contract §1): good events kept, bad ones explained."""

from __future__ import annotations

import orjson
import pytest

from stream_monitor.decode.predictions import decode_batch
from tests.helpers import batch_of

GOOD = {"features": {"a": 1.0, "b": None}, "prediction": 0.3, "latency_ms": 12}


@pytest.mark.parametrize(
    ("value", "key", "reason"),
    [
        (b"not json", b"m", "not_json"),
        (b"[1, 2]", b"m", "not_object"),
        (orjson.dumps({"prediction": 1}), b"m", "missing_features"),
        (orjson.dumps({"features": {}}), b"m", "missing_prediction"),
        (orjson.dumps({"features": [1]}), b"m", "bad_type"),
        (orjson.dumps({**GOOD, "prediction": {"x": 1}}), b"m", "bad_type"),
        (orjson.dumps({**GOOD, "latency_ms": "fast"}), b"m", "bad_type"),
        (orjson.dumps({**GOOD, "timestamp": "yesterday"}), b"m", "bad_type"),
        (orjson.dumps({**GOOD, "model": "other"}), b"m", "model_mismatch"),
        (orjson.dumps(GOOD), None, "missing_model"),
        (None, b"m", "empty"),
        (orjson.dumps(GOOD), b"\xff\xfe", "bad_key"),
    ],
)
def test_bad_records_become_dead_letters_with_a_reason(
    value: bytes | None, key: bytes | None, reason: str
) -> None:
    good = orjson.dumps(GOOD)
    decoded = decode_batch(batch_of([good, value, good], [b"m", key, b"m"]))
    assert [d.index for d in decoded.dead_letters] == [1]
    assert decoded.dead_letters[0].reason == reason
    assert decoded.dead_letters[0].detail
    assert decoded.by_model["m"].index == [0, 2]


def test_model_from_field_or_key_and_timestamps() -> None:
    values = [
        orjson.dumps({**GOOD, "model": "a", "timestamp": "2026-01-01T00:00:00Z"}),
        orjson.dumps({**GOOD, "timestamp": 1_767_225_600.5}),
        orjson.dumps({**GOOD, "model": "a"}),
    ]
    decoded = decode_batch(batch_of(values, [None, b"b", b"a"]))
    assert decoded.dead_letters == []
    assert decoded.by_model["a"].timestamps[0] == 1_767_225_600.0
    assert decoded.by_model["b"].timestamps == [1_767_225_600.5]
    # no timestamp in the event: the record's (Kafka) timestamp
    assert decoded.by_model["a"].timestamps[1] == 1_700_000_002.0


def test_missing_and_null_features_are_not_bad_events() -> None:
    decoded = decode_batch(batch_of([orjson.dumps({"features": {}, "prediction": "cat"})], [b"m"]))
    assert decoded.dead_letters == []
    assert decoded.by_model["m"].predictions == ["cat"]
