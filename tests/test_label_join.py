"""The late-label join alone (no broker): outcomes, horizons, window rows, checks, memory."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from stream_monitor.alerts.outcome import BatchOutcome
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.config.loading import ConfigError, load_settings
from stream_monitor.decode.labels import decode_labels
from stream_monitor.engine.core import Engine
from stream_monitor.labels.pending import PendingRing, id_hashes
from stream_monitor.tools.synthetic import SyntheticModel, interleave
from tests.helpers import batches_of_events, references
from tests.label_helpers import (
    LABELS_TOPIC,
    join_of,
    joining_engine,
    label_batch,
    label_batches,
    labels_of,
    shuffled,
    without_actuals,
)

MODEL = SyntheticModel("reg", n_features=4)
SETTINGS = DetectorSettings(window_size=500, check_every=100, min_labeled_events=50)


def _join(
    engine: Engine, batch_labels: list[dict[str, object]], size: int = 500
) -> list[BatchOutcome]:
    return [join_of(engine).apply(engine, b) for b in label_batches(batch_labels, size)]


def _counts(outcomes: list[BatchOutcome]) -> dict[str, int]:
    total: dict[str, int] = {}
    for o in outcomes:
        for (_model, status), n in o.label_counts.items():
            total[status] = total.get(status, 0) + n
    return total


def test_late_labels_give_the_window_of_inline_actuals() -> None:
    """Labels joined later, in any order, leave the window as if the events had carried
    their actuals: the same actual and error in the same rows, the same MAE and RMSE."""
    events = MODEL.events(0, 3000)
    inline = Engine(SETTINGS, references([MODEL], 1000))
    for batch in batches_of_events(events, 250):
        inline.process(batch)
    late = joining_engine(SETTINGS, references([MODEL], 1000))
    for batch in batches_of_events(without_actuals(events), 250):
        late.process(batch)
    assert np.isnan(late.models["reg@v1"].window.error).all()  # type: ignore[union-attr]
    outcomes = _join(late, shuffled(labels_of(events)), 333)
    assert _counts(outcomes) == {"joined": 3000}
    a, b = inline.models["reg@v1"].window, late.models["reg@v1"].window
    assert a is not None and b is not None
    assert np.array_equal(a.actual, b.actual, equal_nan=True)
    assert np.array_equal(a.error, b.error, equal_nan=True)
    perf = next(r for r in late.models["reg@v1"].last_results if r.kind == "performance")
    ref = next(r for r in inline.models["reg@v1"].last_results if r.kind == "performance")
    assert perf.details["mae"] == pytest.approx(ref.details["mae"], rel=1e-12)
    assert perf.details["labeled"] == 500.0
    assert late.models["reg@v1"].labels_joined == 3000
    concept = late.models["reg@v1"].errors.detector
    assert concept is not None and concept.n > 0  # every joined error reached the detector


def test_each_outcome_is_counted() -> None:
    engine = joining_engine(SETTINGS, references([MODEL], 1000), horizon_events=100)
    events = MODEL.events(0, 300)
    for batch in batches_of_events(without_actuals(events), 300):
        engine.process(batch)
    good = {"event_id": "reg-250", "actual": 1.0}
    records = [
        (b"reg", good),  # joined
        (b"reg", good),  # the same event again: unmatched
        (b"reg", {"event_id": "reg-150", "actual": 1.0}),  # evicted by count: late
        (b"reg", {"event_id": "nothing-like-it", "actual": 1.0}),  # unmatched
        (b"other", {"event_id": "reg-251", "actual": 1.0}),  # a model not seen here
        (b"reg", {"event_id": "reg-252"}),  # no actual: invalid
        (b"reg", {"event_id": "reg-253", "actual": [1]}),  # unreadable actual: invalid
        (b"reg", {"model": "else", "event_id": "reg-254", "actual": 1}),  # key disagrees
        (None, {"event_id": "reg-255", "actual": 1}),  # no model at all
        (b"reg", {"event_id": "reg-256", "actual": 2.5}),  # joined
    ]
    values: list[bytes | None] = [orjson.dumps(v) for _, v in records] + [b"{not json"]
    keys = [k for k, _ in records] + [b"reg"]
    outcome = join_of(engine).apply(engine, label_batch(values, keys))
    assert outcome.label_counts == {
        ("reg@v1", "joined"): 2,  # the version's own window
        ("reg@v1", "unmatched"): 2,
        ("reg@v1", "late"): 1,
        ("other", "unmatched"): 1,
        ("reg", "invalid"): 4,  # the key's model, when the value's disagrees
        ("", "invalid"): 1,
    }
    reasons = sorted(d.reason for d in outcome.dead_letters)
    assert reasons == ["bad_type", "missing_actual", "missing_model", "model_mismatch", "not_json"]
    assert not outcome.ok_counts and not outcome.dead_letter_models  # not prediction events
    window = engine.models["reg@v1"].window
    assert window is not None
    assert int(np.isfinite(window.error).sum()) == 2
    assert 2.5 - 1e-9 < float(np.nansum(window.actual)) - 1.0 < 2.5 + 1e-9


def test_horizon_by_event_time() -> None:
    """A prediction older than the newest one minus the horizon is evicted: its label is late."""
    engine = joining_engine(SETTINGS, references([MODEL], 1000), horizon_seconds=5.0)
    events = MODEL.events(0, 1000)  # event times 0.01 s apart: 10 s in all
    for batch in batches_of_events(without_actuals(events), 200):
        engine.process(batch)
    assert join_of(engine).awaiting("reg@v1") == 501  # 5 s back from the newest, inclusive
    outcomes = _join(engine, labels_of([events[100], events[498], events[499], events[900]]))
    assert _counts(outcomes) == {"late": 2, "joined": 2}
    assert join_of(engine).awaiting("reg@v1") == 499


def test_horizon_by_count_bounds_memory() -> None:
    engine = joining_engine(DetectorSettings(window_size=200), {}, horizon_events=1000)
    model = SyntheticModel("big", n_features=2)
    events = without_actuals(model.events(0, 30_000))
    for batch in batches_of_events(events, 2500):
        engine.process(batch)
        ring = join_of(engine).rings["big@v1"]
        assert len(ring.index) <= 1000
        assert ring.nbytes() == 50 * 1000  # preallocated, whatever the traffic
    assert join_of(engine).awaiting("big@v1") == 1000
    outcomes = _join(engine, labels_of(model.events(0, 30_000))[-2500:])
    assert _counts(outcomes) == {"late": 1000, "unmatched": 500, "joined": 1000}


def test_errors_go_to_the_rows_of_their_events() -> None:
    """A label of an event still in the window sets that row; one of an event that left the
    window (still within the horizon) only reaches the concept-drift detector."""
    engine = joining_engine(DetectorSettings(window_size=100, check_every=1000), {})
    events = MODEL.events(0, 250)
    for batch in batches_of_events(without_actuals(events), 70):
        engine.process(batch)
    state = engine.models["reg@v1"]
    window = state.window
    assert window is not None and state.events_seen == 250
    inside, outside = events[200], events[20]
    _join(engine, labels_of([inside, outside]))
    row = (window.head - 1 - (250 - 201)) % window.size  # the 201st event's row
    assert window.prediction[row] == inside["prediction"]
    assert window.actual[row] == inside["actual"]
    assert window.error[row] == pytest.approx(abs(inside["prediction"] - inside["actual"]))
    assert int(np.isfinite(window.error).sum()) == 1
    assert state.errors.detector is not None and state.errors.detector.n == 2


def test_class_labels_count_as_misclassifications() -> None:
    def event(i: int) -> dict[str, object]:
        return {
            "model": "cls",
            "event_id": f"c{i}",
            "timestamp": 1_700_000_000 + i,
            "features": {"x": float(i % 7)},
            "prediction": ["cat", "dog", "fox"][i % 3],
            "actual": ["cat", "dog", "fox"][(i // 2) % 3],
        }

    events = [event(i) for i in range(600)]
    settings = DetectorSettings(window_size=300, check_every=100, min_labeled_events=50)
    inline = Engine(settings, {})
    for batch in batches_of_events(events, 150):
        inline.process(batch)
    late = joining_engine(settings, {})
    for batch in batches_of_events(without_actuals(events), 150):
        late.process(batch)
    outcomes = _join(late, shuffled(labels_of(events), 3), 120)
    assert _counts(outcomes) == {"joined": 600}
    a, b = inline.models["cls"], late.models["cls"]
    assert a.window is not None and b.window is not None
    assert np.array_equal(a.window.error, b.window.error, equal_nan=True)
    assert set(np.unique(b.window.error).tolist()) == {0.0, 1.0}
    assert a.class_tally is not None and b.class_tally is not None
    actual_of = {code: name for name, code in b.class_tally.vocabulary.items()}
    names_a = {code: name for name, code in a.class_tally.vocabulary.items()}
    assert [actual_of[c] for c in b.class_tally.actual] == [
        names_a[c] for c in a.class_tally.actual
    ]
    perf = next(r for r in b.last_results if r.kind == "performance")
    assert perf.details["accuracy"] == pytest.approx(1.0 - float(np.mean(b.window.error)))
    assert perf.details["macro_f1"] is not None


def test_labels_run_the_performance_and_concept_checks() -> None:
    """Every check_every joined labels the label-driven checks run, without any further
    prediction: a rise of the error fires `performance` (and `concept_drift`)."""
    settings = DetectorSettings(window_size=1000, check_every=100, min_labeled_events=100)
    engine = joining_engine(settings, references([MODEL], 1000))
    events = MODEL.events(0, 2000)
    for batch in batches_of_events(without_actuals(events), 500):
        engine.process(batch)
    before = engine.models["reg@v1"].checks
    outcomes = _join(engine, labels_of(events, shift_from=1400, shift=3.0), 250)
    alerts = [a for o in outcomes for a in o.alerts]
    kinds = {(a.kind, a.status) for a in alerts}
    assert ("performance", "firing") in kinds
    assert ("concept_drift", "firing") in kinds
    perf = next(a for a in alerts if a.kind == "performance")
    assert perf.source.topic == LABELS_TOPIC and perf.events_seen == 2000
    assert perf.score > 0.5 and perf.details["labeled"] >= 100
    assert engine.models["reg@v1"].checks == before + 20  # 2000 labels / check_every
    assert len({a.alert_id for a in alerts}) == len(alerts)


def test_ids_are_stable_and_never_empty() -> None:
    a = id_hashes(["e-1", "e-2", "e-1", "\udcff"])
    assert a[0] == a[2] and a[0] != a[1] and (a != 0).all()
    assert id_hashes(["e-1"])[0] == a[0]  # no per-process salt, unlike hash()


def test_ring_knows_late_and_joined_ids() -> None:
    ring = PendingRing(4)
    ids = id_hashes([f"e{i}" for i in range(10)])
    ring.remember(ids, np.arange(10.0), np.zeros(10, np.uint64), np.arange(10.0), np.arange(10))
    assert sorted(ring.index.values()) == [6, 7, 8, 9]
    assert ring.known(int(ids[3])) == (True, False)  # evicted: still known for a while
    assert ring.known(int(ids[1])) == (False, False)  # forgotten (beyond 2H)
    ring.join(int(ids[8]), 8)
    assert ring.known(int(ids[8])) == (True, True)


def test_integer_event_ids_join_as_their_text() -> None:
    engine = joining_engine(SETTINGS, {})
    event = {"model": "n", "event_id": 77, "features": {"x": 1.0}, "prediction": 2.0}
    engine.process(batches_of_events([event])[0])
    outcomes = _join(engine, [{"model": "n", "event_id": "77", "actual": 1.5}])
    outcomes += _join(engine, [{"model": "n", "event_id": 77, "actual": 1.5}])
    assert _counts(outcomes) == {"joined": 1, "unmatched": 1}  # the second is a repeat
    window = engine.models["n"].window
    assert window is not None and window.error[0] == 0.5


def test_decode_labels_groups_by_model() -> None:
    values = [orjson.dumps({"event_id": "a", "actual": "yes", "timestamp": "2026-01-01T00:00:00Z"})]
    values.append(orjson.dumps({"event_id": "b", "actual": 1, "timestamp": "yesterday"}))
    decoded = decode_labels(label_batch(values, [b"m", b"m"]))
    assert decoded.by_model["m"].event_ids == ["a"] and decoded.by_model["m"].actuals == ["yes"]
    assert [d.reason for d in decoded.dead_letters] == ["bad_type"]


def test_label_settings_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_MONITOR_LABEL_HORIZON_EVENTS", "500")
    s = load_settings({"labels_topic": "labels"})
    assert (s.labels_topic, s.label_horizon_events, s.label_horizon_seconds) == (
        "labels",
        500,
        86_400.0,
    )
    monkeypatch.delenv("STREAM_MONITOR_LABEL_HORIZON_EVENTS")
    assert load_settings({}).labels_topic is None  # off unless configured
    for bad, field in [
        ({"labels_topic": "predictions"}, "labels_topic"),
        ({"labels_topic": "alerts"}, "labels_topic"),
        ({"label_horizon_events": "0"}, "label_horizon_events"),
        ({"label_horizon_seconds": "-1"}, "label_horizon_seconds"),
    ]:
        with pytest.raises(ConfigError, match=field):
            load_settings(bad)


def test_interleaved_models_join_independently() -> None:
    models = [SyntheticModel("a", n_features=3), SyntheticModel("b", n_features=3)]
    events = interleave([m.events(0, 400) for m in models])
    engine = joining_engine(SETTINGS, references(models, 500))
    for batch in batches_of_events(without_actuals(events), 100):
        engine.process(batch)
    swapped = [{**x, "model": "b" if x["model"] == "a" else "a"} for x in labels_of(events)]
    outcomes = _join(engine, swapped)  # each id under the other model's key: none match
    assert _counts(outcomes) == {"unmatched": 800}
    assert join_of(engine).awaiting("a@v1") == 400
