"""The engine alone (no broker): windows, check cadence, alert transitions, determinism."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from stream_monitor.config.detector import DetectorSettings
from stream_monitor.engine.core import Engine
from stream_monitor.tools.synthetic import SyntheticModel, interleave
from tests.helpers import batch_of, batches_of_events, references

DRIFTING = SyntheticModel("fraud", drift_start=6000, drift_end=12000, drift_shift=2.0)
STEADY = [SyntheticModel("churn"), SyntheticModel("eta")]
ALL = [DRIFTING, *STEADY]


def _run(engine: Engine, events: list[dict[str, object]], size: int = 1000) -> list:
    alerts = []
    for batch in batches_of_events(events, size):
        alerts.extend(engine.process(batch).alerts)
    return alerts


@pytest.fixture(scope="module")
def stream() -> list[dict[str, object]]:
    return interleave([m.events(0, 18000) for m in ALL])


def test_drift_fires_once_then_resolves_once(stream: list[dict[str, object]]) -> None:
    engine = Engine(DetectorSettings(input_drift_rule="window"), references(ALL))
    alerts = _run(engine, stream)
    input_alerts = [a for a in alerts if a.kind == "input_drift"]
    assert [(a.model, a.status) for a in input_alerts] == [
        ("fraud", "firing"),
        ("fraud", "resolved"),
    ]
    firing, resolved = input_alerts
    assert DRIFTING.drift_start < firing.events_seen <= DRIFTING.drift_start + 1000
    # hysteresis: resolved at the third healthy check in a row
    assert DRIFTING.drift_end < resolved.events_seen <= DRIFTING.drift_end + 1300
    assert firing.score > 0.1 and firing.recommendation == "retrain"
    assert resolved.score <= 0.1 and resolved.recommendation is None
    drifted = {f.name for f in firing.features if f.drifted}
    assert drifted and drifted <= {f"f{j:02d}" for j in range(DRIFTING.drift_features)}
    assert all(f.p_value is not None and 0 <= f.p_value <= 1 for f in firing.features)
    assert firing.window.size == 1000 and firing.window.start < firing.window.end
    assert not [a for a in alerts if a.model != "fraud"]


def test_same_sequence_gives_same_alerts_whatever_the_batching(
    stream: list[dict[str, object]],
) -> None:
    first = _run(Engine(DetectorSettings(), references(ALL)), stream, 1000)
    second = _run(Engine(DetectorSettings(), references(ALL)), stream, 137)
    assert [a.model_dump() for a in first] == [a.model_dump() for a in second]
    assert len({a.alert_id for a in first}) == len(first)


def test_checks_every_n_events_of_a_model() -> None:
    model = SyntheticModel("m")
    engine = Engine(DetectorSettings(check_every=50, window_size=200), references([model]))
    total_checks = 0
    for batch in batches_of_events(model.events(0, 1030), 333):
        total_checks += engine.process(batch).check_counts.get("m@v1", 0)
    assert total_checks == 1030 // 50
    assert engine.models["m@v1"].events_seen == 1030


def test_window_holds_exactly_the_last_events() -> None:
    model = SyntheticModel("m", n_features=3)
    engine = Engine(DetectorSettings(window_size=250, check_every=40), references([model], 500))
    events = model.events(0, 1111)
    for batch in batches_of_events(events, 97):
        engine.process(batch)
    window = engine.models["m@v1"].window
    assert window is not None and window.count == 250
    expected = sorted(tuple(e["features"].values()) for e in events[-250:])  # type: ignore[union-attr]
    got = sorted(tuple(row) for row in window.features.tolist())
    assert got == expected
    assert window.newest_timestamp() == events[-1]["timestamp"]
    assert window.oldest_timestamp() == events[-250]["timestamp"]


def test_unreadable_feature_value_is_a_dead_letter_and_nothing_else_is_lost() -> None:
    model = SyntheticModel("m", n_features=2)
    engine = Engine(DetectorSettings(), references([model], 500))
    events = model.events(0, 10)
    values = [orjson.dumps(e) for e in events]
    values[3] = orjson.dumps({**events[3], "features": {"f00": "abc", "f01": 1.0}})
    values[6] = orjson.dumps({**events[6], "features": {"f00": [1, 2], "f01": 1.0}})
    outcome = engine.process(batch_of(values))
    assert sorted(d.index for d in outcome.dead_letters) == [3, 6]
    assert all(d.reason == "bad_type" and "f00" in d.detail for d in outcome.dead_letters)
    assert outcome.ok_counts == {"m@v1": 8}
    assert engine.models["m@v1"].events_seen == 8


def test_model_without_reference_is_counted_and_says_why() -> None:
    model = SyntheticModel("unknown")
    engine = Engine(DetectorSettings(), {})
    outcome = None
    for batch in batches_of_events(model.events(0, 1000)):
        outcome = engine.process(batch)
    assert outcome is not None and outcome.ok_counts == {"unknown@v1": 1000}
    status = engine.status()["models"]["unknown@v1"]  # type: ignore[index]
    assert status["drift_checked"] is False
    assert "no reference" in " ".join(status["notes"])
    assert status["results"]["input_drift"]["healthy"] is None
    assert status["results"]["performance"]["healthy"] is True  # errors still checked


def test_bootstrap_reference_from_first_events_then_detects_drift() -> None:
    model = SyntheticModel("boot", drift_start=5000, drift_shift=2.0)
    engine = Engine(DetectorSettings(bootstrap_reference=3000), {})
    alerts = _run(engine, model.events(0, 8000))
    state = engine.models["boot@v1"]
    assert state.reference is not None and state.reference.events == 3000
    fired = [a for a in alerts if a.kind == "input_drift"]
    assert len(fired) == 1 and fired[0].status == "firing"
    assert 5000 < fired[0].events_seen <= 6000


def test_performance_alert_when_errors_grow() -> None:
    model = SyntheticModel("perf", n_features=3)
    events = model.events(0, 3000)
    for e in events[1500:]:
        e["actual"] = float(e["prediction"]) + 2.0  # type: ignore[arg-type]
    engine = Engine(DetectorSettings(), references([model], 1000))
    alerts = [a for a in _run(engine, events) if a.kind == "performance"]
    assert len(alerts) == 1 and alerts[0].status == "firing"
    assert alerts[0].details["mae"] == pytest.approx(alerts[0].score)
    assert alerts[0].score > 0.5
    assert 1500 < alerts[0].events_seen <= 2100
    assert engine.status()["models"]["perf@v1"]["should_retrain"] is True  # type: ignore[index]


def test_latency_alert_only_when_configured() -> None:
    model = SyntheticModel("lat", n_features=2)
    events = model.events(0, 2000)
    for e in events[1000:]:
        e["latency_ms"] = 900.0
    quiet = _run(Engine(DetectorSettings(), references([model], 500)), events)
    assert not [a for a in quiet if a.kind == "latency"]
    loud = _run(
        Engine(DetectorSettings(latency_p99_threshold_ms=250), references([model], 500)), events
    )
    latency = [a for a in loud if a.kind == "latency"]
    assert [a.status for a in latency] == ["firing"]
    assert latency[0].recommendation is None
    assert np.isclose(latency[0].score, 900.0)
