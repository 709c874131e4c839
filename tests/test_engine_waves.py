"""The fleet's stopped models checked first and resumed together (engine/waves.py) give the
engine of a model-by-model pass: the same alerts in the same order, the same checks and
counts, windows equal array for array."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from stream_monitor.alerts.outcome import BatchOutcome
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.engine import waves
from stream_monitor.engine.core import Engine
from stream_monitor.engine.observers import EngineObserver
from stream_monitor.tools.synthetic import SyntheticModel, interleave
from tests.engine_sameness import assert_same_models, run_batches
from tests.helpers import batch_of, references


def test_waves_give_the_engine_of_a_model_by_model_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """40 drifting models, a check every 15 events and batches of up to 1 200 events: most
    models stop two or three times a batch, at due checks and at chart transitions. An
    engine with an observer takes each model to its end before the next (the pass before
    waves); the one without goes in waves and must return the same batches."""
    models = [
        SyntheticModel(f"m{i:02d}", n_features=3 + i % 4, drift_start=400, drift_shift=1.5)
        for i in range(40)
    ]
    rng = random.Random(11)
    merged = interleave([m.events(0, 90 + 20 * (i % 4), seed=i) for i, m in enumerate(models)])
    rng.shuffle(merged)
    values = [orjson.dumps(e) for e in merged]
    settings = DetectorSettings(check_every=15, window_size=45, input_drift_rule="both")
    refs = references(models, n=300)
    waved, one_by_one = Engine(settings, refs), Engine(settings, refs)
    one_by_one.observe(EngineObserver())  # hears nothing, but the checks as they run
    reordered: list[bool] = []
    restore = waves.AlertOrder.restore

    def watched(order: waves.AlertOrder) -> None:
        reordered.append(order.tags != sorted(order.tags))
        restore(order)

    monkeypatch.setattr(waves.AlertOrder, "restore", watched)
    resumed: list[int] = []
    resume_many = waved._native.resume_many

    def counted(names: list[str], outcome: BatchOutcome) -> list[tuple[int, bool] | None]:
        resumed.append(len(names))
        return resume_many(names, outcome)

    monkeypatch.setattr(waved._native, "resume_many", counted)
    sizes = [1200, 40, 700]
    want = run_batches(one_by_one, values, sizes)
    reordered.clear()  # the pass one by one restores nothing
    got = run_batches(waved, values, sizes)

    assert any(reordered), "no batch had a model stop again after another model's stop"
    assert len(resumed) > len(got) and max(resumed) > 10  # waves, many models in each
    assert sum(len(o.alerts) for o in got) > 20
    for g, w in zip(got, want, strict=True):
        assert [a.model_dump() for a in g.alerts] == [a.model_dump() for a in w.alerts]
        assert g.ok_counts == w.ok_counts and g.windows == w.windows
        assert g.check_counts == w.check_counts and g.sequential == w.sequential
        assert {k: [r.score for r in v] for k, v in g.checks.items()} == {
            k: [r.score for r in v] for k, v in w.checks.items()
        }
    assert_same_models(waved, one_by_one)


def test_alert_order_puts_each_models_alerts_back_in_model_order() -> None:
    alerts: list[Any] = []
    order = waves.AlertOrder(alerts)
    for first, appended in ((5, ["a1"]), (9, ["b1", "b2"]), (2, []), (5, ["a2"]), (9, ["b3"])):
        alerts.extend(appended)
        order.mark(first)
    order.restore()
    assert alerts == ["a1", "a2", "b1", "b2", "b3"]
    assert order.tags == [5, 5, 9, 9, 9]


def test_a_model_forgotten_while_it_waits_is_not_resumed() -> None:
    stops: list[tuple[str, tuple[int, bool]]] = []
    resumed: list[list[str]] = []

    def resume_many(names: list[str]) -> list[tuple[int, bool] | None]:
        resumed.append(names)
        return [(9, True) if n == "a" and len(resumed) == 1 else None for n in names]

    waiting = waves.StoppedModels(
        [], False, lambda n, s: stops.append((n, s)), resume_many, lambda n: n != "b"
    )
    for due in ((0, "a", 3, True), (1, "b", 4, False), (2, "c", 5, True)):
        waiting.take(due)
    waiting.finish()
    assert resumed == [["a", "c"], ["a"]]
    assert stops == [("a", (3, True)), ("b", (4, False)), ("c", (5, True)), ("a", (9, True))]


def test_resume_many_refuses_models_not_stopped_or_out_of_order() -> None:
    model = SyntheticModel("solo", n_features=2)
    engine = Engine(DetectorSettings(check_every=10, window_size=20), references([model], n=200))
    engine.process(batch_of([orjson.dumps(e) for e in model.events(0, 30)]))
    fleet = engine._native.fleet
    with pytest.raises(KeyError, match="has no events waiting"):
        fleet.resume_many(["solo@v1"], {})
    with pytest.raises(KeyError, match="has no events waiting"):
        fleet.resume_many(["nobody"], {})
