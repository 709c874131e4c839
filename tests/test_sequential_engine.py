"""Sequential input drift in the engine: the alert at the crossing event, what it says, the
rules, categorical features, and a wrong setting refused at start-up."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from pydantic import ValidationError
from scipy.stats import chisquare

from stream_monitor.checks.sequential import CategoryRanks
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.detectors.categorical import CategoricalReference
from stream_monitor.detectors.sequential_design import mean_threshold, scale_threshold
from stream_monitor.engine.core import Engine
from stream_monitor.reference.loading import prepare_from_events
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.tools.drift_streams import correlated
from stream_monitor.tools.synthetic import SyntheticModel
from tests.helpers import batches_of_events, references
from tests.test_engine_detectors import BASE, COUNTRIES, with_country

DRIFT = SyntheticModel("fraud", n_features=8, drift_start=1500, drift_shift=1.0, drift_features=1)


def _alerts(settings: DetectorSettings, events: list[dict[str, object]], refs, size: int = 250):  # type: ignore[no-untyped-def]
    engine = Engine(settings, refs)
    return engine, [a for b in batches_of_events(events, size) for a in engine.process(b).alerts]


def test_the_alert_fires_at_the_crossing_event_and_says_where_the_change_began() -> None:
    events = DRIFT.events(0, 3000)
    engine, alerts = _alerts(
        DetectorSettings(input_drift_rule="sequential"), events, references([DRIFT])
    )
    fired = [a for a in alerts if a.kind == "input_drift"]
    assert [(a.test, a.status) for a in fired] == [("cusum", "firing")]
    alert = fired[0]
    assert 1500 < alert.events_seen < 1700  # a 1 sd shift: about h / (1 - k) = 56 events
    assert alert.direction == "up" and alert.score_kind == "chart"
    assert alert.change_start_event is not None
    assert 1400 <= alert.change_start_event <= 1510
    assert alert.score > alert.threshold
    assert [f.name for f in alert.features] == ["f00"] and alert.features[0].drifted
    assert alert.window.size == alert.events_seen - alert.change_start_event
    # the record that crossed: its offset (events of one model, one partition)
    assert alert.source.offset == alert.events_seen - 1
    published = orjson.loads(alert.to_json())
    assert published["direction"] == "up" and published["score_kind"] == "chart"
    # the window test ran all along, but under the sequential rule it does not alert
    model = engine.models["fraud@v1"]
    assert any(r.kind == "input_drift" and r.test == "ks" for r in model.last_results)


def test_window_alerts_carry_none_of_the_sequential_fields() -> None:
    events = DRIFT.events(0, 3000)
    _, alerts = _alerts(DetectorSettings(input_drift_rule="both"), events, references([DRIFT]))
    tests = {a.test for a in alerts if a.kind == "input_drift"}
    assert tests == {"cusum", "ks"}
    for a in alerts:
        data = orjson.loads(a.to_json())
        assert ("direction" in data) == (a.test == "cusum")
    ks, cusum = (min(a.events_seen for a in alerts if a.test == t) for t in ("ks", "cusum"))
    assert cusum < ks


def test_category_ranks_are_uniform_under_no_drift() -> None:
    # the rank R = left + floor(V (right - left + 1)) is uniform on 0..m for a category
    # drawn from the reference's own frequencies (ordered most frequent first)
    rng = np.random.default_rng(4)
    ref = CategoricalReference.prepare(["c"], [list(rng.choice(COUNTRIES, 1000, p=BASE))])
    ranks = CategoryRanks.of(ref)
    m = int(ref.sizes[0])
    codes = rng.choice(4, size=(200_000, 1), p=ref.tables[0].counts / m)
    left, right, missing = ranks.counts(codes)
    assert not missing.any()
    r = left[:, 0] + np.floor(rng.random(len(codes)) * (right[:, 0] - left[:, 0] + 1)).astype(int)
    observed = np.bincount(r * 10 // (m + 1), minlength=10)
    assert chisquare(observed).pvalue > 1e-4
    # the most frequent category takes the lowest ranks; unseen values sit above all
    top = int(np.argmax(ref.tables[0].counts))
    assert ranks.left[top + 2, 0] == 0
    assert ranks.left[1, 0] == ranks.right[1, 0] == m


def _shop() -> tuple[SyntheticModel, dict[str, PreparedReference]]:
    """A model with a categorical `country` feature, and its reference."""
    model = SyntheticModel("shop", n_features=4)
    reference = with_country(model.reference(4000), 1, BASE)
    return model, {"shop": prepare_from_events("shop", reference, 20, "test")}


def test_a_categorical_shift_is_seen_by_the_charts() -> None:
    model, refs = _shop()
    events = with_country(model.events(0, 2000), 2, BASE)
    events += with_country(model.events(2000, 2000), 3, [0.1, 0.2, 0.3, 0.4])
    _, alerts = _alerts(DetectorSettings(input_drift_rule="sequential"), events, refs)
    fired = [a for a in alerts if a.kind == "input_drift" and a.status == "firing"]
    assert fired and fired[0].test == "cusum"
    assert 2000 < fired[0].events_seen < 2300
    assert "country" in {f.name for f in fired[0].features}


def test_categorical_charts_do_not_depend_on_batch_sizes() -> None:
    model, refs = _shop()
    events = with_country(model.events(0, 1500), 2, BASE)
    events += with_country(model.events(1500, 1500), 3, [0.1, 0.2, 0.3, 0.4])
    settings = DetectorSettings(input_drift_rule="both")
    one = _alerts(settings, events, refs, size=1)[1]
    many = _alerts(settings, events, refs, size=700)[1]
    assert [a.model_dump() for a in one] == [a.model_dump() for a in many]
    assert any(a.test == "cusum" for a in one)


@pytest.mark.parametrize("value", [1, 0.5, -3])
def test_a_budget_of_one_event_or_less_fails_at_start_up(value: float) -> None:
    with pytest.raises(ValidationError, match="false_alarm_events"):
        DetectorSettings(false_alarm_events=value)
    with pytest.raises(ValidationError, match="input_drift_rule"):
        DetectorSettings(input_drift_rule="sometimes")  # type: ignore[arg-type]


def test_window_options_under_the_sequential_rule_are_named_at_start_up() -> None:
    settings = DetectorSettings(
        drift_rule="bh",
        models={
            "a": {"numeric_test": "psi"},
            "b": {"input_drift_rule": "both", "drift_rule": "bh"},
        },
    )
    notes = settings.silent_window_options()
    assert len(notes) == 2
    assert notes[0].startswith("drift_rule judge the window test")
    assert notes[1].startswith("models.a.numeric_test") and "models.a.input_drift_rule" in notes[1]
    assert (
        DetectorSettings(drift_rule="bh", input_drift_rule="window").silent_window_options() == []
    )
    assert DetectorSettings().silent_window_options() == []


def test_a_correlation_flip_is_seen_by_the_multivariate_chart_alone() -> None:
    # two features correlated at 0.8 turn to -0.8: each keeps its N(0, 1) distribution, so
    # no per-feature chart and no window test sees it; the residual of the PCA does
    names = tuple(f"f{j}" for j in range(5))
    flip = correlated(-0.8)
    same = correlated(0.8)
    for seed in range(4):
        rng = np.random.default_rng(seed)
        reference = same(rng, 5000, 5)
        ref = PreparedReference.from_arrays("m", names, reference, reference.sum(axis=1), 20)
        values = np.vstack([same(rng, 1500, 5), flip(rng, 2000, 5)])
        events = [
            {
                "model": "m",
                "features": dict(zip(names, row.tolist(), strict=True)),
                "prediction": float(row.sum()),
            }
            for row in values
        ]
        _, alerts = _alerts(DetectorSettings(input_drift_rule="both"), events, {"m": ref}, 500)
        drift = [a for a in alerts if a.kind == "input_drift" and a.status == "firing"]
        assert [a.test for a in drift] == ["cusum"], drift
        assert [f.name for f in drift[0].features] == ["(multivariate)"]
        assert 1500 < drift[0].events_seen <= 1500 + 1000
    off = DetectorSettings(input_drift_rule="sequential", multivariate_drift=False)
    _, alerts = _alerts(off, events, {"m": ref}, 500)
    assert not [a for a in alerts if a.kind == "input_drift"]


def test_a_large_shift_of_the_mean_is_called_up_even_when_the_scale_chart_crosses_first() -> None:
    # +2 sd: z^2 - c gains about 3.5 a step against z - k's 1.8, so the scale chart crosses
    # first; the feature's up chart stands past half its threshold: the change is "up"
    big = SyntheticModel("big", n_features=5, drift_start=1000, drift_shift=2.0, drift_features=1)
    _, alerts = _alerts(DetectorSettings(), big.events(0, 1500), references([big]))
    (fired,) = [a for a in alerts if a.kind == "input_drift" and a.status == "firing"]
    assert "f00:scale=" in str(fired.details["charts"])
    assert fired.direction == "up"
    sd = SyntheticModel("sd", n_features=5)
    events = sd.events(0, 1500)
    means = {f: float(np.mean([e["features"][f] for e in events[:1000]])) for f in ["f00"]}  # type: ignore[index]
    for e in events[1000:]:
        feats = dict(e["features"])  # type: ignore[call-overload]
        feats["f00"] = means["f00"] + 2.5 * (feats["f00"] - means["f00"])
        e["features"] = feats
    _, alerts = _alerts(DetectorSettings(), events, references([sd]))
    (fired,) = [a for a in alerts if a.kind == "input_drift" and a.status == "firing"]
    assert fired.direction == "scale"


def test_a_models_notes_are_logged_once_per_process(caplog: pytest.LogCaptureFixture) -> None:
    # a backtest sweep builds the same model once per value: its notes are said once
    import logging

    small = SyntheticModel("tiny-ref", n_features=3)
    refs = references([small], n=150)  # too small for the sequential budget: a note
    caplog.set_level(logging.WARNING, logger="stream_monitor.engine.admission")
    for _ in range(3):
        _alerts(DetectorSettings(), small.events(0, 10), refs)
    notes = [r.getMessage() for r in caplog.records if "too small for sequential" in r.getMessage()]
    assert len(notes) == 1 and "'tiny-ref@v1'" in notes[0]


def test_configuration_errors_carry_no_pydantic_prefix(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from stream_monitor.config.loading import ConfigError, load_settings

    cfg = tmp_path / "monitor.yaml"
    cfg.write_text("window_size: 50\ndrift_rule: gate\ngate_min_samples: 100\n")
    with pytest.raises(ConfigError) as err:
        load_settings({}, cfg)
    message = str(err.value)
    assert "gate_min_samples 100 exceeds window_size 50" in message
    assert "Value error" not in message


def test_chart_designs_are_solved_with_the_references_not_in_the_first_batch() -> None:
    """A design new to the process costs a fraction of a second: the engine solves it when
    it is given the references, so the batch that first sees a model waits for none."""
    mean_threshold.cache_clear()
    scale_threshold.cache_clear()
    budget = 12_345.0  # a budget no other test uses: these thresholds are new
    settings = DetectorSettings(input_drift_rule="sequential", false_alarm_events=budget)
    engine = Engine(settings, references([DRIFT]))
    solved = scale_threshold.cache_info().misses
    assert solved > 0 and mean_threshold.cache_info().misses > 0
    for batch in batches_of_events(DRIFT.events(0, 300), 100):
        engine.process(batch)
    assert engine.models["fraud@v1"].charts is not None
    assert scale_threshold.cache_info().misses == solved  # nothing left to solve
    other = SyntheticModel("other", n_features=3)
    engine.replace_references({**engine.references, **references([other])})
    assert scale_threshold.cache_info().misses > solved  # the new reference's, at once
