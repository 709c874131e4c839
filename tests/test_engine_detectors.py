"""The engine with the detector library: per-model tests and rules from the configuration,
categorical features, data quality; alerts carry per-feature test, score, p-value, drifted."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chisquare

from stream_monitor.alerts.contract import Alert
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.config.loading import load_settings
from stream_monitor.engine.core import Engine
from stream_monitor.reference.loading import prepare_from_events
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.tools.synthetic import SyntheticModel
from tests.helpers import batches_of_events

COUNTRIES = ["DE", "FR", "IT", "ES"]


def with_country(
    events: list[dict[str, object]],
    seed: int,
    probs: list[float],
    extra: str | None = None,
    from_index: int = 0,
) -> list[dict[str, object]]:
    """Adds a categorical `country` feature (and a bool `is_new`) to synthetic events."""
    rng = np.random.default_rng(seed)
    choices = rng.choice(len(COUNTRIES), size=len(events), p=probs)
    for i, (e, c) in enumerate(zip(events, choices, strict=True)):
        feats = dict(e["features"])  # type: ignore[call-overload]
        feats["country"] = extra if extra is not None and i >= from_index else COUNTRIES[c]
        feats["is_new"] = bool(c % 2)
        e["features"] = feats
    return events


MODEL = SyntheticModel("shop", n_features=4)
BASE = [0.4, 0.3, 0.2, 0.1]


def reference() -> dict[str, PreparedReference]:
    events = with_country(MODEL.reference(4000), 1, BASE)
    return {"shop": prepare_from_events("shop", events, 20, "test")}


def run(settings: DetectorSettings, events: list[dict[str, object]]) -> tuple[Engine, list[Alert]]:
    """The engine over `events`; these tests judge input drift by the window test (the
    rule's default is the sequential charts: tests/test_sequential_engine.py)."""
    if "input_drift_rule" not in settings.model_fields_set:
        settings = settings.model_copy(update={"input_drift_rule": "window"})
    engine = Engine(settings, reference())
    alerts = [a for b in batches_of_events(events, 500) for a in engine.process(b).alerts]
    return engine, alerts


def test_categorical_shift_fires_with_chi_squared_matching_scipy() -> None:
    events = with_country(MODEL.events(0, 2000), 2, BASE)
    events += with_country(MODEL.events(2000, 2000), 3, [0.1, 0.2, 0.3, 0.4])
    engine, alerts = run(DetectorSettings(), events)
    fired = [a for a in alerts if a.kind == "input_drift"]
    assert [a.status for a in fired] == ["firing"]
    alert = fired[0]
    by_name = {f.name: f for f in alert.features}
    country = by_name["country"]
    assert country.test == "chi2" and country.drifted
    assert by_name["f00"].test == "ks" and by_name["f00"].p_value is not None
    assert 2000 < alert.events_seen <= 3100
    # the window's chi-squared equals scipy's on the same counts
    window = engine.models["shop@v1"].window
    assert window is not None
    ref = engine.models["shop@v1"].reference
    assert ref is not None and ref.categorical is not None
    j = ref.categorical.feature_names.index("country")
    codes = window.categorical[:, j]
    observed = np.bincount(codes[codes >= 0], minlength=4)
    ref_counts = ref.categorical.counts[:4, j]
    expected = observed.sum() * ref_counts / ref_counts.sum()
    result = [a for a in alerts][-1]
    assert result is alert
    last = engine.models["shop@v1"].last_results[0]
    feats = {f.name: f for f in last.features()}
    assert feats["country"].score == pytest.approx(
        chisquare(observed, expected).statistic, rel=1e-12
    )


@pytest.mark.parametrize(("window", "expected"), [(1000, "chi2"), (3000, "jensenshannon")])
def test_auto_default_chooses_the_categorical_test_by_window_size(
    window: int, expected: str
) -> None:
    """Up to 1000 events chi-squared; above, where its p-value flags any negligible shift,
    the Jensen-Shannon distance. Numeric features keep KS (judged by its statistic)."""
    settings = DetectorSettings(window_size=window)
    assert settings.categorical_test == "auto" and settings.numeric_test == "auto"
    assert settings.test_of("country", categorical=True) == expected
    assert settings.test_of("f00", categorical=False) == "ks"
    explicit = DetectorSettings(window_size=window, categorical_test="psi")
    assert explicit.test_of("country", categorical=True) == "psi"
    # a small shift (JS distance about 0.05) in a big window: chi-squared's p-value calls it
    # drift, the distance does not
    events = with_country(MODEL.events(0, 2 * window), 2, BASE)
    events += with_country(MODEL.events(2 * window, window), 3, [0.34, 0.32, 0.22, 0.12])

    def country(s: DetectorSettings) -> tuple[str, bool, float]:
        engine, _ = run(s, events)
        last = engine.models["shop@v1"].last_results[0]
        f = {f.name: f for f in last.features()}["country"]
        return f.test, f.drifted, f.score

    test, drifted, score = country(settings)
    assert test == expected
    if expected == "jensenshannon":
        assert not drifted and score < 0.1
        assert country(DetectorSettings(window_size=window, categorical_test="chi2"))[1]


def test_unseen_category_is_counted_and_fires_data_quality() -> None:
    events = with_country(MODEL.events(0, 3000), 4, BASE, extra="XX", from_index=2000)
    _, alerts = run(DetectorSettings(), events)
    quality = [a for a in alerts if a.kind == "data_quality"]
    assert quality and quality[0].status == "firing"
    assert quality[0].test == "unseen_share"
    assert any(f.name == "country" and f.test == "unseen_share" for f in quality[0].features)
    assert all(np.isfinite(a.score) for a in alerts)  # never NaN in an alert


def test_missing_values_fire_data_quality_with_their_own_threshold() -> None:
    events = with_country(MODEL.events(0, 2500), 5, BASE)
    for e in events[1500::2]:  # half the events lose f01
        feats = dict(e["features"])  # type: ignore[call-overload]
        feats.pop("f01")
        e["features"] = feats
    _, quiet = run(DetectorSettings(dq_missing_share=0.9), events)
    assert not [a for a in quiet if a.kind == "data_quality"]
    _, loud = run(DetectorSettings(dq_missing_share=0.2), events)
    quality = [a for a in loud if a.kind == "data_quality"]
    assert quality[0].test == "missing_share" and 0.2 < quality[0].score <= 0.5
    assert {f.name for f in quality[0].features} == {"f01"}


@pytest.mark.parametrize("test", ["psi", "jensenshannon", "wasserstein", "cvm"])
def test_each_numeric_test_detects_a_shift_and_stays_quiet_without_one(test: str) -> None:
    shifted = SyntheticModel("shop", n_features=4, drift_start=2000, drift_shift=1.5)
    events = with_country(shifted.events(0, 3500), 6, BASE)
    settings = DetectorSettings(numeric_test=test)
    _, alerts = run(settings, events)
    fired = [a for a in alerts if a.kind == "input_drift"]
    assert fired and fired[0].status == "firing"
    assert fired[0].events_seen > 2000
    assert {f.test for f in fired[0].features if f.name.startswith("f")} == {test}
    steady = with_country(MODEL.events(0, 3500), 7, BASE)
    _, calm = run(settings, steady)
    assert not [a for a in calm if a.kind == "input_drift"]


def test_rules_share_and_benjamini_hochberg() -> None:
    shifted = SyntheticModel(
        "shop", n_features=4, drift_start=2000, drift_shift=1.5, drift_features=1
    )
    events = with_country(shifted.events(0, 3500), 8, BASE)
    _, by_share = run(DetectorSettings(drift_rule="share", drift_share=0.5), events)
    assert not [a for a in by_share if a.kind == "input_drift"]  # 1 of 6 features
    _, by_bh = run(DetectorSettings(drift_rule="bh", drift_alpha=0.001), events)
    fired = [a for a in by_bh if a.kind == "input_drift"]
    # judged by a p-value: reported as -log10 p against -log10 of the level
    assert fired[0].test == "bh" and fired[0].score_kind == "neg_log10_p_value"
    p = fired[0].details["p_value"]
    assert isinstance(p, float) and p <= 0.001
    assert fired[0].score == pytest.approx(-math.log10(p)) and fired[0].threshold == 3.0
    assert fired[0].details["rule"] == "bh"


def test_per_model_configuration_from_yaml(tmp_path: Path) -> None:
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(
        "drift_threshold: 0.1\n"
        "input_drift_rule: window\n"
        "models:\n"
        "  shop:\n"
        "    drift_threshold: 0.9\n"
        "    features:\n"
        "      country: {test: psi, threshold: 0.05}\n"
        "  other:\n"
        "    numeric_test: wasserstein\n"
    )
    settings = load_settings({}, cfg)
    shop = settings.detector_settings().for_model("shop")
    assert shop.drift_threshold == 0.9
    assert shop.test_of("country", categorical=True) == "psi"
    assert shop.threshold_of("psi", "country") == 0.05
    assert settings.detector_settings().for_model("other").numeric_test == "wasserstein"
    assert settings.detector_settings().for_model("unknown").drift_threshold == 0.1
    events = with_country(MODEL.events(0, 2000), 9, BASE)
    events += with_country(MODEL.events(2000, 1500), 10, [0.1, 0.2, 0.3, 0.4])
    engine, alerts = run(settings.detector_settings(), events)
    fired = [a for a in alerts if a.kind == "input_drift"]
    tests = {f.name: f.test for f in fired[0].features}
    assert tests["country"] == "psi" and tests["is_new"] == "chi2" and tests["f00"] == "ks"
    # numeric features judged at 0.9 stay quiet; both categorical features moved
    last = {f.name: f for f in engine.models["shop@v1"].last_results[0].features()}
    assert sorted(n for n, f in last.items() if f.drifted) == ["country", "is_new"]
    assert last["country"].score > 0.05


def test_unknown_test_in_yaml_is_a_clear_error(tmp_path: Path) -> None:
    from stream_monitor.config.loading import ConfigError

    cfg = tmp_path / "monitor.yaml"
    cfg.write_text("models:\n  shop:\n    features:\n      country: {test: magic}\n")
    with pytest.raises(ConfigError, match="unknown test 'magic'"):
        load_settings({}, cfg)


def test_concept_drift_on_the_error_stream_fires_once_per_change() -> None:
    """Inputs unchanged, errors grow after a known point: ADWIN on the errors fires once."""
    model = SyntheticModel("shop", n_features=4)
    events = with_country(model.events(0, 6000), 11, BASE)
    for e in events[3000:]:
        e["actual"] = float(e["prediction"]) + 0.8  # type: ignore[arg-type]
    _, alerts = run(DetectorSettings(mae_threshold=5.0), events)
    concept = [a for a in alerts if a.kind == "concept_drift"]
    assert [a.status for a in concept] == ["firing", "resolved"]
    assert 3000 < concept[0].events_seen <= 3400
    assert concept[0].recommendation == "retrain" and concept[0].test == "adwin"
    assert not [a for a in alerts if a.kind == "input_drift"]


def test_class_labels_accuracy_and_misclassification_drift() -> None:
    model = SyntheticModel("shop", n_features=4)
    events = with_country(model.events(0, 5000), 12, BASE)
    rng = np.random.default_rng(13)
    for i, e in enumerate(events):
        label = "fraud" if float(e["prediction"]) > 0 else "ok"  # type: ignore[arg-type]
        e["prediction"] = label
        wrong = rng.random() < (0.05 if i < 3000 else 0.4)
        e["actual"] = ("ok" if label == "fraud" else "fraud") if wrong else label
    engine, alerts = run(DetectorSettings(min_accuracy=0.8), events)
    performance = [a for a in alerts if a.kind == "performance"]
    assert performance and performance[0].status == "firing"
    assert performance[0].test == "accuracy" and performance[0].score < 0.8
    assert 3000 < performance[0].events_seen <= 4000
    assert [a.status for a in alerts if a.kind == "concept_drift"][:1] == ["firing"]
    status = engine.status()["models"]["shop@v1"]  # type: ignore[index]
    assert status["results"]["performance"]["accuracy"] == pytest.approx(
        1 - np.mean([e["actual"] != e["prediction"] for e in events[-1000:]])
    )


def test_class_label_predictions_drift_by_chi_squared() -> None:
    def labelled(
        events: list[dict[str, object]], seed: int, p_fraud: float
    ) -> list[dict[str, object]]:
        rng = np.random.default_rng(seed)
        for e in events:
            e["prediction"] = "fraud" if rng.random() < p_fraud else "ok"
            e["actual"] = None
        return events

    ref_events = labelled(MODEL.reference(3000), 20, 0.1)
    refs = {"shop": prepare_from_events("shop", ref_events, 20, "test")}
    assert refs["shop"].classes is not None
    events = labelled(MODEL.events(0, 2000), 21, 0.1) + labelled(MODEL.events(2000, 1500), 22, 0.3)
    engine = Engine(DetectorSettings(), refs)
    alerts = [a for b in batches_of_events(events, 400) for a in engine.process(b).alerts]
    drift = [a for a in alerts if a.kind == "prediction_drift"]
    assert [a.status for a in drift] == ["firing"]
    assert drift[0].test == "chi2" and drift[0].score < 0.001
    assert 2000 < drift[0].events_seen <= 2600
    window = engine.models["shop@v1"].window
    assert window is not None
    observed = np.bincount(window.prediction_class, minlength=2)
    table = refs["shop"].classes.tables[0]  # type: ignore[union-attr]
    expected = observed.sum() * table.counts / table.counts.sum()
    last = engine.models["shop@v1"].last_results[1]
    assert last.details["statistic"] == pytest.approx(
        chisquare(observed, expected).statistic, rel=1e-12
    )
    # PSI (closed form) and Jensen-Shannon (scipy) on the class frequencies
    w, r = observed / observed.sum(), table.counts / table.counts.sum()
    assert last.details["psi"] == pytest.approx(float(np.sum((w - r) * np.log(w / r))), rel=1e-12)
    assert last.details["jensenshannon"] == pytest.approx(jensenshannon(r, w), rel=1e-12)
    # judged by PSI instead of chi-squared: the same shift, PSI against its threshold (0.2)
    by_psi = Engine(DetectorSettings(prediction_test="psi"), refs)
    alerts = [a for b in batches_of_events(events, 400) for a in by_psi.process(b).alerts]
    fired = [a for a in alerts if a.kind == "prediction_drift"]
    assert fired and fired[0].test == "psi" and fired[0].score > fired[0].threshold == 0.2
