"""The native prediction decoder (`decode.native.decode_native`) equals `decode_batch` then
`event_arrays` per model, for any batch and any schemas: the same dead letters (reasons;
details but for not_json), the same models in the same order, bit-identical arrays, the same
event ids and versions. Random events serialized by orjson and by hand (odd spacing, escapes,
number texts, repeated keys), random bytes and mutated events."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_monitor import _native
from stream_monitor.decode.arrays import EventArrays, event_arrays
from stream_monitor.decode.native import LazyFloats, NativeBatch, complete_events, decode_native
from stream_monitor.decode.predictions import decode_batch
from stream_monitor.sources.records import RecordBatch

REASONS = {
    "bad_key",
    "empty",
    "not_json",
    "not_object",
    "bad_type",
    "model_mismatch",
    "missing_model",
    "missing_features",
    "missing_prediction",
}
MODELS = ["m1", "m2", "é-model", 'q"m', "m\\b", "😀"]
FEATURES = ["a", "b", "c", "x y", "é", "\x00k", 'q"uote', "back\\slash", "/", "😀", "model"]


class Raw:
    """A number as its JSON text (the hand-written serializer writes it as is)."""

    def __init__(self, text: str) -> None:
        self.text = text


RAW_NUMBERS = [
    "-0",
    "-0.0",
    "-0e0",
    "0e999999",
    "1E+2",
    "1e400",
    "-1e-400",
    "5e-324",
    "2.4703282292062328e-324",
    "1.7976931348623157e308",
    "1.7976931348623159e308",
    "0.1000000000000000055511151231257827",
    "123456789012345678901234567890",
    "-123456789012345678901234567890",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "9007199254740993",
    "9007199254740993.0",
    "2.2250738585072011e-308",
    "1" * 400,
    "0." + "0" * 300 + "1",
]

# -- values -------------------------------------------------------------------------------

numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from(
        [2**63, 2**63 - 1, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 0, -0.0, 1e308, 5e-324]
    ),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(10**6), 10**6).map(float),
)
texts = st.one_of(
    st.sampled_from(["", "x", "2024-01-02T03:04:05Z", "1.5", "nan", "é\n\t"]), st.text(max_size=6)
)
scalars = st.one_of(numbers, st.booleans(), st.none(), texts)
nested = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=5,
)
raw_numbers = st.sampled_from(RAW_NUMBERS).map(Raw)
feature_values = st.one_of(numbers, numbers, st.booleans(), st.none(), texts, nested, raw_numbers)
MISSING = object()


def optional(strategy: st.SearchStrategy[Any], missing: float = 0.3) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(MISSING), strategy) if missing else strategy


@st.composite
def events(draw: st.DrawFn) -> tuple[bytes | None, dict[str, Any]]:
    """A key and an event object (some fields missing, some of the wrong type)."""
    model = draw(st.sampled_from(MODELS))
    key_kind = draw(st.sampled_from(["model"] * 6 + ["other", "none", "empty", "bad"]))
    key = {
        "model": model.encode(),
        "other": draw(st.sampled_from(MODELS)).encode(),
        "none": None,
        "empty": b"",
        "bad": b"\xff\xfe",
    }[key_kind]
    obj: dict[str, Any] = {}
    good = draw(st.integers(0, 9)) > 1  # mostly well-typed events
    fields: dict[str, st.SearchStrategy[Any]] = {
        "model": st.sampled_from([model, model, "", 3, None, draw(st.sampled_from(MODELS))]),
        "features": st.dictionaries(st.sampled_from(FEATURES), feature_values, max_size=8)
        if good
        else st.one_of(st.dictionaries(st.sampled_from(FEATURES), feature_values), scalars, nested),
        "prediction": st.one_of(numbers, raw_numbers) if good else st.one_of(scalars, nested),
        "actual": st.one_of(numbers, st.none()) if good else st.one_of(scalars, nested),
        "latency_ms": st.one_of(numbers, st.none()) if good else st.one_of(scalars, nested),
        "timestamp": st.one_of(numbers, st.none()) if good else st.one_of(scalars, nested),
        "model_version": st.sampled_from(["v1", "v2", None])
        if good
        else st.one_of(scalars, nested),
        "event_id": st.one_of(texts, st.integers(-(2**70), 2**70), numbers, st.none()),
        "extra": nested,
    }
    for name, strategy in fields.items():
        required = good and name in ("features", "prediction")
        value = draw(optional(strategy, 0 if required else 0.4))
        if value is not MISSING:
            obj[name] = value
    return key, obj


def _orjson_default(value: object) -> object:
    if isinstance(value, Raw):
        return 1.5
    raise TypeError


def to_orjson(obj: object) -> bytes:
    try:
        return orjson.dumps(obj, default=_orjson_default)
    except TypeError:  # an int beyond 64 bits: the standard library writes it
        return json.dumps(obj, default=_orjson_default, ensure_ascii=False).encode()


def _quote(s: str, r: random.Random) -> str:
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif code < 0x20:
            out.append(
                r.choice([f"\\u{code:04x}", f"\\u{code:04X}"])
                if ch not in "\n\t"
                else r.choice(["\\n" if ch == "\n" else "\\t", f"\\u{code:04x}"])
            )
        elif r.random() < 0.15:
            if code > 0xFFFF:
                c = code - 0x10000
                out.append(f"\\u{0xD800 + (c >> 10):04x}\\u{0xDC00 + (c & 0x3FF):04x}")
            else:
                out.append(f"\\u{code:04x}")
        elif ch == "/" and r.random() < 0.5:
            out.append("\\/")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _number(v: int | float, r: random.Random) -> str:
    if isinstance(v, int):
        return "-0" if v == 0 and r.random() < 0.2 else str(v)
    forms = [
        repr(v),
        f"{v:.17g}",
        f"{v:.17e}".replace("e", r.choice(["e", "E", "e+"]) if "e+" in f"{v:.17e}" else "e"),
    ]
    if v.is_integer() and abs(v) < 1e15:
        forms += [f"{int(v)}.0", f"{int(v)}e0", f"{int(v)}.000E+00"]
    text = r.choice(forms)
    return text if ("." in text or "e" in text or "E" in text or "inf" in text) else text + ".0"


def hand_json(v: object, r: random.Random) -> str:
    """JSON text of `v` with random spacing, escapes, number forms and repeated keys."""

    def ws() -> str:
        return r.choice(["", "", "", " ", "\n", "\t ", "\r\n  "])

    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, Raw):
        return v.text
    if isinstance(v, int | float):
        return _number(v, r)
    if isinstance(v, str):
        return _quote(v, r)
    if isinstance(v, list):
        return "[" + ws() + ("," + ws()).join(hand_json(x, r) + ws() for x in v) + "]"
    if isinstance(v, dict):
        pairs: list[tuple[str, object]] = []
        for k, x in v.items():
            if r.random() < 0.1:  # an earlier copy of the key: the last one holds
                pairs.append((k, r.choice([1, "s", None, [], {}, True])))
            pairs.append((k, x))
        body = ("," + ws()).join(
            f"{ws()}{_quote(k, r)}{ws()}:{ws()}{hand_json(x, r)}{ws()}" for k, x in pairs
        )
        return "{" + body + "}"
    raise TypeError(type(v))


@st.composite
def batches(draw: st.DrawFn) -> tuple[RecordBatch, dict[str, tuple[str, ...]]]:
    r = random.Random(draw(st.integers(0, 2**32)))
    n = draw(st.integers(0, 30))
    batch = RecordBatch()
    for i in range(n):
        key, obj = draw(events())
        how = draw(st.sampled_from(["orjson", "orjson", "hand", "hand", "hand", "none"]))
        value = (
            None
            if how == "none"
            else to_orjson(obj)
            if how == "orjson"
            else hand_json(obj, r).encode()
        )
        time = draw(st.one_of(st.none(), st.floats(0, 2e9)))
        batch.append(key, value, "predictions", 0, i, time)
    schemas: dict[str, tuple[str, ...]] = {}
    for model in draw(st.lists(st.sampled_from([*MODELS, "unknown"]), unique=True)):
        names = draw(st.lists(st.sampled_from([*FEATURES, "never"]), max_size=6))
        schemas[model] = tuple(names)
    return batch, schemas


# -- the invariant ------------------------------------------------------------------------


def same_floats(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> None:
    assert a.dtype == b.dtype == np.float64
    assert a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=True)
    assert np.array_equal(
        np.ascontiguousarray(a).view(np.uint64), np.ascontiguousarray(b).view(np.uint64)
    )


def as_float(v: object) -> object:
    """A number as its float's bits (the native path gives ints as floats)."""
    if type(v) is int or type(v) is float:
        return float(v).hex() if not math.isnan(float(v)) else "nan"
    return v


def check_invariant(batch: RecordBatch, schemas: dict[str, tuple[str, ...]]) -> NativeBatch:
    got = decode_native(batch, schemas)
    want = decode_batch(batch)
    assert len(got.dead_letters) == len(want.dead_letters)
    for g, w in zip(got.dead_letters, want.dead_letters, strict=True):
        assert (g.index, g.reason) == (w.index, w.reason), (g, w, batch.values[w.index])
        if w.reason != "not_json":
            assert g.detail == w.detail
    assert got.dead_letter_models == want.dead_letter_models
    assert list(got.by_model) == list(want.by_model)
    for name, w_events in want.by_model.items():
        model = got.by_model[name]
        g_events = complete_events(model)
        assert g_events.model == name
        assert g_events.index == w_events.index
        assert g_events.event_ids == w_events.event_ids
        assert g_events.versions == w_events.versions
        assert [as_float(v) for v in g_events.predictions] == [
            as_float(v) for v in w_events.predictions
        ]
        assert [as_float(v) for v in g_events.actuals] == [as_float(v) for v in w_events.actuals]
        assert [as_float(v) for v in g_events.latencies] == [
            as_float(v) for v in w_events.latencies
        ]
        assert [as_float(v) for v in g_events.timestamps] == [
            as_float(v) for v in w_events.timestamps
        ]
        if not model.native:
            assert g_events == w_events
        names = schemas.get(name)
        if names is None:
            assert model.arrays is None
            continue
        assert model.arrays is not None
        compare_arrays(model.arrays, event_arrays(names, w_events))
    return got


def compare_arrays(g: EventArrays, w: EventArrays) -> None:
    assert g.kept == w.kept
    for field in ("features", "prediction", "actual", "latency_ms", "timestamp", "error"):
        same_floats(getattr(g, field), getattr(w, field))
    assert g.features.flags.c_contiguous
    assert g.has_classes == w.has_classes
    assert [as_float(v) for v in g.predictions] == [as_float(v) for v in w.predictions]
    assert [as_float(v) for v in g.actuals] == [as_float(v) for v in w.actuals]
    assert g.dead_letters == w.dead_letters


# 200 batches of up to 30 records (at 400 the suite's slowest unit test, 45-66 s); the fuzz
# test below feeds 400 more batches of random and mutated bytes to the same decoder
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batches())
def test_the_native_decoder_equals_the_python_path(
    case: tuple[RecordBatch, dict[str, tuple[str, ...]]],
) -> None:
    check_invariant(*case)


def test_fast_models_are_read_natively() -> None:
    batch = RecordBatch()
    for i in range(6):
        event = {"features": {"a": i, "b": True, "s": "x"}, "prediction": 0.5 * i, "event_id": i}
        batch.append(f"m{i % 2}".encode(), orjson.dumps(event), "t", 0, i, float(i))
    got = check_invariant(batch, {"m0": ("a", "b"), "m1": ("b",)})
    assert [m.native for m in got.by_model.values()] == [True, True]
    m0 = got.by_model["m0"]
    assert m0.events.features == []  # the native path has no feature dicts
    assert isinstance(m0.arrays and m0.arrays.predictions, LazyFloats)
    assert m0.events.predictions == [0.0, 1.0, 2.0]  # filled by complete_events
    assert m0.events.actuals == [None, None, None]


def test_a_schema_name_no_json_key_can_equal_stays_missing() -> None:
    batch = RecordBatch()
    batch.append(b"m", b'{"features": {"a": 1}, "prediction": 2}', "t", 0, 0, None)
    got = check_invariant(batch, {"m": ("a", "\ud800", "a")})
    arrays = got.by_model["m"].arrays
    assert got.by_model["m"].native and arrays is not None
    assert arrays.features.tolist()[0][0] == 1.0 and math.isnan(arrays.features[0, 1])


# -- what goes to the Python ----------------------------------------------------------------


def test_undecided_records_go_to_the_python_and_demote_their_model() -> None:
    batch = RecordBatch()
    good = b'{"features": {"a": 1}, "prediction": 2}'
    deep = b'{"features": {"a": ' + b"[" * 200 + b"]" * 200 + b'}, "prediction": 1}'
    for i, value in enumerate(
        [good, b'{"features": {"a": -0}, "prediction": 1}', good, deep, good]
    ):
        batch.append(b"m" if i < 3 else b"n", value, "t", 0, i, None)
    decoded = _native.decode_predictions(
        batch.values, batch.keys, batch.timestamps, {"m": ("a",), "n": ("a",)}
    )
    assert decoded.undecided_positions == [1, 3]
    assert sorted(decoded.fast) == ["m", "n"]  # read natively; the Python demotes them
    got = check_invariant(batch, {"m": ("a",), "n": ("a",)})
    assert list(got.by_model) == ["m", "n"]  # first seen first
    assert not got.by_model["m"].native  # demoted: its -0 record was the Python's to read
    assert not got.by_model["n"].native  # and n for its deep one
    assert got.by_model["m"].arrays is not None
    # the integer -0 is the float +0.0 (orjson reads an int 0)
    assert got.by_model["m"].arrays.features[1, 0].hex() == "0x0.0p+0"


def test_slow_models_are_the_pythons() -> None:
    batch = RecordBatch()
    values = [
        b'{"features": {"a": 1}, "prediction": "cat", "actual": "dog"}',
        b'{"features": {"a": 1}, "prediction": 1, "timestamp": "2024-01-02T03:04:05+00:00"}',
        b'{"features": {"a": 1}, "prediction": 1, "timestamp": "yesterday"}',
        b'{"features": {"a": "1.5"}, "prediction": 1}',
        b'{"features": {"a": {"x": 1}}, "prediction": 1}',
        b'{"features": {"a": 1}, "prediction": 1}',
    ]
    for i, value in enumerate(values):
        batch.append(f"m{i}".encode(), value, "t", 0, i, None)
    schemas: dict[str, tuple[str, ...]] = {f"m{i}": ("a",) for i in range(6)}
    decoded = _native.decode_predictions(batch.values, batch.keys, batch.timestamps, schemas)
    assert decoded.slow_positions == [0, 1, 2, 3, 4]
    assert list(decoded.fast) == ["m5"]
    got = check_invariant(batch, schemas)
    assert [d.reason for d in got.dead_letters] == ["bad_type"]  # the RFC 3339 one
    arrays = got.by_model["m4"].arrays
    assert arrays is not None and arrays.dead_letters[0].reason == "bad_type"


def test_bad_arguments_raise_naming_them() -> None:
    decode = _native.decode_predictions
    with pytest.raises(TypeError, match=r"values\[1\]"):
        decode([b"{}", "str"], [None, None], [None, None], {})  # type: ignore[list-item]
    with pytest.raises(TypeError, match="keys"):
        decode([], (), [], {})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"timestamps\[0\]"):
        decode([None], [None], ["now"], {})  # type: ignore[list-item]
    with pytest.raises(TypeError, match="schemas"):
        decode([b'{"features": {}, "prediction": 1}'], [b"m"], [None], {"m": 3})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match=r'schemas\["m"\]\[1\]'):
        decode([b'{"features": {}, "prediction": 1}'], [b"m"], [None], {"m": ("a", 2)})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="timestamps: 0 items for a batch of 1"):
        decode([None], [None], [], {})


# -- fuzz -----------------------------------------------------------------------------------

SAMPLE = (
    b'{"model": "m1", "features": {"a": 1.5, "b": null, "c": true, "\\u00e9": -2e-3}, '
    b'"prediction": 0.25, "actual": 1, "latency_ms": 3, "timestamp": 1700000000.5, '
    b'"model_version": "v1", "event_id": "e-1", "extra": [1, {"x": "\\ud83d\\ude00"}]}'
)
ALPHABET = b'{}[]":,\\ -+.eE0123456789tfnul\x00\x1f\x7f\xc3\xa9\xff\xed\xa0'


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(
        draw(st.sampled_from([SAMPLE, SAMPLE[:60] + b"}", b'{"features": {}, "prediction": 1}']))
    )
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if how == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "cut":
            del data[at:]
        elif how == "insert":
            data[at:at] = bytes(draw(st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=3)))
        else:
            del data[at : at + draw(st.integers(1, 5))]
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.one_of(st.binary(max_size=40), mutated()),
            st.sampled_from([b"m1", b"m2", None, b"\xc3"]),
        ),
        max_size=12,
    )
)
def test_fuzz_no_crash_and_the_same_reasons(records: list[tuple[bytes, bytes | None]]) -> None:
    batch = RecordBatch()
    for i, (value, key) in enumerate(records):
        batch.append(key, value, "t", 0, i, 1.0)
    schemas = {"m1": ("a", "b", "c", "é"), "m2": ()}
    decoded = _native.decode_predictions(batch.values, batch.keys, batch.timestamps, schemas)
    assert {reason for _, reason, _, _ in decoded.dead} <= REASONS
    for i, reason, _, _ in decoded.dead:
        if reason == "not_json":  # what serde_json rejects, orjson rejects
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(batch.values[i])  # type: ignore[arg-type]
    check_invariant(batch, schemas)


KEYS = [b"m1", b"m2", None]


def _decoded(decoded: _native.NativeDecoded) -> dict[str, Any]:
    fast = {
        name: (
            [m.positions.tolist(), m.features.tobytes(), m.prediction.tobytes()],
            [m.actual.tobytes(), m.timestamp.tobytes(), m.error.tobytes()],
            (m.event_ids, m.versions),
        )
        for name, m in decoded.fast.items()
    }
    slow = (decoded.slow_positions, decoded.undecided_positions, decoded.unknown)
    return {"dead": decoded.dead, "slow": slow, "fast": fast}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.tuples(st.one_of(st.binary(max_size=40), mutated()), st.sampled_from(KEYS)),
            events().map(lambda e: (to_orjson(e[1]), e[0])),
        ),
        min_size=1,
        max_size=40,
    ),
    st.integers(300, 1500),
)
def test_records_read_on_several_threads_decode_as_on_one(
    records: list[tuple[bytes, bytes | None]], size: int
) -> None:
    """A batch's records are read in stretches, one per thread (`validate_on`), and routed
    in batch order after: the same dead letters, slow and fast records on 1 and 3 threads."""
    batch = RecordBatch()
    for i in range(size):
        value, key = records[i % len(records)]
        batch.append(key, value, "t", 0, i, float(i % 5) if i % 3 else None)
    schemas = {m: tuple(FEATURES[: 2 + i]) for i, m in enumerate(MODELS)}
    schemas |= {f"{m}@v1": tuple(FEATURES) for m in MODELS}
    got = [
        _decoded(
            _native.decode_predictions(
                batch.values,
                batch.keys,
                batch.timestamps,
                schemas,
                _native.WindowFleet([1.0], threads),
                split_versions=True,
            )
        )
        for threads in (1, 3)
    ]
    assert got[0] == got[1]
