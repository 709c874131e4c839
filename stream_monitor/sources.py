"""Where records come from: Kafka messages or a JSONL file, both as RecordBatch."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError

from stream_monitor.events import RecordBatch
from stream_monitor.kafka_clients import FatalKafkaError

log = logging.getLogger(__name__)


class MissingTopicError(Exception):
    """The subscribed topic does not exist (yet, or any more)."""


def batch_from_messages(messages: Sequence[Any]) -> RecordBatch:
    """Turn consumed messages into a RecordBatch, skipping end-of-partition notices.

    A fatal client error raises FatalKafkaError, a missing topic MissingTopicError; other
    per-message errors are logged (librdkafka retries them itself).
    """
    batch = RecordBatch()
    append = batch.append
    for msg in messages:
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                batch.ends.add((msg.topic(), msg.partition()))
                continue
            if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise MissingTopicError(err.str())
            if err.fatal() or err.code() in (
                KafkaError._FATAL,
                KafkaError._FENCED,
                KafkaError.TOPIC_AUTHORIZATION_FAILED,
                KafkaError._AUTHENTICATION,
                KafkaError.SASL_AUTHENTICATION_FAILED,
            ):
                raise FatalKafkaError(f"consumer error: {err.str()}")
            log.warning("consumer error: %s", err.str())
            continue
        ts_type, ts = msg.timestamp()
        append(
            msg.key(),
            msg.value(),
            msg.topic(),
            msg.partition(),
            msg.offset(),
            None if ts_type == TIMESTAMP_NOT_AVAILABLE else ts / 1000.0,
        )
    return batch


def next_offsets(batch: RecordBatch, only: str | None = None) -> dict[tuple[str, int], int]:
    """Per partition, the offset after the batch's last record (what a commit records); with
    `only`, the partitions of that topic alone (labels are not the group's to commit)."""
    offsets: dict[tuple[str, int], int] = {}
    for topic, partition, offset in zip(batch.topics, batch.partitions, batch.offsets, strict=True):
        if only is None or topic == only:
            offsets[(topic, partition)] = offset + 1
    return offsets


def file_batches(path: Path, batch_size: int) -> Iterator[RecordBatch]:
    """Batches of a JSONL file of prediction events, as if read from partition 0 of a topic
    named after the file, the offset being the line index. Records have no key: each event
    names its model in its `model` field.
    """
    topic = path.name
    batch = RecordBatch()
    with path.open("rb") as fh:
        for offset, line in enumerate(fh):
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            batch.append(None, line, topic, 0, offset, None)
            if len(batch) >= batch_size:
                yield batch
                batch = RecordBatch()
    if len(batch):
        yield batch
