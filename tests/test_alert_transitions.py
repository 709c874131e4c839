"""Firing and resolved: hysteresis for window checks, severity on each test's own scale,
and what a concept-drift alert's score and threshold are."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream_monitor.alerts.results import CheckContext, CheckResult
from stream_monitor.alerts.transitions import FiringAlerts, severity_of
from stream_monitor.checks.concept import ErrorStream
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.engine.core import Engine
from stream_monitor.tools.synthetic import SyntheticModel
from tests.helpers import batches_of_events, references

CTX = CheckContext("m", None, 100, 100, 0.0, 1.0, "t", 0, 5)


def _result(healthy: bool, score: float = 0.2, threshold: float = 0.1) -> CheckResult:
    return CheckResult("latency", "p99", score, threshold, healthy)


def test_a_window_alert_resolves_after_k_healthy_checks_in_a_row() -> None:
    alerts = FiringAlerts()
    sequence = [False, True, False, True, True, False, True, True, True, True]
    out = [alerts.update(_result(h), CTX, resolve_after=3) for h in sequence]
    statuses = [(i, a.status) for i, a in enumerate(out) if a is not None]
    # fires once; the healthy runs of 1 and 2 do not resolve it; the run of 3 does
    assert statuses == [(0, "firing"), (8, "resolved")]
    assert alerts.firing == {} and alerts.healthy_streak == {}


def test_without_hysteresis_every_change_is_an_alert() -> None:
    alerts = FiringAlerts()
    sequence = [False, True, False, True]
    out = [alerts.update(_result(h), CTX) for h in sequence]
    assert [a.status for a in out if a is not None] == ["firing", "resolved"] * 2


def test_a_latency_near_its_threshold_flaps_less_with_hysteresis() -> None:
    # p99 of the window hovering around 40 ms: the check is unhealthy about half the time
    model = SyntheticModel("svc", n_features=3)
    events = model.events(0, 8000)
    rng = np.random.default_rng(3)
    for e in events:
        e["latency_ms"] = float(rng.uniform(0, 40.5))
    refs = references([model], 1000)

    def firings(after: int) -> int:
        settings = DetectorSettings(latency_p99_threshold_ms=40.0, resolve_after_checks=after)
        engine = Engine(settings, refs)
        alerts = [a for b in batches_of_events(events, 500) for a in engine.process(b).alerts]
        return sum(a.kind == "latency" and a.status == "firing" for a in alerts)

    once, thrice = firings(1), firings(3)
    assert once >= 4 and thrice < once


@pytest.mark.parametrize(
    "result,expected",
    [
        # a statistic twice its threshold
        (CheckResult("input_drift", "ks", 0.2, 0.1, False), "critical"),
        (CheckResult("input_drift", "ks", 0.19, 0.1, False), "warning"),
        # p = 8.5e-6 at a level of 0.001: more than two decades below it
        (
            CheckResult(
                "input_drift",
                "chi2",
                -math.log10(8.5e-6),
                3.0,
                False,
                score_kind="neg_log10_p_value",
            ),
            "critical",
        ),
        (
            CheckResult("input_drift", "chi2", 4.0, 3.0, False, score_kind="neg_log10_p_value"),
            "warning",
        ),
        # accuracy: lower is worse
        (
            CheckResult("performance", "accuracy", 0.3, 0.8, False, higher_is_worse=False),
            "critical",
        ),
        (CheckResult("performance", "accuracy", 0.7, 0.8, False, higher_is_worse=False), "warning"),
    ],
)
def test_severity_is_measured_on_the_tests_own_scale(result: CheckResult, expected: str) -> None:
    assert severity_of(result) == expected


def test_concept_drift_compares_the_error_mean_with_the_last_healthy_one() -> None:
    stream = ErrorStream(0.002)
    stream.watch(np.full(2000, 0.1) + np.random.default_rng(1).normal(0, 0.01, 2000))
    calm = stream.check()
    assert calm.healthy and calm.threshold == calm.score  # the baseline is the mean itself
    assert calm.details["adwin_delta"] == 0.002
    stream.watch(np.full(2000, 0.5))
    changed = stream.check()
    assert changed.healthy is False
    assert changed.threshold == calm.score  # from the mean before the change ...
    assert changed.score > 0.3  # ... to the mean ADWIN keeps after its cut
    assert severity_of(changed) == "critical"


def test_page_hinkley_can_watch_the_errors_instead_of_adwin() -> None:
    settings = DetectorSettings(
        concept_detector="page_hinkley", page_hinkley_delta=0.05, page_hinkley_threshold=5.0
    )
    stream = ErrorStream.for_settings(settings)
    stream.watch(np.full(500, 0.1))
    calm = stream.check()
    assert calm.test == "page_hinkley" and calm.healthy
    assert calm.details["page_hinkley_threshold"] == 5.0 and "adwin_delta" not in calm.details
    stream.watch(np.full(100, 0.6))
    changed = stream.check()
    assert changed.healthy is False and changed.threshold == pytest.approx(0.1)
    with pytest.raises(ValueError, match="concept_detector"):
        DetectorSettings(concept_detector="ddm")  # type: ignore[arg-type]


def test_counts_in_status_and_alert_details_are_integers() -> None:
    model = SyntheticModel("m", n_features=3)
    engine = Engine(DetectorSettings(), references([model], 2000))
    for batch in batches_of_events(model.events(0, 1200), 500):
        engine.process(batch)
    results = engine.status()["models"]["m@v1"]["results"]  # type: ignore[index]
    counts = {
        ("input_drift", "tested_features"): 3,
        ("input_drift", "drifted_features"): 0,
        ("performance", "labeled"): 1000,
        ("data_quality", "issues"): 0,
        ("concept_drift", "error_window"): None,
    }
    for (kind, name), want in counts.items():
        value = results[kind][name]
        assert type(value) is int, (kind, name, value)
        if want is not None:
            assert value == want
