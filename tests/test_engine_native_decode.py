"""The engine reads known numeric models through the native decoder, and decides exactly as
through the Python decoder: the same alerts, dead letters (in the same order), counts,
check results and windows, whatever records the models send."""

from __future__ import annotations

import random

import numpy as np
import orjson
import pytest

import stream_monitor.engine.native_windows as native_windows
from stream_monitor.alerts.outcome import BatchOutcome
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.engine.core import Engine
from stream_monitor.engine.observers import EngineObserver, TakenEvents
from stream_monitor.reference.loading import prepare_from_events
from stream_monitor.sources.records import RecordBatch
from stream_monitor.tools.synthetic import SyntheticModel, interleave
from tests.helpers import batch_of, references

DRIFTING = SyntheticModel("fraud", drift_start=3000, drift_end=6000, drift_shift=2.0)
STEADY = SyntheticModel("churn")
UNKNOWN = SyntheticModel("no-reference")  # a model without a reference: Python, then native


def _odd(event: dict[str, object], rng: random.Random) -> bytes:
    """An event made awkward in one of the ways the native decoder hands to the Python or
    turns into a dead letter."""
    e = dict(event)
    features = dict(e["features"])  # type: ignore[call-overload]
    kind = rng.randrange(7)
    if kind == 0:
        features["f00"] = "1.25"  # a number as a string: read by the Python
    elif kind == 1:
        features["f01"] = {"x": 1}  # not a number: a bad_type dead letter of its model
    elif kind == 2:
        e["timestamp"] = "2027-01-02T03:04:05+00:00"  # RFC 3339: the Python's
    elif kind == 3:
        e["actual"] = None
    elif kind == 4:
        return orjson.dumps(e)[:-3]  # not JSON
    elif kind == 5:
        text = orjson.dumps({**e, "features": features}).decode()
        return text.replace('"f02":', '"f02":-0,"f02x":', 1).encode()  # an integer -0
    else:
        e["latency_ms"] = "slow"  # a bad_type dead letter before any model
    e["features"] = features
    return orjson.dumps(e)


def _stream(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    events = interleave([m.events(0, 5000, seed=seed) for m in (DRIFTING, STEADY, UNKNOWN)])
    return [_odd(e, rng) if rng.random() < 0.01 else orjson.dumps(e) for e in events]


def _run(engine: Engine, values: list[bytes], size: int) -> list[BatchOutcome]:
    outcomes = []
    for start in range(0, len(values), size):
        outcomes.append(engine.process(batch_of(values[start : start + size], None, start)))
    return outcomes


class _Count(EngineObserver):
    def __init__(self) -> None:
        self.native = 0
        self.predictions: list[float | str] = []

    def events_taken(self, taken: TakenEvents) -> None:
        self.native += taken.decoded.native
        self.predictions.extend(taken.events.predictions)


@pytest.mark.parametrize("seed,size", [(1, 500), (2, 137)])
def test_native_and_python_decoding_give_the_same_engine(
    seed: int, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = _stream(seed)
    settings = DetectorSettings(bootstrap_reference=1000, check_every=100)
    refs = references([DRIFTING, STEADY])
    native, native_seen = Engine(settings, refs), _Count()
    native.observe(native_seen)
    got = _run(native, values, size)
    monkeypatch.setattr(native_windows, "reads_natively", lambda model: False)
    python, python_seen = Engine(settings, refs), _Count()
    python.observe(python_seen)
    want = _run(python, values, size)

    assert native_seen.native > 0 and python_seen.native == 0
    assert native_seen.predictions == python_seen.predictions
    assert all(native.reads_natively(m) for m in ("fraud@v1", "churn@v1", "no-reference@v1"))
    alerts = [a.model_dump() for o in got for a in o.alerts]
    assert alerts == [a.model_dump() for o in want for a in o.alerts]
    assert any(a["model"] == "fraud" for a in alerts)
    for g, w in zip(got, want, strict=True):
        assert g.dead_letters == w.dead_letters
        assert g.dead_letter_models == w.dead_letter_models
        assert g.ok_counts == w.ok_counts and g.windows == w.windows
        assert g.checks.keys() == w.checks.keys()
        for name, results in g.checks.items():
            assert [r.score for r in results] == [r.score for r in w.checks[name]]
        assert g.latencies_ms.keys() == w.latencies_ms.keys()
        for name, lat in g.latencies_ms.items():
            assert np.array_equal(lat, w.latencies_ms[name])
    assert {d.reason for o in got for d in o.dead_letters} >= {"not_json", "bad_type"}
    for name, model in native.models.items():
        mine, theirs = model.window, python.models[name].window
        assert mine is not None and theirs is not None
        for column in (
            "features",
            "ks_key",
            "prediction",
            "actual",
            "latency_ms",
            "timestamp",
            "error",
        ):
            assert np.array_equal(getattr(mine, column), getattr(theirs, column), equal_nan=True), (
                name,
                column,
            )


def test_categorical_and_class_label_models_stay_with_the_python() -> None:
    plain = prepare_from_events(
        "plain", [{"features": {"a": 1.0}, "prediction": 0.5}] * 50, 10, "test"
    )
    coloured = prepare_from_events(
        "coloured",
        [{"features": {"a": float(i), "colour": "red"}, "prediction": 0.5} for i in range(50)],
        10,
        "test",
    )
    engine = Engine(DetectorSettings(), {"plain": plain, "coloured": coloured})
    batch = RecordBatch()
    for i, model in enumerate(["plain", "coloured", "plain"]):
        event = {"features": {"a": float(i), "colour": "red"}, "prediction": 0.5}
        batch.append(model.encode(), orjson.dumps(event), "t", 3, i, None)
    engine.process(batch)
    assert engine.reads_natively("plain") and not engine.reads_natively("coloured")
    engine.forget_partitions({("t", 3)})
    assert not engine.models and not engine.reads_natively("plain")


def test_a_new_model_is_admitted_at_its_first_event_and_its_batch_read_natively(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only each new model's first event goes through the Python decoder (to admit the
    model as before); the rest of its first batch is read natively."""
    import stream_monitor.decode.native as native_decode

    python_read: list[int] = []
    real = native_decode.decode_batch

    def counted(batch: RecordBatch, split_versions: bool = False) -> object:
        python_read.append(len(batch))
        return real(batch, split_versions)

    monkeypatch.setattr(native_decode, "decode_batch", counted)
    events = interleave([m.events(0, 300) for m in (DRIFTING, STEADY, UNKNOWN)])
    values = [orjson.dumps(e) for e in events]
    engine = Engine(DetectorSettings(check_every=100), references([DRIFTING, STEADY]))
    outcome = engine.process(batch_of(values, None, 0))
    assert python_read == [1, 1, 1]  # one first event per new model
    assert outcome.ok_counts == {"fraud@v1": 300, "churn@v1": 300, "no-reference@v1": 300}
    assert all(engine.models[m].events_seen == 300 for m in outcome.ok_counts)
    python_read.clear()
    engine.process(batch_of(values, None, 900))  # known now: nothing for the Python
    assert python_read == []
