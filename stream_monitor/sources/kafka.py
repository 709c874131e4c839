"""Consumed Kafka messages as a RecordBatch, and the consumer errors that end the process."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    KafkaError,
)

from stream_monitor.sources.records import RecordBatch


class FatalKafkaError(Exception):
    """An error the client cannot recover from; the process should exit non-zero.

    `fenced`: another process now holds this process's transactional id or group instance.
    """

    def __init__(self, message: str, fenced: bool = False) -> None:
        super().__init__(message)
        self.fenced = fenced


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
