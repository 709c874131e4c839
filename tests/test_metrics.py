"""Metrics computed by the monitor itself: consumer lag, per-batch latency histograms."""

from __future__ import annotations

import numpy as np
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream_monitor.sinks.prometheus import LATENCY_BUCKETS_SECONDS, Metrics, partition_lag


def test_lag_counts_from_what_was_consumed_to_the_stable_end() -> None:
    # exactly-once: the consumer's committed offset is unknown (-1001); app_offset is known
    assert (
        partition_lag(
            {
                "ls_offset": 1500,
                "hi_offset": 1502,
                "app_offset": 1000,
                "committed_offset": -1001,
                "consumer_lag": -1,
            }
        )
        == 500
    )
    assert partition_lag({"ls_offset": -1, "hi_offset": 80, "app_offset": 80}) == 0
    # nothing consumed yet: librdkafka's own figure when it has one, else none
    assert partition_lag({"ls_offset": 10, "app_offset": -1001, "consumer_lag": 10}) == 10
    assert partition_lag({"ls_offset": 10, "app_offset": -1001, "consumer_lag": -1}) is None
    # nothing consumed yet: from the low watermark; an empty partition has lag 0
    empty = {"ls_offset": 0, "hi_offset": 0, "lo_offset": 0, "app_offset": -1001}
    assert partition_lag({**empty, "consumer_lag": -1}) == 0
    unread = {"ls_offset": 40, "lo_offset": 10, "app_offset": -1001, "consumer_lag": -1}
    assert partition_lag(unread) == 30


def test_latency_histogram_matches_numpy_and_forgets_moved_models() -> None:
    metrics = Metrics()
    rng = np.random.default_rng(1)
    latencies_ms = rng.lognormal(3, 1, 5000)
    metrics.latency.observe_ms("m", latencies_ms[:2000])
    metrics.latency.observe_ms("m", latencies_ms[2000:])
    samples = {
        s.labels.get("le"): s.value
        for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())
        if f.name == "stream_monitor_prediction_latency_seconds"
        for s in f.samples
        if s.name.endswith("_bucket")
    }
    seconds = latencies_ms / 1000
    for bound in LATENCY_BUCKETS_SECONDS:
        assert samples[repr(float(bound))] == np.sum(seconds <= bound)
    assert samples["+Inf"] == 5000
    metrics.drift_score.labels("m", "", "", "input_drift").set(0.3)
    metrics.forget_models(["m"])
    text = generate_latest(metrics.registry).decode()
    assert 'model="m"' not in text


def test_batch_metrics_checks_windows_errors_and_bounded_feature_gauges() -> None:
    from stream_monitor.config.detector import DetectorSettings
    from stream_monitor.engine.core import Engine
    from stream_monitor.tools.synthetic import SyntheticModel
    from tests.helpers import batches_of_events, references

    model = SyntheticModel("m", n_features=6)
    engine = Engine(DetectorSettings(), references([model], 2000))
    metrics = Metrics(feature_limit=2)
    for batch in batches_of_events(model.events(0, 1500), 500):
        metrics.record(engine.process(batch))
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())
        for s in f.samples
    }
    assert values[("stream_monitor_check_duration_seconds_count", ())] == 15
    v1 = (("model", "m"), ("model_version", "v1"), ("segment", ""))  # the synthetic events' version
    assert values[("stream_monitor_window_events", v1)] == 1000
    assert values[("stream_monitor_reference_loaded", v1)] == 1
    mae = values[("stream_monitor_model_error", (("metric", "mae"), *v1))]
    assert mae == engine.models["m@v1"].last_results[2].details["mae"]
    features = {k for k in values if k[0] == "stream_monitor_feature_drift_score"}
    assert len(features) == 2  # bounded by --feature-metrics
    assert any(k[0] == "process_resident_memory_bytes" for k in values)
    metrics.forget_models(["m@v1"])  # its partition moved: none of its gauges stay here
    left = {s.name for f in metrics.registry.collect() for s in f.samples if s.labels.get("model")}
    assert "stream_monitor_feature_drift_score" not in left
    assert "stream_monitor_window_events" not in left


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())
        for s in f.samples
    }


def test_a_kind_decided_by_p_value_shows_evidence_never_a_p_value_as_a_score() -> None:
    from stream_monitor.alerts.outcome import BatchOutcome
    from stream_monitor.alerts.results import CheckResult

    metrics = Metrics()
    key = (("kind", "input_drift"), ("model", "m"), ("model_version", ""), ("segment", ""))
    by_p = CheckResult("input_drift", "bh", 5.2, 3.0, False, score_kind="neg_log10_p_value")
    metrics.record(BatchOutcome(checks={"m": [by_p]}))
    values = _samples(metrics)
    assert values[("stream_monitor_drift_neg_log10_p_value", key)] == 5.2
    assert values[("stream_monitor_drift_neg_log10_level", key)] == 3.0
    assert ("stream_monitor_drift_score", key) not in values
    statistic = CheckResult("input_drift", "ks", 0.04, 0.1, True)
    metrics.record(BatchOutcome(checks={"m": [statistic]}))
    values = _samples(metrics)
    assert values[("stream_monitor_drift_score", key)] == 0.04
    assert ("stream_monitor_drift_neg_log10_p_value", key) not in values  # one unit at a time
    metrics.record(BatchOutcome(checks={"m": [statistic]}))  # the same unit again
    assert _samples(metrics)[("stream_monitor_drift_score", key)] == 0.04
    metrics.record(BatchOutcome(checks={"m": [by_p]}))  # and back
    values = _samples(metrics)
    assert values[("stream_monitor_drift_neg_log10_p_value", key)] == 5.2
    assert ("stream_monitor_drift_score", key) not in values
    assert ("stream_monitor_drift_threshold", key) not in values
    metrics.forget_models(["m"])  # gone with its series; shown afresh after
    metrics.record(BatchOutcome(checks={"m": [statistic]}))
    values = _samples(metrics)
    assert values[("stream_monitor_drift_score", key)] == 0.04
    assert ("stream_monitor_drift_neg_log10_p_value", key) not in values


def test_sequential_charts_set_their_evidence_and_the_detection_gauge() -> None:
    from stream_monitor.alerts.outcome import BatchOutcome
    from stream_monitor.alerts.results import CheckResult

    metrics = Metrics()
    window = CheckResult("input_drift", "ks", 0.2, 0.1, False, alerting=False)
    outcome = BatchOutcome(checks={"m": [window]}, sequential={"m": (0.4, False, True)})
    metrics.record(outcome)
    values = _samples(metrics)
    assert (
        values[
            (
                "stream_monitor_input_drift_evidence",
                (("model", "m"), ("model_version", ""), ("segment", "")),
            )
        ]
        == 0.4
    )
    # the window test is over its threshold, but the charts decide: not detected
    assert (
        values[
            (
                "stream_monitor_drift_detected",
                (("kind", "input_drift"), ("model", "m"), ("model_version", ""), ("segment", "")),
            )
        ]
        == 0
    )
    assert (
        values[
            (
                "stream_monitor_retrain_recommended",
                (("model", "m"), ("model_version", ""), ("segment", "")),
            )
        ]
        == 0
    )
