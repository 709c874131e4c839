"""Prometheus metrics (contract §5), updated once per batch, never per event."""

from __future__ import annotations

import contextlib
import math

import orjson
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from stream_monitor.alerts.contract import KINDS
from stream_monitor.alerts.outcome import LATENCY_BUCKETS_SECONDS, BatchOutcome
from stream_monitor.alerts.results import CheckResult
from stream_monitor.checks.run import retrain_recommended
from stream_monitor.sinks.latency_histograms import (
    MODEL_LABELS,
    Identities,
    LatencyHistograms,
)

__all__ = ["LATENCY_BUCKETS_SECONDS", "Metrics", "partition_lag"]
ALERT_STATUSES = ("firing", "resolved")
LABEL_STATUSES = ("joined", "late", "unmatched", "invalid")


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
            list(MODEL_LABELS),
            registry=r,
        )
        self.reference_loaded = Gauge(
            "stream_monitor_reference_loaded",
            "1 when the model has a reference",
            list(MODEL_LABELS),
            registry=r,
        )
        self.model_error = Gauge(
            "stream_monitor_model_error",
            "Error metrics of the window: mae, rmse (numbers) or accuracy (class labels)",
            [*MODEL_LABELS, "metric"],
            registry=r,
        )
        self.feature_drift_score = Gauge(
            "stream_monitor_feature_drift_score",
            "Input-drift statistic per feature and test (only with --feature-metrics N, the "
            "first N features): a KS statistic and a chi-squared one are separate series",
            [*MODEL_LABELS, "feature", "test"],
            registry=r,
        )
        self.events = Counter(
            "stream_monitor_events",
            "Prediction events consumed",
            [*MODEL_LABELS, "status"],
            registry=r,
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
            [*MODEL_LABELS, "kind"],
            registry=r,
        )
        self.drift_detected = Gauge(
            "stream_monitor_drift_detected",
            "1 while the last check of this kind was unhealthy",
            [*MODEL_LABELS, "kind"],
            registry=r,
        )
        self.evidence = Gauge(
            "stream_monitor_drift_neg_log10_p_value",
            "A check decided by a p-value: -log10 p (never the p-value as a score)",
            [*MODEL_LABELS, "kind"],
            registry=r,
        )
        self.evidence_threshold = Gauge(
            "stream_monitor_drift_neg_log10_level",
            "-log10 of the level its -log10 p is compared with",
            [*MODEL_LABELS, "kind"],
            registry=r,
        )
        self.input_drift_evidence = Gauge(
            "stream_monitor_input_drift_evidence",
            "Sequential input drift: the largest chart value over its threshold (1 = alarm)",
            list(MODEL_LABELS),
            registry=r,
        )
        self.versus_baseline = Gauge(
            "stream_monitor_versus_baseline_score",
            "A candidate version against its baseline's live window: -log10 p of the KS tests",
            [*MODEL_LABELS, "kind"],
            registry=r,
        )
        self.threshold = Gauge(
            "stream_monitor_drift_threshold",
            "Threshold the score is compared with",
            [*MODEL_LABELS, "kind"],
            registry=r,
        )
        self.checks = Counter("stream_monitor_checks", "Checks run", list(MODEL_LABELS), registry=r)
        self.alerts = Counter(
            "stream_monitor_alerts",
            "Alerts published",
            [*MODEL_LABELS, "kind", "status"],
            registry=r,
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
            list(MODEL_LABELS),
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
            [*MODEL_LABELS, "status"],
            registry=r,
        )
        # (model, model_version) of the keys that are versions' own windows
        self.identities: Identities = {}
        # (key, kind) -> whether its score was last shown as -log10 p (`_record_score`)
        self._by_p: dict[tuple[str, str], bool] = {}
        # key -> the (feature, test) series of its per-feature gauge, to forget them with it
        self._feature_series: dict[str, set[tuple[str, str]]] = {}
        self.latency = LatencyHistograms(identities=self.identities)
        r.register(self.latency)

    def _id(self, key: str) -> tuple[str, str, str]:
        """The `model`, `model_version` and `segment` labels of a key (a model,
        `model@version`, or a segment's `<stream>#country=FR`)."""
        return self.identities.get(key, (key, "", ""))

    def record(self, outcome: BatchOutcome) -> None:
        """Publish a committed batch. The event counters move last, so a reader that sees
        them reach N also sees the scores, alerts and windows of those N events."""
        self.identities.update(outcome.identities)
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
            self.checks.labels(*self._id(model)).inc(n)
        for seconds in outcome.check_seconds:
            self.check_duration.observe(seconds)
        for model, (fill, has_reference) in outcome.windows.items():
            self.window_events.labels(*self._id(model)).set(fill)
            self.reference_loaded.labels(*self._id(model)).set(1 if has_reference else 0)
        for model, results in outcome.checks.items():
            for result in results:
                if result.healthy is None:
                    continue
                if result.channel is not None:  # a candidate version against its baseline
                    self.versus_baseline.labels(*self._id(model), result.kind).set(result.score)
                    continue
                self._record_score(model, result)
                if result.alerting:
                    self.drift_detected.labels(*self._id(model), result.kind).set(
                        0 if result.healthy else 1
                    )
            self._record_details(model, results)
            charts = outcome.sequential.get(model)
            firing = charts is not None and charts[1]
            if charts is not None:
                evidence, _, decides = charts
                self.input_drift_evidence.labels(*self._id(model)).set(evidence)
                if decides:
                    self.drift_detected.labels(*self._id(model), "input_drift").set(
                        1 if firing else 0
                    )
            retrain = retrain_recommended(results) or firing
            self.retrain.labels(*self._id(model)).set(1 if retrain else 0)
        for alert in outcome.alerts:
            ident = (alert.model, alert.model_version or "", alert.segment or "")
            self.alerts.labels(*ident, alert.kind, alert.status).inc()
        for model, n in outcome.ok_counts.items():
            self.events.labels(*self._id(model), "ok").inc(n)
        invalid: dict[str, int] = {}
        for model in outcome.dead_letter_models:
            invalid[model] = invalid.get(model, 0) + 1
        for model, n in invalid.items():
            self.events.labels(model, "", "", "invalid").inc(n)  # no version read
        for (model, status), n in outcome.label_counts.items():
            self.labels.labels(*self._id(model), status).inc(n)
        if outcome.dropped:  # older versions pushed out by newer ones (--max-versions)
            self.forget_models(outcome.dropped, counters=True)

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
        # the other unit's series exist only if the kind last showed that unit: removed
        # then, not tried at every check (a failed remove costs a KeyError, ~3 µs)
        if self._by_p.get((model, kind), by_p) != by_p:
            stale = (
                (self.drift_score, self.threshold)
                if by_p
                else (self.evidence, self.evidence_threshold)
            )
            for gauge in stale:
                with contextlib.suppress(KeyError):
                    gauge.remove(*self._id(model), kind)
        self._by_p[(model, kind)] = by_p
        if math.isfinite(result.score):
            score.labels(*self._id(model), kind).set(result.score)
        if math.isfinite(result.threshold):
            threshold.labels(*self._id(model), kind).set(result.threshold)

    def _record_details(self, model: str, results: list[CheckResult]) -> None:
        for result in results:
            if result.kind == "performance":
                for metric in ("mae", "rmse", "accuracy"):
                    value = result.details.get(metric)
                    if isinstance(value, float) and math.isfinite(value):
                        self.model_error.labels(*self._id(model), metric).set(value)
            if result.kind == "input_drift" and self.feature_limit and result.feature_scores:
                series = self._feature_series.setdefault(model, set())
                for name, test, score in result.feature_scores()[: self.feature_limit]:
                    self.feature_drift_score.labels(*self._id(model), name, test).set(score)
                    series.add((name, test))

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

    def forget_models(self, models: list[str], counters: bool = False) -> None:
        """Drop a model's gauges when its partition moves to another member (no stale
        gauges here while the new owner reports the model); with `counters`, its counters
        too (an old version pushed out by newer ones: none of its series stay)."""
        for model in models:
            ident = self._id(model)
            for kind in KINDS:
                self._by_p.pop((model, kind), None)
                for gauge in (
                    self.drift_score,
                    self.drift_detected,
                    self.threshold,
                    self.evidence,
                    self.evidence_threshold,
                    self.versus_baseline,
                ):
                    with contextlib.suppress(KeyError):
                        gauge.remove(*ident, kind)
            for gauge1 in (
                self.retrain,
                self.window_events,
                self.reference_loaded,
                self.input_drift_evidence,
            ):
                with contextlib.suppress(KeyError):
                    gauge1.remove(*ident)
            for metric in ("mae", "rmse", "accuracy"):
                with contextlib.suppress(KeyError):
                    self.model_error.remove(*ident, metric)
            for name, test in self._feature_series.pop(model, ()):
                with contextlib.suppress(KeyError):
                    self.feature_drift_score.remove(*ident, name, test)
            self.latency.forget(model)
            if counters:
                self._forget_counters(ident)
            self.identities.pop(model, None)

    def _forget_counters(self, ident: tuple[str, str, str]) -> None:
        with contextlib.suppress(KeyError):
            self.checks.remove(*ident)
        for status in ("ok", *LABEL_STATUSES):
            for counter in (self.events, self.labels):
                with contextlib.suppress(KeyError):
                    counter.remove(*ident, status)
        for kind in KINDS:
            for status in ALERT_STATUSES:
                with contextlib.suppress(KeyError):
                    self.alerts.remove(*ident, kind, status)

    def forget_partition(self, topic: str, partition: int) -> None:
        with contextlib.suppress(KeyError):
            self.consumer_lag.remove(topic, str(partition))
