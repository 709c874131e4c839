"""Changelog state: records round-trip, and a restored engine continues exactly."""

from __future__ import annotations

import numpy as np
import pytest

from stream_monitor.alerts.outcome import BatchOutcome
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.engine.core import Engine
from stream_monitor.state.models import StateTracker
from stream_monitor.state.records import StateRecord, decode, encode
from stream_monitor.state.restore import restore
from stream_monitor.tools.synthetic import SyntheticModel, interleave
from tests.helpers import batches_of_events, references

MODELS = [
    SyntheticModel("drifty", n_features=6, drift_start=2500, drift_end=5000, drift_shift=2.0),
    SyntheticModel("steady", n_features=6),
    SyntheticModel("boot", n_features=6, drift_start=4000, drift_shift=2.0),  # no reference
]


class Changelog:
    """A compacted topic in memory: the newest value per key, in write order."""

    def __init__(self) -> None:
        self.records: dict[bytes, bytes] = {}
        self.bytes_written = 0

    def write(self, records: list[StateRecord]) -> None:
        for r in records:
            value = encode(r)
            self.bytes_written += len(value)
            self.records.pop(r.key, None)
            self.records[r.key] = value

    def record(self, engine: Engine, tracker: StateTracker, outcome: BatchOutcome) -> None:
        """What a member writes after a batch: the records of the windows it changed."""
        tracker.forget(outcome.dropped)
        for key, n in outcome.ok_counts.items():
            tracker.appended(key, n)
        self.write(tracker.records(engine, outcome.ok_counts))

    def read(self) -> list[StateRecord]:
        return [decode(k, v) for k, v in self.records.items()]


def _settings(rule: str = "window") -> DetectorSettings:
    return DetectorSettings(
        window_size=500, check_every=50, bootstrap_reference=700, input_drift_rule=rule
    )


def _refs() -> dict:
    return references(MODELS[:2], 2000)


def test_record_round_trip_is_exact() -> None:
    arrays = {
        "features": np.random.default_rng(1).normal(size=(7, 3)),
        "ring": np.array([3, 7], dtype=np.int64),
    }
    rec = StateRecord("m\u00e9", "full", {"seq": 4, "firing": {"input_drift": "warning"}}, arrays)
    back = decode(rec.key, encode(rec))
    assert back.model == "m\u00e9" and back.part == "full" and back.meta == rec.meta
    assert all(
        np.array_equal(back.arrays[k], v) and back.arrays[k].dtype == v.dtype
        for k, v in arrays.items()
    )


@pytest.mark.parametrize(
    "seed,rule", [(0, "window"), (1, "window"), (2, "both"), (3, "both"), (4, "sequential")]
)
def test_restored_engine_gives_the_same_alerts_as_an_uninterrupted_one(
    seed: int, rule: str
) -> None:
    events = interleave([m.events(0, 7000) for m in MODELS])
    rng = np.random.default_rng(seed)
    sizes = rng.integers(20, 700, size=200)
    batches, pos = [], 0
    for size in sizes:
        if pos >= len(events):
            break
        batches.extend(batches_of_events(events[pos : pos + int(size)], int(size)))
        pos += int(size)

    reference = Engine(_settings(rule), _refs())
    expected = [a for b in batches for a in reference.process(b).alerts]
    assert any(a.model == "boot" for a in expected)  # the bootstrapped model is covered
    sequential = [a for a in expected if a.test == "cusum"]
    assert bool(sequential) == (rule != "window")
    if rule != "window":  # the charts' state is restored: a firing and its resolution
        assert {a.status for a in sequential} == {"firing", "resolved"}

    log = Changelog()
    engine, tracker = Engine(_settings(rule), _refs()), StateTracker(500)
    crashes = set(rng.choice(len(batches), size=8, replace=False).tolist())
    got = []
    for i, batch in enumerate(batches):
        outcome = engine.process(batch)
        got.extend(outcome.alerts)
        log.record(engine, tracker, outcome)
        if i in crashes:  # lose everything in memory; come back from the changelog
            engine, tracker = Engine(_settings(rule), _refs()), StateTracker(500)
            restored = restore(engine, log.read(), tracker)
            assert sorted(restored) == sorted(f"{m.name}@{m.version}" for m in MODELS)
    assert [a.model_dump() for a in got] == [a.model_dump() for a in expected]
    for name, state in reference.models.items():
        other = engine.models[name]
        assert other.events_seen == state.events_seen
        assert state.window is not None and other.window is not None
        assert np.array_equal(other.window.features, state.window.features, equal_nan=True)
        assert other.window.head == state.window.head


def test_changelog_bytes_are_bounded() -> None:
    """About 1.5 times the raw window bytes per event, not a snapshot per check."""
    model = SyntheticModel("steady", n_features=20)
    engine, tracker, log = (
        Engine(DetectorSettings(), references([model], 2000)),
        StateTracker(1000),
        Changelog(),
    )
    events = model.events(0, 20_000)
    for batch in batches_of_events(events, 250):
        outcome = engine.process(batch)
        log.record(engine, tracker, outcome)
    raw_per_event = (20 + 4) * 8
    per_event = log.bytes_written / len(events)
    assert per_event < 2.0 * raw_per_event
    assert len(log.records) <= 2 + 64  # bounded keys per model after compaction


def test_a_restored_page_hinkley_continues_exactly() -> None:
    # the error stream's Page-Hinkley detector (and the sequential charts) restored mid-stream
    model = SyntheticModel("ph", n_features=4)
    events = model.events(0, 3000)
    for e in events[1500:]:
        e["actual"] = float(e["actual"]) + 2.0  # type: ignore[arg-type]
    settings = DetectorSettings(
        window_size=300, check_every=50, concept_detector="page_hinkley", page_hinkley_threshold=5.0
    )
    refs = references([model], 2000)
    batches = batches_of_events(events, 250)
    whole = Engine(settings, refs)
    expected = [a for b in batches for a in whole.process(b).alerts]
    assert any(a.kind == "concept_drift" and a.test == "page_hinkley" for a in expected)
    log, engine, tracker = Changelog(), Engine(settings, refs), StateTracker(300)
    got = []
    for i, batch in enumerate(batches):
        outcome = engine.process(batch)
        got.extend(outcome.alerts)
        log.record(engine, tracker, outcome)
        if i in (3, 7):
            engine, tracker = Engine(settings, refs), StateTracker(300)
            assert restore(engine, log.read(), tracker) == ["ph@v1"]
    assert [a.model_dump() for a in got] == [a.model_dump() for a in expected]
    detector = engine.models["ph@v1"].errors.detector
    assert (
        detector is not None and detector.state() == whole.models["ph@v1"].errors.detector.state()
    )  # type: ignore[union-attr]
