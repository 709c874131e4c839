"""Prometheus metrics (contract §5), updated once per batch, never per event."""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
import orjson
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from stream_monitor.alerts.contract import KINDS
from stream_monitor.alerts.outcome import LATENCY_BUCKETS_SECONDS, BatchOutcome, LatencyCounts
from stream_monitor.alerts.results import CheckResult
from stream_monitor.checks.run import retrain_recommended

# The original design's buckets (0.01 ... 5 s) with finer steps below 10 ms and between.


class LatencyHistograms(Collector):
    """`stream_monitor_prediction_latency_seconds` per model, filled from numpy arrays.

    prometheus_client's Histogram observes one value per call; a batch of latencies is
    binned here with one searchsorted instead.
    """

    name = "stream_monitor_prediction_latency_seconds"

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS_SECONDS) -> None:
        self._bounds = np.array(buckets, dtype=np.float64)
        self._counts: dict[str, npt.NDArray[np.int64]] = {}
        self._sums: dict[str, float] = {}
        self._lock = threading.Lock()

    def observe_ms(self, model: str, latencies_ms: npt.NDArray[np.float64]) -> None:
        seconds = latencies_ms / 1000.0
        idx = np.searchsorted(self._bounds, seconds, side="left")  # value <= bound
        add = np.bincount(idx, minlength=self._bounds.size + 1).astype(np.int64)
        with self._lock:
            if model in self._counts:
                self._counts[model] += add
                self._sums[model] += float(seconds.sum())
            else:
                self._counts[model] = add
                self._sums[model] = float(seconds.sum())

    def add_counts(self, binned: LatencyCounts) -> None:
        """Latencies binned elsewhere on `LATENCY_BUCKETS_SECONDS` (the native core)."""
        if tuple(self._bounds.tolist()) != LATENCY_BUCKETS_SECONDS:
            raise ValueError("latency counts binned on other buckets than this histogram's")
        with self._lock:
            for i, model in enumerate(binned.models):
                add = binned.counts[i]
                if model in self._counts:
                    self._counts[model] += add
                    self._sums[model] += float(binned.sums[i])
                else:
                    self._counts[model] = add.copy()
                    self._sums[model] = float(binned.sums[i])

    def forget(self, model: str) -> None:
        with self._lock:
            self._counts.pop(model, None)
            self._sums.pop(model, None)

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(
            self.name, "Serving latency of the predictions, from latency_ms", labels=["model"]
        )
        with self._lock:
            for model, counts in sorted(self._counts.items()):
                cumulative = np.cumsum(counts)
                buckets = [
                    (_bound_text(b), float(c))
                    for b, c in zip(self._bounds, cumulative[:-1], strict=True)
                ]
                buckets.append(("+Inf", float(cumulative[-1])))
                family.add_metric([model], buckets, self._sums[model])
        yield family


def _bound_text(bound: float) -> str:
    return repr(float(bound))


def partition_lag(pstats: dict[str, int]) -> int | None:
    """Messages between what this process has consumed and the partition's end.

    librdkafka's own `consumer_lag` counts from the consumer's committed offset, which a
    transactional producer commits (exactly-once): the consumer never sees it. The end is
    the last stable offset under read_committed (the high watermark otherwise); what was
    consumed is `app_offset`, the offset after the last message handed to the monitor.
    Before the first message (an empty partition, or one not read yet) it is the
    partition's low watermark: an empty assigned partition has lag 0, not no series.
    """
    end = pstats.get("ls_offset", -1)
    if end < 0:
        end = pstats.get("hi_offset", -1)
    consumed = pstats.get("app_offset", -1)
    if end < 0 or consumed < 0:
        lag = pstats.get("consumer_lag", -1)
        if lag >= 0:
            return lag
        low = pstats.get("lo_offset", -1)
        return max(end - low, 0) if end >= 0 and low >= 0 else None
    return max(end - consumed, 0)


class Metrics:
    """The monitor's metrics on their own registry (so tests can hold several)."""

    def __init__(self, registry: CollectorRegistry | None = None, feature_limit: int = 0) -> None:
        """Every metric of contract §5, declared in one place so names and labels are read
        together (long because it is that list)."""
        self.registry = registry or CollectorRegistry()
        self.feature_limit = feature_limit
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, resident memory, open fds
        PlatformCollector(registry=r)
        self.check_duration = Histogram(
            "stream_monitor_check_duration_seconds",
            "Duration of one check of one model (every detector)",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.window_events = Gauge(
            "stream_monitor_window_events",
            "Events in the model's window",
            ["model"],
            registry=r,
        )
        self.reference_loaded = Gauge(
            "stream_monitor_reference_loaded",
            "1 when the model has a reference",
            ["model"],
            registry=r,
        )
        self.model_error = Gauge(
            "stream_monitor_model_error",
            "Error metrics of the window: mae, rmse (numbers) or accuracy (class labels)",
            ["model", "metric"],
            registry=r,
        )
        self.feature_drift_score = Gauge(
            "stream_monitor_feature_drift_score",
            "Input-drift statistic per feature and test (only with --feature-metrics N, the "
            "first N features): a KS statistic and a chi-squared one are separate series",
            ["model", "feature", "test"],
            registry=r,
        )
        self.events = Counter(
            "stream_monitor_events", "Prediction events consumed", ["model", "status"], registry=r
        )
        self.dead_letters = Counter(
            "stream_monitor_dead_letters",
            "Bad events sent to the dead-letter topic, by reason",
            ["reason"],
            registry=r,
        )
        self.drift_score = Gauge(
            "stream_monitor_drift_score",
            "Score of the last check per kind (KS, JS distance, MAE, p99 latency in ms)",
            ["model", "kind"],
            registry=r,
        )
        self.drift_detected = Gauge(
            "stream_monitor_drift_detected",
            "1 while the last check of this kind was unhealthy",
            ["model", "kind"],
            registry=r,
        )
        self.evidence = Gauge(
            "stream_monitor_drift_neg_log10_p_value",
            "A check decided by a p-value: -log10 p (never the p-value as a score)",
            ["model", "kind"],
            registry=r,
        )
        self.evidence_threshold = Gauge(
            "stream_monitor_drift_neg_log10_level",
            "-log10 of the level its -log10 p is compared with",
            ["model", "kind"],
            registry=r,
        )
        self.input_drift_evidence = Gauge(
            "stream_monitor_input_drift_evidence",
            "Sequential input drift: the largest chart value over its threshold (1 = alarm)",
            ["model"],
            registry=r,
        )
        self.threshold = Gauge(
            "stream_monitor_drift_threshold",
            "Threshold the score is compared with",
            ["model", "kind"],
            registry=r,
        )
        self.checks = Counter("stream_monitor_checks", "Checks run", ["model"], registry=r)
        self.alerts = Counter(
            "stream_monitor_alerts", "Alerts published", ["model", "kind", "status"], registry=r
        )
        self.consumer_lag = Gauge(
            "stream_monitor_consumer_lag",
            "Messages behind the partition's high watermark (librdkafka statistics)",
            ["topic", "partition"],
            registry=r,
        )
        self.retrain = Gauge(
            "stream_monitor_retrain_recommended",
            "1 when the last check recommends retraining",
            ["model"],
            registry=r,
        )
        self.changelog_bytes = Counter(
            "stream_monitor_changelog_bytes", "Bytes of state records written", registry=r
        )
        self.transaction_aborts = Counter(
            "stream_monitor_transaction_aborts", "Transactions aborted and retried", registry=r
        )
        self.commit_failures = Counter(
            "stream_monitor_commit_failures", "Offset commits that failed", registry=r
        )
        self.rebalances = Counter(
            "stream_monitor_rebalances", "Partition assignments and revocations", registry=r
        )
        self.restore_seconds = Gauge(
            "stream_monitor_restore_seconds", "Duration of the last state restore", registry=r
        )
        self.webhook_deliveries = Counter(
            "stream_monitor_webhook_deliveries",
            "Webhook deliveries by outcome (delivered, retried, failed, dropped)",
            ["webhook", "outcome"],
            registry=r,
        )
        self.labels = Counter(
            "stream_monitor_labels",
            "Late labels by outcome: joined, late (prediction evicted), unmatched, invalid",
            ["model", "status"],
            registry=r,
        )
        self.latency = LatencyHistograms()
        r.register(self.latency)

    def record(self, outcome: BatchOutcome) -> None:
        """Publish a committed batch. The event counters move last, so a reader that sees
        them reach N also sees the scores, alerts and windows of those N events."""
        reasons: dict[str, int] = {}
        for dead in outcome.dead_letters:
            reasons[dead.reason] = reasons.get(dead.reason, 0) + 1
        for reason, n in reasons.items():
            self.dead_letters.labels(reason).inc(n)
        for model, lat in outcome.latencies_ms.items():
            self.latency.observe_ms(model, lat)
        for binned in outcome.latency_counts:
            self.latency.add_counts(binned)
        for model, n in outcome.check_counts.items():
            self.checks.labels(model).inc(n)
        for seconds in outcome.check_seconds:
            self.check_duration.observe(seconds)
        for model, (fill, has_reference) in outcome.windows.items():
            self.window_events.labels(model).set(fill)
            self.reference_loaded.labels(model).set(1 if has_reference else 0)
        for model, results in outcome.checks.items():
            for result in results:
                if result.healthy is None:
                    continue
                self._record_score(model, result)
                if result.alerting:
                    self.drift_detected.labels(model, result.kind).set(0 if result.healthy else 1)
            self._record_details(model, results)
            charts = outcome.sequential.get(model)
            firing = charts is not None and charts[1]
            if charts is not None:
                evidence, _, decides = charts
                self.input_drift_evidence.labels(model).set(evidence)
                if decides:
                    self.drift_detected.labels(model, "input_drift").set(1 if firing else 0)
            self.retrain.labels(model).set(1 if retrain_recommended(results) or firing else 0)
        for alert in outcome.alerts:
            self.alerts.labels(alert.model, alert.kind, alert.status).inc()
        for model, n in outcome.ok_counts.items():
            self.events.labels(model, "ok").inc(n)
        invalid: dict[str, int] = {}
        for model in outcome.dead_letter_models:
            invalid[model] = invalid.get(model, 0) + 1
        for model, n in invalid.items():
            self.events.labels(model, "invalid").inc(n)
        for (model, status), n in outcome.label_counts.items():
            self.labels.labels(model, status).inc(n)

    def webhook_result(self, sink: str, outcome: str) -> None:
        self.webhook_deliveries.labels(sink, outcome).inc()

    def _record_score(self, model: str, result: CheckResult) -> None:
        """A score and its threshold in the gauges of their unit: statistics in
        drift_score/drift_threshold, decisions by p-value as -log10 p and -log10 of the
        level in their own pair (a kind's series of the other pair is removed: one
        (model, kind) never shows two units)."""
        kind = result.kind
        by_p = result.score_kind == "neg_log10_p_value"
        score, threshold = (
            (self.evidence, self.evidence_threshold) if by_p else (self.drift_score, self.threshold)
        )
        stale = (
            (self.drift_score, self.threshold) if by_p else (self.evidence, self.evidence_threshold)
        )
        for gauge in stale:
            with contextlib.suppress(KeyError):
                gauge.remove(model, kind)
        if math.isfinite(result.score):
            score.labels(model, kind).set(result.score)
        if math.isfinite(result.threshold):
            threshold.labels(model, kind).set(result.threshold)

    def _record_details(self, model: str, results: list[CheckResult]) -> None:
        for result in results:
            if result.kind == "performance":
                for metric in ("mae", "rmse", "accuracy"):
                    value = result.details.get(metric)
                    if isinstance(value, float) and math.isfinite(value):
                        self.model_error.labels(model, metric).set(value)
            if result.kind == "input_drift" and self.feature_limit and result.feature_scores:
                for name, test, score in result.feature_scores()[: self.feature_limit]:
                    self.feature_drift_score.labels(model, name, test).set(score)

    def record_statistics(self, stats_json: str, assigned: set[tuple[str, int]]) -> bool:
        """Consumer lag per assigned partition from a librdkafka statistics document.

        Returns whether any broker is up, for readiness.
        """
        stats = orjson.loads(stats_json)
        brokers_up = any(
            b.get("state") == "UP" and b.get("nodeid", -1) >= 0
            for b in stats.get("brokers", {}).values()
        )
        for topic, tstats in stats.get("topics", {}).items():
            for pid, pstats in tstats.get("partitions", {}).items():
                partition = int(pid)
                if (topic, partition) not in assigned:
                    continue
                lag = partition_lag(pstats)
                if lag is not None:
                    self.consumer_lag.labels(topic, str(partition)).set(lag)
        return brokers_up

    def forget_models(self, models: list[str]) -> None:
        """Drop a model's series when its partition moves to another member (no stale
        gauges here while the new owner reports the model)."""
        for model in models:
            for kind in KINDS:
                for gauge in (
                    self.drift_score,
                    self.drift_detected,
                    self.threshold,
                    self.evidence,
                    self.evidence_threshold,
                ):
                    with contextlib.suppress(KeyError):
                        gauge.remove(model, kind)
            for gauge1 in (
                self.retrain,
                self.window_events,
                self.reference_loaded,
                self.input_drift_evidence,
            ):
                with contextlib.suppress(KeyError):
                    gauge1.remove(model)
            for metric in ("mae", "rmse", "accuracy"):
                with contextlib.suppress(KeyError):
                    self.model_error.remove(model, metric)
            self.latency.forget(model)

    def forget_partition(self, topic: str, partition: int) -> None:
        with contextlib.suppress(KeyError):
            self.consumer_lag.remove(topic, str(partition))
