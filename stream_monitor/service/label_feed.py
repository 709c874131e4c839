"""Late labels as the service sees them: one object for the join, its state and its consumer.

The service calls it at a handful of points (consume, process, restore, release, status), so
that the consume -> engine -> publish -> commit loop stays the same for both inputs: a batch
of labels goes through the same transaction as a batch of predictions, with the alerts and
dead letters it caused, the state records it changed and the labels partitions' positions.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from stream_monitor.alerts.outcome import BatchOutcome
from stream_monitor.config.settings import Settings
from stream_monitor.engine.core import Engine
from stream_monitor.labels.join import STATUSES, LabelJoin
from stream_monitor.service.label_consumer import LabelSource
from stream_monitor.sinks.prometheus import Metrics
from stream_monitor.sources.records import RecordBatch, next_offsets
from stream_monitor.state.label_rings import RingTracker, position_record, restore, split
from stream_monitor.state.records import StateRecord

Partition = tuple[str, int]

log = logging.getLogger(__name__)


class LabelFeed:
    def __init__(
        self, settings: Settings, engine: Engine, metrics: Metrics, **callbacks: Any
    ) -> None:
        assert settings.labels_topic is not None
        self.topic = settings.labels_topic
        self._predictions = settings.topic
        self.engine = engine
        self.metrics = metrics
        self.join = LabelJoin(settings.label_horizon_events, settings.label_horizon_seconds)
        engine.observe(self.join)  # it remembers predictions from now on
        self.tracker = RingTracker()
        self.source = LabelSource(settings, stats_cb=self._on_stats, **callbacks)
        self.busy = False  # the last poll returned labels

    @classmethod
    def of(
        cls, settings: Settings, engine: Engine, metrics: Metrics, **callbacks: Any
    ) -> LabelFeed | None:
        """The feed when a labels topic is configured (None: no labels joined)."""
        if settings.labels_topic is None:
            return None
        return cls(settings, engine, metrics, **callbacks)

    def owns(self, batch: RecordBatch) -> bool:
        return bool(batch.topics) and batch.topics[0] == self.topic

    def seen(self, batch: RecordBatch) -> None:
        self.source.seen(batch)

    def poll(self, max_messages: int) -> RecordBatch:
        batch = self.source.poll(max_messages)
        self.busy = bool(len(batch))
        return batch

    @property
    def prediction_wait_s(self) -> float:
        """How long the predictions consumer may wait: never while labels keep coming."""
        return 0.0 if self.busy else 0.1

    def apply(self, batch: RecordBatch) -> BatchOutcome:
        return self.join.apply(self.engine, batch)

    def records(self, outcome: BatchOutcome, batch: RecordBatch) -> list[StateRecord]:
        """Pending predictions changed by the batch, and (labels) the partitions' positions."""
        models = [*outcome.ok_counts, *outcome.patched_rows]
        out = self.tracker.records(self.join, models)
        if self.owns(batch):
            for (topic, p), offset in sorted(next_offsets(batch).items()):
                out.append(position_record(topic, p, offset))
        return out

    def partition_of(self, record: StateRecord) -> int | None:
        """The changelog partition of a label position record (None: a model's record)."""
        return int(record.meta["partition"]) if not record.model else None

    def restore(self, records: list[StateRecord], partitions: list[int]) -> list[StateRecord]:
        """Take the rings and label positions of these partitions; the window records remain.

        The labels partitions (re)start at their stored positions.
        """
        windows, rings, positions = split(records, self.topic)
        restore(self.join, rings, self.tracker)
        self.source.assign({p: positions.get(p) for p in partitions})
        return windows

    def forget(self, models: list[str]) -> None:
        self.join.forget(models)
        self.tracker.forget(models)

    def release(self, partitions: set[Partition]) -> None:
        numbers = {p for t, p in partitions if t == self._predictions}
        self.source.unassign(numbers)
        for p in numbers:
            self.metrics.forget_partition(self.topic, p)

    def _on_stats(self, stats_json: str) -> None:
        """The labels partitions' lag, as the predictions' (stream_monitor_consumer_lag)."""
        try:
            self.metrics.record_statistics(
                stats_json, {(self.topic, p) for p in self.source.assigned}
            )
        except Exception:  # statistics must never break consumption
            log.exception("could not read the labels consumer's statistics")

    def close(self) -> None:
        self.source.close()

    def status(self, status: dict[str, object]) -> None:
        """Label counts per model and status committed since this process started (as the
        metric), predictions awaiting labels, and labels joined ever (durable state)."""
        by_model: dict[str, dict[str, int]] = {}
        for family in self.metrics.labels.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts = by_model.setdefault(sample.labels["model"], dict.fromkeys(STATUSES, 0))
                    counts[sample.labels["status"]] = int(sample.value)
        models = cast("dict[str, dict[str, object]]", status["models"])
        for name, entry in models.items():
            state = self.engine.models.get(name)  # None: released meanwhile (another thread)
            entry["labels"] = {
                **by_model.get(name, dict.fromkeys(STATUSES, 0)),
                "awaiting": self.join.awaiting(name),
                "joined_ever": 0 if state is None else state.labels_joined,  # durable
            }
        status["labels"] = {
            "topic": self.topic,
            "partitions": sorted(self.source.assigned),
            "horizon_events": self.join.horizon_events,
            "horizon_seconds": self.join.horizon_seconds,
            "totals": {s: sum(c[s] for c in by_model.values()) for s in STATUSES},
            "by_model": by_model,
        }
