"""The engine's models and their changelog, as a group member holds them: the outcome and
state records of a batch, the models of newly assigned partitions restored, and those of
revoked ones released."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from stream_monitor.alerts.outcome import BatchOutcome
from stream_monitor.config.settings import Settings
from stream_monitor.engine.core import Engine
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.service.changelog import read_partitions
from stream_monitor.service.label_feed import LabelFeed
from stream_monitor.service.readiness import Readiness
from stream_monitor.service.reference_source import ReferenceSource
from stream_monitor.sinks.kafka import KafkaPublisher
from stream_monitor.sinks.prometheus import Metrics
from stream_monitor.sources.records import RecordBatch
from stream_monitor.state.models import StateTracker, changelog_partition
from stream_monitor.state.records import encode
from stream_monitor.state.restore import restore

log = logging.getLogger(__name__)

Partition = tuple[str, int]


@dataclass(slots=True)
class BatchWork:
    """A batch the engine has run: its outcome and its changelog records (partition, key,
    encoded value), not produced yet."""

    batch: RecordBatch
    outcome: BatchOutcome
    state: list[tuple[int, bytes, bytes]]


class ModelKeeper:
    """Runs the engine on a batch and keeps its changelog in step with it."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        labels: LabelFeed | None,
        publisher: KafkaPublisher,
        metrics: Metrics,
        health: Readiness,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.labels = labels
        self.publisher = publisher
        self.metrics = metrics
        self.health = health
        self.tracker = StateTracker(settings.window_size)
        self.references = ReferenceSource(settings, engine.references)

    def beat(self) -> None:
        """Once per loop of the member, between batches: alive, and every model whose
        reference changed (topic, or files on SIGHUP) swapped to it."""
        self.health.beat()
        self._swap(self.references.changes())

    def request_reload(self, signum: int | None = None, frame: object = None) -> None:
        """SIGHUP: the --reference files are read again before the next batch."""
        self.references.reload_requested = True

    def _swap(self, references: dict[str, PreparedReference] | None) -> None:
        if references is not None:
            swapped = self.engine.replace_references(references)
            if swapped:
                log.info("references swapped for %s", sorted(swapped))

    def process(self, batch: RecordBatch) -> BatchOutcome:
        """Run the engine and produce everything the batch caused (not yet committed)."""
        work = self.compute(batch)
        self.publish(work)
        return work.outcome

    def compute(self, batch: RecordBatch) -> BatchWork:
        """Run the engine on the batch and encode its state records; nothing is produced
        (a transaction's commit may still be running: see `publish`)."""
        labels = self.labels if self.labels is not None and self.labels.owns(batch) else None
        outcome = labels.apply(batch) if labels is not None else self.engine.process(batch)
        if outcome.dropped:  # older versions pushed out by newer ones (--max-versions);
            self._forget(outcome.dropped, metrics=False)  # their series go once recorded
        for model, n in outcome.ok_counts.items():
            self.tracker.appended(model, n)
        for model, rows in outcome.patched_rows.items():
            self.tracker.patched(model, rows)
        records = self.tracker.records(self.engine, [*outcome.ok_counts, *outcome.patched_rows])
        if self.labels is not None:  # pending predictions, labels partitions' positions
            records += self.labels.records(outcome, batch)
        state = [
            (changelog_partition(self.engine, record), record.key, encode(record))
            for record in records
        ]
        return BatchWork(batch, outcome, state)

    def publish(self, work: BatchWork) -> None:
        """Produce the alerts, dead letters and state records of a computed batch."""
        self.publisher.publish(work.outcome, work.batch)
        state_bytes = 0
        for partition, key, value in work.state:
            state_bytes += len(value)
            self.publisher.publish_state(self.settings.changelog_topic, partition, key, value)
        self.metrics.changelog_bytes.inc(state_bytes)

    def restore(self, partitions: set[Partition]) -> None:
        """The models of these input partitions, as the changelog last committed them."""
        numbers = sorted(p for t, p in partitions if t == self.settings.topic)
        if not numbers:
            return
        self.health.restoring = tuple(f"{self.settings.topic}[{n}]" for n in numbers)
        started = time.monotonic()
        try:  # the newest references first: what the previous owner may have used
            self._swap(self.references.catch_up())
            records = read_partitions(self.settings, numbers)
            if self.labels is not None:  # pending predictions; labels read on from here
                records = self.labels.restore(records, numbers)
            models = restore(self.engine, records, self.tracker)
        finally:
            self.health.restoring = ()
            self.health.beat()
        seconds = time.monotonic() - started
        self.metrics.restore_seconds.set(seconds)
        log.info(
            "restored %d models from %d state records of partitions %s in %.2f s",
            len(models),
            len(records),
            numbers,
            seconds,
        )

    def release(self, partitions: set[Partition]) -> None:
        """Forget the models of partitions this member no longer owns."""
        gone = [n for n, s in self.engine.models.items() if s.partition in partitions]
        self.engine.forget_partitions(partitions)
        self._forget(gone)

    def _forget(self, gone: list[str], metrics: bool = True) -> None:
        self.tracker.forget(gone)
        if self.labels is not None:
            self.labels.forget(gone)
        if metrics:
            self.metrics.forget_models(gone)
