"""The labels topic on the Kafka side: a second consumer that follows the predictions partitions.

Labels are keyed by model like predictions, and the labels topic has as many partitions: the
labels of a model land on the partition number of its predictions. So the member that owns
predictions partition p reads labels partition p, by manual assignment (no group, no
commits): its position is part of the durable state, written to the changelog in the
transaction of the batch that consumed the labels, and the consumer starts from it again
whenever partition p is (re)assigned or its transaction is aborted.

A label can only join a prediction already consumed. While the predictions of partition p
are behind (catching up after a restart, say), a label is held until they have been
consumed up to its Kafka timestamp, or to their end: the label partition is paused at that
label, so the predictions partition, never held, cannot be stalled by labels.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from stream_monitor.config.settings import Settings
from stream_monitor.service.kafka_clients import (
    CONSUMER_FETCH,
    STATISTICS_INTERVAL_MS,
    client_config,
)
from stream_monitor.sources.kafka import FatalKafkaError, MissingTopicError, batch_from_messages
from stream_monitor.sources.records import RecordBatch

log = logging.getLogger(__name__)


def check_labels_topic(admin: Any, settings: Settings) -> None:
    """The labels topic must exist with the partition count of the predictions topic."""
    labels, topic = settings.labels_topic, settings.topic
    if labels is None:
        return
    meta = admin.list_topics(timeout=10).topics
    found = meta.get(topic)
    if found is None or found.error is not None:  # the monitor waits for its input
        log.warning("predictions topic %s absent: the labels topic is checked later", topic)
        return
    want = len(found.partitions)
    have = meta.get(labels)
    if have is None or have.error is not None:
        raise FatalKafkaError(
            f"labels topic {labels} does not exist: create it with {want} partitions (as "
            f"{topic}), keyed by model"
        )
    if len(have.partitions) != want:
        raise FatalKafkaError(
            f"labels topic {labels} has {len(have.partitions)} partitions but {topic} has "
            f"{want}: they must match, so that a model's labels share its predictions' partition"
        )


class LabelSource:
    """Reads the labels partitions matching this member's predictions partitions."""

    def __init__(self, settings: Settings, **callbacks: Any) -> None:
        assert settings.labels_topic is not None
        self.topic = settings.labels_topic
        self._predictions = settings.topic
        self._start = OFFSET_BEGINNING if settings.auto_offset_reset == "earliest" else OFFSET_END
        self._consumer = Consumer(
            {
                "group.id": f"{settings.group_id}-labels",  # never joined, never committed
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": settings.auto_offset_reset,  # a position no longer there
                "isolation.level": "read_committed",
                "statistics.interval.ms": STATISTICS_INTERVAL_MS,  # its lag, as a metric
                **CONSUMER_FETCH,
                **callbacks,
                **client_config(settings),
            }
        )
        self.assigned: set[int] = set()
        self._frontier: dict[int, float] = {}  # Kafka time of the last prediction consumed
        self._at_end: set[int] = set()  # predictions partitions consumed to their end
        self._held: dict[int, float] = {}  # paused labels partitions: the held label's time

    # -- assignment ----------------------------------------------------------------------

    def assign(self, positions: dict[int, int | None]) -> None:
        """(Re)start these partitions at these offsets (None: where a new group starts)."""
        again = [TopicPartition(self.topic, p) for p in positions if p in self.assigned]
        if again:  # after an abort: back to the committed position, prefetched data dropped
            self._consumer.incremental_unassign(again)
        self._consumer.incremental_assign(
            [
                TopicPartition(self.topic, p, self._start if o is None else o)
                for p, o in sorted(positions.items())
            ]
        )
        self.assigned |= set(positions)
        self._reset(set(positions))

    def unassign(self, partitions: set[int]) -> None:
        gone = sorted(partitions & self.assigned)
        if gone:
            self._consumer.incremental_unassign([TopicPartition(self.topic, p) for p in gone])
        self.assigned -= partitions
        self._reset(partitions)

    def _reset(self, partitions: set[int]) -> None:
        for p in partitions:
            self._frontier.pop(p, None)
            self._at_end.discard(p)
            self._held.pop(p, None)

    def close(self) -> None:
        self._consumer.close()

    # -- the gate ------------------------------------------------------------------------

    def seen(self, batch: RecordBatch) -> None:
        """Predictions consumed (and partition ends reached): how far labels may go."""
        last = dict(zip(batch.partitions, batch.timestamps, strict=True))  # the last per partition
        for p, ts in last.items():
            self._at_end.discard(p)
            if ts is not None:
                self._frontier[p] = max(self._frontier.get(p, -math.inf), ts)
        for topic, p in batch.ends:  # the end came after the partition's messages
            if topic == self._predictions:
                self._at_end.add(p)

    def _open(self, partition: int, timestamp: float | None) -> bool:
        return (
            partition in self._at_end
            or timestamp is None
            or timestamp <= self._frontier.get(partition, -math.inf)
        )

    def poll(self, max_messages: int) -> RecordBatch:
        """The labels that may be joined now, without waiting (an empty batch if none)."""
        for p, since in list(self._held.items()):
            if self._open(p, since):
                self._consumer.resume([TopicPartition(self.topic, p)])
                del self._held[p]
        messages = self._consumer.consume(num_messages=max_messages, timeout=0)
        if not messages:
            return RecordBatch()
        try:
            raw = batch_from_messages(messages)
        except MissingTopicError as exc:
            raise FatalKafkaError(f"labels topic {self.topic}: {exc}") from exc
        out = RecordBatch()
        for i, p in enumerate(raw.partitions):
            ts = raw.timestamps[i]
            if p in self._held or p not in self.assigned:
                continue
            if ts is not None and not self._open(p, ts):  # pause here; read again once open
                tp = TopicPartition(self.topic, p, raw.offsets[i])
                self._consumer.pause([tp])
                self._consumer.seek(tp)
                self._held[p] = ts
                continue
            out.append(raw.keys[i], raw.values[i], raw.topics[i], p, raw.offsets[i], ts)
        return out
