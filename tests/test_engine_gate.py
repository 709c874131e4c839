"""The effect-size gate as the engine's input-drift rule (`drift_rule: gate`).

On a large window a tiny shift is significant by p-value but harmless; the gate (corrected
p-value AND effect size AND sample size) must tell it from a real shift. Expected values come
from scipy (`ks_2samp`, `false_discovery_control`, `wasserstein_distance`) and the closed
form of PSI, never from the monitor's own code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import false_discovery_control, ks_2samp, wasserstein_distance

from stream_monitor.alerts.contract import Alert
from stream_monitor.alerts.results import CheckResult
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.config.loading import ConfigError, load_settings
from stream_monitor.engine.core import Engine
from stream_monitor.reference.loading import prepare_from_events
from tests.helpers import batches_of_events

N = 20_000  # reference and window: KS p-values see a 0.1-sd shift, PSI barely does
NAMES = ("x", "y")


def sample(n: int, seed: int, shift_x: float) -> np.ndarray:
    """(n, 2) features: x ~ N(shift_x, 1), y ~ N(0, 1)."""
    z = np.random.default_rng(seed).standard_normal((n, 2))
    z[:, 0] += shift_x
    return z


def events_of(values: np.ndarray) -> list[dict[str, object]]:
    return [
        {"model": "shop", "features": {"x": float(a), "y": float(b)}, "prediction": float(a)}
        for a, b in values.tolist()
    ]


def engine_run(
    settings: DetectorSettings, ref: np.ndarray, window: np.ndarray
) -> tuple[CheckResult, list[Alert], Engine]:
    refs = {"shop": prepare_from_events("shop", events_of(ref), 20, "test")}
    if "input_drift_rule" not in settings.model_fields_set:  # the gate is a window rule
        settings = settings.model_copy(update={"input_drift_rule": "window"})
    engine = Engine(settings, refs)
    batches = batches_of_events(events_of(window), 5000)
    alerts = [a for b in batches for a in engine.process(b).alerts]
    result = engine.models["shop"].last_results[0]
    assert result.kind == "input_drift"
    return result, [a for a in alerts if a.kind == "input_drift"], engine


def psi_closed_form(ref: np.ndarray, win: np.ndarray, bins: int = 10) -> float:
    """PSI on the reference's decile bins, outer bins open, proportions floored at 1e-4."""
    edges = np.unique(np.quantile(ref, np.arange(1, bins) / bins))
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1)
    w = np.bincount(np.searchsorted(edges, win, side="right"), minlength=edges.size + 1)
    rp = np.maximum(r / r.sum(), 1e-4)
    wp = np.maximum(w / w.sum(), 1e-4)
    return float(np.sum((wp - rp) * np.log(wp / rp)))


def bh_pvalues(ref: np.ndarray, win: np.ndarray) -> np.ndarray:
    p = [ks_2samp(ref[:, j], win[:, j], method="asymp").pvalue for j in range(ref.shape[1])]
    return np.asarray(false_discovery_control(p, method="bh"))


def settings(rule: str, **extra: object) -> DetectorSettings:
    return DetectorSettings(window_size=N, check_every=N, drift_rule=rule, **extra)  # type: ignore[arg-type]


REF = sample(N, 1, 0.0)
TINY = sample(N, 2, 0.1)
LARGE = sample(N, 3, 1.0)


def test_tiny_shift_fires_bh_but_not_the_gate() -> None:
    adjusted = bh_pvalues(REF, TINY)
    assert adjusted[0] < 1e-6  # significant by p-value ...
    psi_x = psi_closed_form(REF[:, 0], TINY[:, 0])
    assert psi_x < 0.05  # ... with a negligible effect (PSI's "no shift" is below 0.1)

    bh, bh_alerts, _ = engine_run(settings("bh"), REF, TINY)
    assert bh.healthy is False and bh.test == "bh" and bh.details["rule"] == "bh"
    assert bh.details["p_value"] == pytest.approx(adjusted.min(), rel=1e-9)
    assert bh.score == pytest.approx(-np.log10(adjusted.min()), rel=1e-9)
    assert bh.score_kind == "neg_log10_p_value"
    assert [a.status for a in bh_alerts] == ["firing"] and bh_alerts[0].test == "bh"

    gate, gate_alerts, engine = engine_run(settings("gate"), REF, TINY)
    assert gate_alerts == []
    assert gate.healthy is True and gate.test == "gate"
    assert gate.details["rule"] == "gate" and gate.details["gate"] == "small_effect"
    assert gate.details["effect"] == "psi" and gate.details["correction"] == "bh"
    assert gate.threshold == 0.2  # PSI's default threshold
    significant = adjusted <= 0.01
    effects = [psi_closed_form(REF[:, j], TINY[:, j]) for j in range(2)]
    largest = max(e for e, s in zip(effects, significant, strict=True) if s)
    assert gate.score == pytest.approx(largest, rel=1e-9)
    status = engine.status()["models"]["shop"]["results"]["input_drift"]  # type: ignore[index]
    assert status["gate"] == "small_effect" and status["test"] == "gate"


def test_large_shift_fires_both_and_the_alert_names_the_gate() -> None:
    _, bh_alerts, _ = engine_run(settings("bh"), REF, LARGE)
    assert [a.status for a in bh_alerts] == ["firing"] and bh_alerts[0].details["rule"] == "bh"

    gate, alerts, _ = engine_run(settings("gate"), REF, LARGE)
    assert [a.status for a in alerts] == ["firing"]
    alert = alerts[0]
    assert alert.test == "gate" and alert.threshold == 0.2
    assert alert.details["rule"] == "gate" and alert.details["gate"] == "bh+effect"
    assert alert.details["drifted_features"] == 1.0
    psi_x = psi_closed_form(REF[:, 0], LARGE[:, 0])
    assert psi_x > 0.4 and alert.score == pytest.approx(psi_x, rel=1e-9)
    assert alert.severity == "critical"  # effect past twice the minimum
    by_name = {f.name: f for f in alert.features}
    assert by_name["x"].test == "psi" and by_name["x"].drifted
    assert by_name["x"].score == pytest.approx(psi_x, rel=1e-9)
    assert by_name["y"].score == pytest.approx(psi_closed_form(REF[:, 1], LARGE[:, 1]), 1e-9)
    assert not by_name["y"].drifted
    p_y = ks_2samp(REF[:, 1], LARGE[:, 1], method="asymp").pvalue
    assert by_name["y"].p_value == pytest.approx(p_y, rel=1e-9)  # uncorrected, as read
    assert gate.healthy is False


def test_gate_reports_a_small_sample_and_no_significance() -> None:
    small_ref = sample(5000, 4, 0.0)  # min(window, reference) = 5000 < 10000
    result, alerts, _ = engine_run(settings("gate", gate_min_samples=10_000), small_ref, LARGE)
    assert alerts == [] and result.healthy is True
    assert result.details["gate"] == "small_sample" and result.score == 0.0

    steady = sample(N, 5, 0.0)
    assert (bh_pvalues(REF, steady) > 0.01).all()
    result, alerts, _ = engine_run(settings("gate"), REF, steady)
    assert alerts == [] and result.details["gate"] == "not_significant"


def test_gate_per_model_from_yaml_with_wasserstein_and_bonferroni(tmp_path: Path) -> None:
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(
        f"window_size: {N}\n"
        f"check_every: {N}\n"
        "input_drift_rule: window\n"
        "models:\n"
        "  shop:\n"
        "    drift_rule: gate\n"
        "    gate_effect: wasserstein\n"
        "    gate_min_effect: 0.5\n"
        "    gate_correction: bonferroni\n"
    )
    loaded = load_settings({}, cfg).detector_settings()
    assert loaded.drift_rule == "max" and loaded.for_model("shop").drift_rule == "gate"
    result, alerts, _ = engine_run(loaded, REF, LARGE)
    w1 = wasserstein_distance(REF[:, 0], LARGE[:, 0]) / np.std(REF[:, 0])
    assert w1 > 0.5
    assert alerts and alerts[0].details["gate"] == "bonferroni+effect"
    assert alerts[0].details["effect"] == "wasserstein" and alerts[0].threshold == 0.5
    assert result.score == pytest.approx(w1, rel=1e-9)
    tiny, _, _ = engine_run(loaded, REF, TINY)
    w1_tiny = wasserstein_distance(REF[:, 0], TINY[:, 0]) / np.std(REF[:, 0])
    assert tiny.details["gate"] == "small_effect" and tiny.score == pytest.approx(w1_tiny, 1e-9)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("drift_rule: gate\ngate_effect: magic\n", "gate_effect: Input should be 'psi'"),
        ("drift_rule: gate\ngate_correction: holm\n", "gate_correction: Input should be 'bh'"),
        ("gate_min_samples: 0\n", "gate_min_samples: Input should be greater than 0"),
        (
            "window_size: 500\nmodels:\n  shop: {drift_rule: gate, gate_min_samples: 1000}\n",
            "models.shop: gate_min_samples 1000 exceeds window_size 500",
        ),
        (
            "drift_rule: gate\ngate_effect: jensenshannon\ngate_min_effect: 0.9\n",
            "not below the largest Jensen-Shannon distance",
        ),
    ],
)
def test_gate_settings_are_validated_with_clear_errors(
    tmp_path: Path, yaml_text: str, message: str
) -> None:
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings({}, cfg)


def test_gate_settings_of_other_rules_are_not_judged() -> None:
    """A gate setting that could never fire is harmless while the rule is not the gate."""
    assert DetectorSettings(window_size=50, gate_min_samples=100).drift_rule == "max"
