"""Class-label models through the Engine: accuracy, macro precision, recall and F1 of the
window in the performance check's details, /status and the alert, against a confusion
matrix counted by hand; the labels behind them survive a restore from the changelog."""

from __future__ import annotations

import numpy as np
import pytest

from stream_monitor.alerts.contract import Alert
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.engine.core import Engine
from stream_monitor.state.models import StateTracker
from stream_monitor.state.records import StateRecord, decode, encode
from stream_monitor.state.restore import restore
from tests.helpers import batches_of_events

# The window's confusion matrix, rows = actual, columns = predicted, classes a, b, c:
#        a   b   c
#   a   60  15   5    support 80
#   b   10  40  10    support 60
#   c    0   5  25    support 30     170 labelled events, 125 right
CONFUSION = {("a", "a"): 60, ("a", "b"): 15, ("a", "c"): 5}
CONFUSION |= {("b", "a"): 10, ("b", "b"): 40, ("b", "c"): 10}
CONFUSION |= {("c", "b"): 5, ("c", "c"): 25}
# By hand: predicted totals a 70, b 60, c 40.
ACCURACY = 125 / 170
MACRO_PRECISION = (60 / 70 + 40 / 60 + 25 / 40) / 3
MACRO_RECALL = (60 / 80 + 40 / 60 + 25 / 30) / 3
MACRO_F1 = (120 / 150 + 80 / 120 + 50 / 70) / 3  # 2 tp / (2 tp + fp + fn) per class


def stream(seed: int = 1) -> list[dict[str, object]]:
    """100 unlabelled events that the window forgets, then 200 it keeps: the 170 labelled
    pairs of CONFUSION and 30 events without an actual, in a shuffled order."""
    filler: list[dict[str, object]] = [
        {"model": "clf", "features": {"x": 1.0}, "prediction": "c", "actual": None}
        for _ in range(100)
    ]
    kept: list[dict[str, object]] = [
        {"model": "clf", "features": {"x": 1.0}, "prediction": p, "actual": a}
        for (a, p), count in CONFUSION.items()
        for _ in range(count)
    ]
    kept += [{"model": "clf", "features": {"x": 1.0}, "prediction": "b", "actual": None}] * 30
    order = np.random.default_rng(seed).permutation(len(kept))
    return filler + [kept[i] for i in order]


def settings() -> DetectorSettings:
    # judged only once the window holds the 170 labelled events (at event 300)
    return DetectorSettings(
        window_size=200, check_every=100, min_labeled_events=150, min_accuracy=0.9
    )


def run(batch_size: int) -> tuple[Engine, list[Alert]]:
    engine = Engine(settings(), {})
    batches = batches_of_events(stream(), batch_size)
    return engine, [a for b in batches for a in engine.process(b).alerts]


@pytest.mark.parametrize("batch_size", [300, 64, 7])
def test_macro_precision_recall_f1_in_details_status_and_alert(batch_size: int) -> None:
    engine, alerts = run(batch_size)
    performance = [a for a in alerts if a.kind == "performance"]
    assert [a.status for a in performance] == ["firing"] and performance[0].events_seen == 300
    alert = performance[0]
    assert alert.test == "accuracy" and alert.score == pytest.approx(ACCURACY, rel=1e-12)
    expected = {
        "accuracy": ACCURACY,
        "macro_precision": MACRO_PRECISION,
        "macro_recall": MACRO_RECALL,
        "macro_f1": MACRO_F1,
    }
    for key, value in expected.items():
        assert alert.details[key] == pytest.approx(value, rel=1e-12), key
    assert alert.details["labeled"] == 170.0 and alert.details["classes"] == 3.0
    status = engine.status()["models"]["clf"]["results"]["performance"]  # type: ignore[index]
    for key, value in expected.items():
        assert status[key] == pytest.approx(value, rel=1e-12), key


def test_macro_metrics_before_enough_labels_are_reported_but_not_judged() -> None:
    engine = Engine(settings(), {})
    for batch in batches_of_events(stream()[:200], 50):
        engine.process(batch)
    result = engine.models["clf"].last_results[2]
    assert result.kind == "performance" and result.healthy is None
    # the window: 100 unlabelled filler events and the first 100 kept ones, counted here
    pairs = [(e["actual"], e["prediction"]) for e in stream()[100:200] if e["actual"]]
    assert 0 < len(pairs) < 150
    assert result.details["labeled"] == len(pairs)
    right = sum(a == p for a, p in pairs)
    assert result.details["accuracy"] == pytest.approx(right / len(pairs), rel=1e-12)
    hits = {c: sum(a == p == c for a, p in pairs) for c in "abc"}
    actual = {c: sum(a == c for a, _ in pairs) for c in "abc"}
    predicted = {c: sum(p == c for _, p in pairs) for c in "abc"}
    recall = sum(hits[c] / actual[c] for c in "abc") / 3
    precision = sum(hits[c] / predicted[c] for c in "abc") / 3
    assert result.details["macro_recall"] == pytest.approx(recall, rel=1e-12)
    assert result.details["macro_precision"] == pytest.approx(precision, rel=1e-12)


def test_regression_models_carry_no_class_metrics() -> None:
    engine = Engine(DetectorSettings(window_size=100, check_every=100, min_labeled_events=10), {})
    events = [
        {"model": "reg", "features": {"x": 1.0}, "prediction": 1.0, "actual": 1.5}
        for _ in range(100)
    ]
    for batch in batches_of_events(events, 100):
        engine.process(batch)
    result = engine.models["reg"].last_results[2]
    assert result.test == "mae" and result.score == pytest.approx(0.5)
    assert "macro_f1" not in result.details


def test_class_labels_are_restored_from_the_changelog() -> None:
    uninterrupted, expected = run(64)
    records: dict[bytes, bytes] = {}
    engine, tracker = Engine(settings(), {}), StateTracker(200)
    got: list[Alert] = []
    for i, batch in enumerate(batches_of_events(stream(), 64)):
        outcome = engine.process(batch)
        got.extend(outcome.alerts)
        for model, n in outcome.ok_counts.items():
            tracker.appended(model, n)
        written: list[StateRecord] = tracker.records(engine, outcome.ok_counts)
        records.update({r.key: encode(r) for r in written})
        if i in (1, 3):  # lose the memory; come back from the changelog
            engine, tracker = Engine(settings(), {}), StateTracker(200)
            assert restore(engine, [decode(k, v) for k, v in records.items()], tracker)
    assert [a.model_dump() for a in got] == [a.model_dump() for a in expected]
    labels, before = engine.models["clf"].class_tally, uninterrupted.models["clf"].class_tally
    assert labels is not None and before is not None
    assert labels.vocabulary == before.vocabulary
    window, kept = engine.models["clf"].window, uninterrupted.models["clf"].window
    assert window is not None and kept is not None and window.classes
    assert np.isin(kept.error[np.isfinite(kept.error)], (0.0, 1.0)).all()
    assert np.array_equal(window.error, kept.error, equal_nan=True)  # the 1/0s restored
    assert np.array_equal(labels.prediction, before.prediction)
    assert np.array_equal(labels.actual, before.actual)
