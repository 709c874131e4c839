"""The state changelog topic: where state records go, and reading them back on assignment.

The changelog is co-partitioned with the input topic: a model's state lives in the changelog
partition with the number of the input partition its events come from, so the process that
is assigned input partition p restores exactly the models of p from changelog partition p.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from stream_monitor.config.settings import Settings
from stream_monitor.service.kafka_clients import (
    CONSUMER_FETCH,
    client_config,
    ensure_topics,
    input_partitions,
    new_admin,
    topic_partitions,
)
from stream_monitor.service.label_consumer import check_labels_topic
from stream_monitor.sources.kafka import FatalKafkaError
from stream_monitor.state.records import StateError, StateRecord, decode

log = logging.getLogger(__name__)

# Compaction keeps the newest record per key; segments roll small so that it happens often.
CHANGELOG_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": str(64 * 1024 * 1024),
    "min.cleanable.dirty.ratio": "0.1",
}
RESTORE_TIMEOUT_S = 120.0


def read_partitions(settings: Settings, partitions: list[int]) -> list[StateRecord]:
    """Every committed record of these changelog partitions, oldest first per partition."""
    topic = settings.changelog_topic
    consumer = Consumer(
        {
            **CONSUMER_FETCH,
            **client_config(settings),
            "group.id": f"{settings.group_id}-restore",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    records: list[StateRecord] = []
    try:
        pending: set[int] = set()
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                pending.add(p)
        if not pending:
            return records
        consumer.assign([TopicPartition(topic, p, 0) for p in sorted(pending)])
        deadline = time.monotonic() + RESTORE_TIMEOUT_S
        while pending:
            if time.monotonic() > deadline:
                raise FatalKafkaError(f"restoring {topic} {sorted(pending)} took too long")
            for msg in consumer.consume(10_000, 0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    if err.fatal():
                        raise FatalKafkaError(f"restoring {topic}: {err.str()}")
                    log.warning("restoring %s: %s", topic, err.str())
                    continue
                _append(records, msg)
    finally:
        consumer.close()
    return records


def _append(records: list[StateRecord], msg: Any) -> None:
    key, value = msg.key(), msg.value()
    if key is None or value is None:  # a tombstone: nothing to restore
        return
    try:
        records.append(decode(key, value))
    except (StateError, ValueError, KeyError) as exc:
        log.error("skipping unreadable state record %r: %s", key, exc)


def prepare_output_topics(settings: Settings, stopping: Callable[[], bool] = lambda: False) -> None:
    """Create the topics the monitor writes (alerts, dead letters, state) if absent, with as
    many partitions as the input: a model's state lives on its input partition's number.
    Waits for the broker until `stopping()`."""
    refused: list[str] = []
    admin = new_admin(settings, refused)
    n = input_partitions(admin, settings.topic, stopping, settings.bootstrap_servers, refused)
    changelog = settings.changelog_topic
    check_labels_topic(admin, settings)  # before creating anything: a clear refusal
    ensure_topics(
        admin,
        {settings.alerts_topic: n, settings.dead_letter_topic: n, changelog: n},
        {changelog: CHANGELOG_CONFIG},
    )
    have = topic_partitions(admin, changelog)
    if have < n:
        raise FatalKafkaError(
            f"state topic {changelog} has {have} partitions but {settings.topic} has {n}: "
            "they must match (add partitions to the state topic)"
        )
