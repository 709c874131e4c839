"""Kafka clients and topics as the monitor needs them (configuration in one place)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from stream_monitor.config.settings import Settings
from stream_monitor.sources.kafka import FatalKafkaError

log = logging.getLogger(__name__)

STATISTICS_INTERVAL_MS = 5000
# As Kafka Streams does under exactly-once: a crashed process's open transaction is aborted
# by the broker after this long, which bounds how long its successor waits for it.
TRANSACTION_TIMEOUT_MS = 10_000
# librdkafka postpones the next fetch of a partition by fetch.queue.backoff.ms (1 s by
# default) once its local queue holds queued.min.messages. A consumer that does work per
# message drains that queue well within the second and then waits, idle: on a 20-feature
# topic a bare consumer that only parses each value read 133k events/s at 0.3 cores with
# the default and 487k with 10 ms (docs/benchmarks.md). The user's `kafka:` settings win.
CONSUMER_FETCH = {"fetch.queue.backoff.ms": 10}
# A transaction begun right after the previous commit finds the broker still writing that
# commit's markers: AddOffsetsToTxn and AddPartitionsToTxn answer CONCURRENT_TRANSACTIONS
# and librdkafka retries after retry.backoff.ms, 100 ms by default, which an alert waits
# out. The Java client retries these after 20 ms. Retries still back off exponentially up
# to retry.backoff.max.ms (1 s) through an outage. The user's `kafka:` settings win.
TRANSACTIONAL_RETRY = {"retry.backoff.ms": 10}
WAIT_CALL_S = 2.0  # one metadata request while waiting for the broker: a stop is obeyed by then
WAIT_SAY_S = 10.0  # a line this often while no broker answers


class BrokerWaitStopped(Exception):
    """Stopped (a signal) while waiting for the broker at start-up: nothing to commit."""


# Errors from which no retry helps: the process exits so that its supervisor restarts it.
FATAL_CODES = {
    KafkaError._FATAL,
    KafkaError._AUTHENTICATION,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    KafkaError._FENCED,
}

MISSING_CODES = {
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError._UNKNOWN_TOPIC,
}


def client_config(settings: Settings) -> dict[str, Any]:
    """Settings shared by every client (the user's `kafka:` settings win). librdkafka's own
    log lines stay quiet (level 2): with no broker it writes one per connection attempt, 20
    a second; its errors reach the error callbacks, which say each one at most every few
    seconds (`service/readiness.py`)."""
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        "log_level": 2,
        **settings.kafka_settings(),
    }


def transactional_id(settings: Settings) -> str:
    """Stable with --instance-id (fast fencing on restart), else unique per process."""
    suffix = settings.instance_id or uuid.uuid4().hex[:12]
    return f"{settings.group_id}-{suffix}"


def new_consumer(settings: Settings, **callbacks: Any) -> Consumer:
    """A group member (see `consumer_config`)."""
    return Consumer(consumer_config(settings, **callbacks))


def consumer_config(settings: Settings, **callbacks: Any) -> dict[str, Any]:
    """A group member's settings; with --instance-id a static one (KIP-345): a restarted
    process takes its predecessor's place at once instead of waiting out the session
    timeout."""
    static = {"group.instance.id": settings.instance_id} if settings.instance_id else {}
    return {
        **static,
        "group.id": settings.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": settings.auto_offset_reset,
        "partition.assignment.strategy": "cooperative-sticky",
        "isolation.level": "read_committed",
        "enable.partition.eof": settings.labels_topic is not None,  # gates late labels
        "statistics.interval.ms": STATISTICS_INTERVAL_MS,
        **CONSUMER_FETCH,
        **callbacks,
        **client_config(settings),
    }


def seek_committed(
    consumer: Any, partitions: set[tuple[str, int]], reset: str, timeout: float
) -> None:
    """Seek each partition to its committed offset (`reset`, "earliest" or "latest", where
    none is): where an aborted transaction's batches are read again from."""
    tps = [TopicPartition(t, p) for t, p in sorted(partitions)]
    committed = consumer.committed(tps, timeout=timeout)
    start = OFFSET_BEGINNING if reset == "earliest" else OFFSET_END
    for tp in committed:
        consumer.seek(
            TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else start)
        )


def commit_offsets(consumer: Any, offsets: dict[tuple[str, int], int], asynchronous: bool) -> bool:
    """Commit the group's next offsets (at least once); False when the commit failed, which
    means reprocessing, not loss."""
    if not offsets:
        return True
    try:
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
            asynchronous=asynchronous,
        )
    except KafkaException as exc:
        log.warning("offset commit failed: %s", exc)
        return False
    return True


def new_producer(settings: Settings, txn_id: str | None = None, **callbacks: Any) -> Producer:
    """An idempotent producer; a transactional one when `txn_id` is given."""
    return Producer({**producer_config(settings, txn_id), **callbacks})


def producer_config(settings: Settings, txn_id: str | None = None) -> dict[str, Any]:
    """The configuration `new_producer` gives librdkafka (callbacks aside)."""
    conf: dict[str, Any] = {"enable.idempotence": True, "linger.ms": 5}
    if txn_id is not None:
        conf["transactional.id"] = txn_id
        conf["transaction.timeout.ms"] = TRANSACTION_TIMEOUT_MS
        conf.update(TRANSACTIONAL_RETRY)
    return {**conf, **client_config(settings)}


def input_partitions(
    admin: Any,
    topic: str,
    stopping: Callable[[], bool] = lambda: False,
    bootstrap: str = "",
    refused: list[str] | None = None,
) -> int:
    """Partitions of the input topic (1 if it does not exist yet). Waits for the broker
    as long as it takes, saying so every `WAIT_SAY_S`; `stopping()` ends the wait within
    `WAIT_CALL_S` (raises `BrokerWaitStopped`), a fatal client error in `refused` (the
    admin client's, see `new_admin`) ends it with `FatalKafkaError`."""
    started = said = time.monotonic()
    while True:
        if stopping():
            raise BrokerWaitStopped(f"stopped while waiting for Kafka at {bootstrap}")
        admin.poll(0)  # serves the error callback (`refused`)
        if refused:
            raise FatalKafkaError(f"not allowed in: {refused[0]}")
        try:
            meta = admin.list_topics(topic=topic, timeout=WAIT_CALL_S)
            found = meta.topics.get(topic)
            if found is not None and found.error is None:
                return max(1, len(found.partitions))
            return 1
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() in (
                KafkaError._AUTHENTICATION,
                KafkaError.SASL_AUTHENTICATION_FAILED,
                KafkaError.TOPIC_AUTHORIZATION_FAILED,
                KafkaError.CLUSTER_AUTHORIZATION_FAILED,
            ):
                raise FatalKafkaError(f"not allowed in: {err.str()}") from exc
            now = time.monotonic()
            if now - said >= WAIT_SAY_S:
                said = now
                log.warning(
                    "no Kafka broker answers at %s yet (waiting %.0f s; Ctrl-C stops)",
                    bootstrap,
                    now - started,
                )
            time.sleep(0.5)  # retry pacing while the broker comes up


def topic_partitions(admin: Any, topic: str, deadline_s: float = 15.0) -> int:
    """Partitions of a topic, waiting while a just-created topic's metadata propagates."""
    deadline = time.monotonic() + deadline_s
    while True:
        found = admin.list_topics(topic=topic, timeout=10).topics.get(topic)
        count = 0 if found is None or found.error is not None else len(found.partitions)
        if count or time.monotonic() > deadline:
            return count
        time.sleep(0.2)  # metadata of a new topic reaches the brokers' caches shortly


def ensure_topics(
    admin: Any, topics: dict[str, int], configs: dict[str, dict[str, str]] | None = None
) -> None:
    """Create the monitor's own topics (name -> partitions) when they are missing."""
    existing = admin.list_topics(timeout=10).topics
    missing = [name for name in topics if name not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [
            NewTopic(
                name,
                num_partitions=topics[name],
                replication_factor=-1,
                config=(configs or {}).get(name, {}),
            )
            for name in missing
        ]
    )
    for name, future in futures.items():
        try:
            future.result(timeout=30)
            log.info("created topic %s with %d partitions", name, topics[name])
        except Exception as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            log.warning("could not create topic %s: %s", name, exc)


def new_admin(settings: Settings, refused: list[str] | None = None) -> AdminClient:
    """An admin client; with `refused`, the texts of its fatal errors (a wrong password,
    say) are appended there, for a wait for the broker to end on them."""
    if refused is None:
        return AdminClient(client_config(settings))

    def on_error(err: KafkaError) -> None:
        if err.fatal() or err.code() in FATAL_CODES:
            refused.append(err.str())

    config: dict[str, Any] = {**client_config(settings), "error_cb": on_error}
    return AdminClient(config)
