"""The alerts and dead-letter topics: alerts keyed by model, bad records unchanged with
the reason in headers, deliveries confirmed before a commit."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from confluent_kafka import KafkaException

from stream_monitor.alerts.outcome import BatchOutcome
from stream_monitor.sources.records import RecordBatch

log = logging.getLogger(__name__)

# Dead-letter headers: why the record was rejected and where it came from.
HEADER_REASON = "stream-monitor.reason"
HEADER_ERROR = "stream-monitor.error"
HEADER_TOPIC = "stream-monitor.source.topic"
HEADER_PARTITION = "stream-monitor.source.partition"
HEADER_OFFSET = "stream-monitor.source.offset"


class DeliveryError(Exception):
    """Alerts or dead letters were not confirmed by the broker: offsets must not be committed."""


class KafkaPublisher:
    """Produces a batch's alerts and dead letters, then waits for every delivery report."""

    def __init__(self, producer: Any, alerts_topic: str, dead_letter_topic: str) -> None:
        self._producer = producer
        self.alerts_topic = alerts_topic
        self.dead_letter_topic = dead_letter_topic
        self._pending = 0
        self._failures: list[str] = []

    def publish(self, outcome: BatchOutcome, batch: RecordBatch) -> None:
        for alert in outcome.alerts:
            self._produce(self.alerts_topic, alert.model.encode(), alert.to_json(), None, None)
        for dead in outcome.dead_letters:
            i = dead.index
            ts = batch.timestamps[i]
            headers = [
                (HEADER_REASON, dead.reason.encode()),
                (HEADER_ERROR, dead.detail.encode("utf-8", "replace")),
                (HEADER_TOPIC, batch.topics[i].encode()),
                (HEADER_PARTITION, str(batch.partitions[i]).encode()),
                (HEADER_OFFSET, str(batch.offsets[i]).encode()),
            ]
            self._produce(
                self.dead_letter_topic,
                batch.keys[i],
                batch.values[i],
                headers,
                None if ts is None else int(ts * 1000),
            )

    def use(self, producer: Any) -> None:
        """Produce with another producer from now on (a renewed transactional one)."""
        self._producer = producer
        self._pending = 0
        self._failures = []

    def publish_state(self, topic: str, partition: int, key: bytes, value: bytes) -> None:
        self._produce(topic, key, value, None, None, partition)

    def discard(self) -> None:
        """Forget the deliveries of an aborted transaction (its messages are purged)."""
        with contextlib.suppress(KafkaException):  # a producer in a fatal state is renewed
            self._producer.poll(0)
        self._pending = 0
        self._failures = []

    def confirm(self, timeout: float) -> None:
        """Block until every message produced so far is acknowledged, or raise."""
        if self._pending == 0:
            self._producer.poll(0)
            return
        remaining = self._producer.flush(timeout)
        failures, self._failures = self._failures, []
        if remaining:
            raise DeliveryError(f"{remaining} messages not acknowledged within {timeout:g} s")
        if failures:
            raise DeliveryError("delivery failed: " + "; ".join(failures[:5]))

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None,
        timestamp_ms: int | None,
        partition: int | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"on_delivery": self._delivered}
        if partition is not None:
            kwargs["partition"] = partition
        if headers:
            kwargs["headers"] = headers
        if timestamp_ms is not None:
            kwargs["timestamp"] = timestamp_ms
        while True:
            try:
                self._producer.produce(topic, value, key, **kwargs)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.1)
        self._pending += 1

    def _delivered(self, err: Any, msg: Any) -> None:
        self._pending -= 1
        if err is not None:
            self._failures.append(f"{msg.topic()}: {err.str()}")
