"""Prediction drift of numeric predictions: the KS statistic beside Jensen-Shannon, and
`prediction_test` choosing which one is judged. Expected values come from scipy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from stream_monitor.alerts.contract import Alert
from stream_monitor.alerts.results import CheckResult
from stream_monitor.checks.prediction import prediction_ks
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.config.loading import load_settings
from stream_monitor.engine.core import Engine
from stream_monitor.reference.loading import prepare_from_events
from tests.helpers import batches_of_events


@pytest.mark.parametrize(
    ("m", "n", "seed"),
    [
        (3000, 1000, 1),  # scipy's default is its exact method here: statistic snapped
        (12_000, 900, 2),  # above 10 000 values the default is asymptotic
        (50, 40, 3),
    ],
)
def test_prediction_ks_equals_scipy_with_ties(m: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 25, m).astype(np.float64)  # integers: ties within and across
    win = rng.integers(3, 28, n).astype(np.float64)
    stat, p = prediction_ks(np.sort(ref), win)
    expected = ks_2samp(ref, win)
    assert stat == expected.statistic  # to the last bit
    assert p == pytest.approx(ks_2samp(ref, win, method="asymp").pvalue, rel=1e-12)


def test_prediction_ks_leaves_out_missing_predictions() -> None:
    rng = np.random.default_rng(4)
    ref = np.round(rng.normal(0, 1, 2000), 1)
    win = np.round(rng.normal(0.2, 1, 500), 1)
    with_nan = np.concatenate([win[:100], [np.nan, np.inf], win[100:]])
    stat, _ = prediction_ks(np.sort(ref), with_nan)
    assert stat == ks_2samp(ref, win).statistic
    assert prediction_ks(np.sort(ref), np.array([np.nan]))[0] == 0.0


def events_of(predictions: np.ndarray) -> list[dict[str, object]]:
    return [{"model": "shop", "features": {"x": p}, "prediction": p} for p in predictions.tolist()]


REF = np.round(np.random.default_rng(10).normal(0, 1, 5000), 1)  # rounded: ties
WIN = np.round(np.random.default_rng(11).normal(0.15, 1, 1000), 1)


def run(settings: DetectorSettings) -> tuple[CheckResult, list[Alert]]:
    refs = {"shop": prepare_from_events("shop", events_of(REF), 20, "test")}
    engine = Engine(settings, refs)
    alerts = [a for b in batches_of_events(events_of(WIN), 250) for a in engine.process(b).alerts]
    result = engine.models["shop"].last_results[1]
    assert result.kind == "prediction_drift"
    return result, [a for a in alerts if a.kind == "prediction_drift"]


def histogram_js() -> float:
    """The seed design's score: JS distance of 20 equal-width bins over the reference range."""
    edges = np.histogram_bin_edges(REF, bins=20)
    r = np.histogram(REF, edges)[0]
    w = np.histogram(np.clip(WIN, edges[0], edges[-1]), edges)[0]
    return float(jensenshannon(r / r.sum() + 1e-10, w / w.sum() + 1e-10))


def test_both_scores_in_details_and_the_setting_chooses_the_judged_one() -> None:
    ks = ks_2samp(REF, WIN).statistic
    js = histogram_js()
    assert js < 0.1 < ks  # the shift is visible to KS, not to the 20-bin histograms

    default, quiet = run(DetectorSettings())
    assert default.test == "jensenshannon" and quiet == []
    assert default.score == pytest.approx(js, rel=1e-9) and default.threshold == 0.1
    assert default.details["ks"] == ks
    assert "ks_p_value" not in default.details  # computed only when KS is judged
    assert default.details["jensenshannon"] == default.score

    by_ks, alerts = run(DetectorSettings(prediction_test="ks"))
    assert by_ks.test == "ks" and by_ks.score == ks and by_ks.threshold == 0.1
    assert by_ks.details["ks_p_value"] == pytest.approx(
        ks_2samp(REF, WIN, method="asymp").pvalue, rel=1e-12
    )
    assert by_ks.healthy is False
    assert [a.status for a in alerts] == ["firing"] and alerts[0].test == "ks"
    assert alerts[0].score == ks
    assert alerts[0].details["jensenshannon"] == pytest.approx(js, rel=1e-9)
    # the KS threshold of the features: test_thresholds.ks, else --drift-threshold
    calm = DetectorSettings(prediction_test="ks", test_thresholds={"ks": 0.11})
    assert run(calm)[0].threshold == 0.11 and run(calm)[1] == []
    assert run(DetectorSettings(prediction_test="ks", drift_threshold=0.2))[0].threshold == 0.2


def test_prediction_test_per_model_from_yaml(tmp_path: Path) -> None:
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text("models:\n  shop:\n    prediction_test: ks\n    drift_threshold: 0.08\n")
    settings = load_settings({}, cfg).detector_settings()
    assert settings.prediction_test == "jensenshannon"
    result, alerts = run(settings)
    assert result.test == "ks" and result.threshold == 0.08
    assert alerts and alerts[0].score == ks_2samp(REF, WIN).statistic
    cfg.write_text("prediction_test: kolmogorov\n")
    expected = "prediction_test: Input should be 'jensenshannon', 'ks' or 'psi'"
    with pytest.raises(Exception, match=expected):
        load_settings({}, cfg)
