"""Per-model settings in the YAML `models:` section: window size, cadence, minimum window,
data-quality thresholds, the ADWIN delta, the false-alarm budget (issue: models change)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stream_monitor import Monitor
from stream_monitor.config.loading import ConfigError, load_settings

NAMES = ["a", "b", "c"]


def _monitor(models: dict[str, dict[str, object]], **options: object) -> Monitor:
    rng = np.random.default_rng(5)
    reference = rng.normal(size=(4000, 3))
    monitor = Monitor(input_drift_rule="window", models=models, **options)
    for name in ("small", "large"):
        ref = Monitor.from_arrays(name, reference, NAMES, reference.sum(axis=1))
        monitor.engine.references.update(ref.engine.references)
    return monitor


def _feed(monitor: Monitor, model: str, rows: np.ndarray) -> list[object]:
    return list(monitor.log_arrays(model, rows, NAMES, np.nansum(rows, axis=1)))


def test_window_size_and_cadence_are_each_models_own() -> None:
    monitor = _monitor({"small": {"window_size": 200, "check_every": 50}})
    rng = np.random.default_rng(6)
    for name in ("small", "large"):
        _feed(monitor, name, rng.normal(size=(600, 3)))
    status = monitor.status()["models"]
    assert isinstance(status, dict)
    small, large = status["small"], status["large"]
    assert small["window"]["size"] == 200 and small["window"]["filled"] == 200
    assert large["window"]["size"] == 1000 and large["window"]["filled"] == 600
    assert small["checks"] == 600 // 50
    assert large["checks"] == 600 // 100


def test_models_of_equal_settings_share_one_plan_and_others_keep_their_own() -> None:
    monitor = _monitor({"small": {"window_size": 200}})
    rng = np.random.default_rng(7)
    for name in ("small", "large", "other"):
        if name == "other":  # a third model judged against the same kind of reference
            ref = Monitor.from_arrays(name, rng.normal(size=(4000, 3)), NAMES)
            monitor.engine.references.update(ref.engine.references)
        _feed(monitor, name, rng.normal(size=(60, 3)))
    plans = {name: model.plan for name, model in monitor.engine.models.items()}
    assert plans["large"] is plans["other"]  # interned: equal plans are one object
    assert plans["small"] is not plans["large"]
    assert (plans["small"].window_size, plans["large"].window_size) == (200, 1000)


def test_the_minimum_window_is_each_models_own() -> None:
    """Drift is judged once the model's own minimum window is filled, not the global one."""
    monitor = _monitor({"small": {"min_window": 200}})
    rng = np.random.default_rng(7)
    for name in ("small", "large"):
        _feed(monitor, name, rng.normal(size=(300, 3)))
    results = {n: s["results"] for n, s in monitor.status()["models"].items()}  # type: ignore[union-attr]
    assert results["small"]["input_drift"]["score"] is not None
    assert "window" in str(results["large"]["input_drift"]["reason"])


def test_data_quality_thresholds_are_each_models_own() -> None:
    monitor = _monitor({"small": {"dq_missing_share": 0.5}})
    rng = np.random.default_rng(8)
    fired: dict[str, list[str]] = {}
    for name in ("small", "large"):
        rows = rng.normal(size=(1000, 3))
        rows[rng.random(1000) < 0.3, 1] = np.nan  # 30 % missing in one feature
        fired[name] = [a.kind for a in _feed(monitor, name, rows)]  # type: ignore[attr-defined]
    assert "data_quality" in fired["large"]
    assert "data_quality" not in fired["small"]


def test_the_adwin_delta_is_each_models_own() -> None:
    monitor = _monitor({"small": {"concept_delta": 0.3}})
    rng = np.random.default_rng(9)
    for name in ("small", "large"):
        rows = rng.normal(size=(200, 3))
        events = [
            {
                "model": name,
                "features": dict(zip(NAMES, r.tolist(), strict=True)),
                "prediction": float(r.sum()),
                "actual": float(r.sum()) + 0.1,
            }
            for r in rows
        ]
        monitor.log_many(events)
    status = monitor.status()["models"]
    assert isinstance(status, dict)
    assert status["small"]["results"]["concept_drift"]["adwin_delta"] == 0.3
    assert status["large"]["results"]["concept_drift"]["adwin_delta"] == 0.002


def test_the_false_alarm_budget_is_each_models_own() -> None:
    settings = load_settings({"models": {"m": {"false_alarm_events": 1e5}}})
    assert settings.for_model("m").false_alarm_events == 1e5
    assert settings.for_model("other").false_alarm_events == 1e7


@pytest.mark.parametrize(
    ("entry", "field", "reason"),
    [
        ("window_size: 0", "models.m-a.window_size", "greater than 0"),
        ("check_every: -5", "models.m-a.check_every", "greater than 0"),
        ("min_window: ten", "models.m-a.min_window", "valid integer"),
        ("dq_missing_share: 1.5", "models.m-a.dq_missing_share", "less than or equal to 1"),
        ("concept_delta: 1", "models.m-a.concept_delta", "less than 1"),
        ("false_alarm_events: 1", "models.m-a.false_alarm_events", "greater than 1"),
        ("window_sise: 10", "models.m-a.window_sise", "unknown option"),
    ],
)
def test_a_wrong_per_model_value_names_the_model_the_field_and_the_reason(
    tmp_path: Path, entry: str, field: str, reason: str
) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(f"models:\n  m-a:\n    {entry}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings({}, config)
    line = next(x for x in str(err.value).splitlines() if field in x)
    assert reason in line
