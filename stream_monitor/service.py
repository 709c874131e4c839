"""`stream-monitor run`: the consume -> engine -> publish -> commit loop on Kafka.

At least once: a batch's alerts and dead letters are acknowledged by the broker before the
batch's offsets are committed. A stop request (SIGTERM/SIGINT) lets the current batch finish,
commits, and leaves the group cleanly.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from stream_monitor.config import Settings
from stream_monitor.engine import Engine
from stream_monitor.http import HttpEndpoints
from stream_monitor.metrics import Metrics
from stream_monitor.reference import PreparedReference
from stream_monitor.sinks import DeliveryError, KafkaPublisher
from stream_monitor.sources import FatalKafkaError, batch_from_messages

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT_S = 60.0
STATISTICS_INTERVAL_MS = 5000


def client_config(settings: Settings) -> dict[str, Any]:
    """Settings shared by consumer, producer and admin client (user's `kafka:` wins)."""
    return {"bootstrap.servers": settings.bootstrap_servers, **settings.kafka}


def ensure_topics(admin: Any, names: list[str], partitions: int) -> None:
    """Create the output topics if they are missing (the input topic is the producers')."""
    existing = admin.list_topics(timeout=10).topics
    missing = [n for n in names if n not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=-1) for n in missing]
    )
    for name, future in futures.items():
        try:
            future.result(timeout=30)
            log.info("created topic %s with %d partitions", name, partitions)
        except Exception as exc:
            if getattr(exc.args[0] if exc.args else None, "code", lambda: None)() == (
                KafkaError.TOPIC_ALREADY_EXISTS
            ):
                continue
            log.warning("could not create topic %s: %s", name, exc)


class MonitorService:
    """One consumer-group member running the engine."""

    def __init__(self, settings: Settings, references: dict[str, PreparedReference]) -> None:
        self.settings = settings
        self.engine = Engine(settings.detector_settings(), references)
        self.metrics = Metrics()
        self._stop = threading.Event()
        self._assigned: set[tuple[str, int]] = set()
        self._next_offsets: dict[tuple[str, int], int] = {}
        self._committed_once = False
        common = client_config(settings)
        self._consumer = Consumer(
            {
                **{
                    "group.id": settings.group_id,
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": settings.auto_offset_reset,
                    "partition.assignment.strategy": "cooperative-sticky",
                    "statistics.interval.ms": STATISTICS_INTERVAL_MS,
                    "stats_cb": self._on_stats,
                    "error_cb": self._on_error,
                },
                **common,
            }
        )
        self._producer = Producer(
            {
                **{"enable.idempotence": True, "linger.ms": 5, "error_cb": self._on_error},
                **common,
            }
        )
        self._publisher = KafkaPublisher(
            self._producer, settings.alerts_topic, settings.dead_letter_topic
        )
        self._fatal: str | None = None
        self.http = HttpEndpoints(
            settings.metrics_host,
            settings.metrics_port,
            self.metrics.registry,
            self.ready,
            self.status,
        )

    # -- lifecycle -----------------------------------------------------------------------

    def request_stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        if signum is not None:
            log.info("received %s: finishing the batch", signal.Signals(signum).name)
        self._stop.set()

    def run(self) -> int:
        """Consume until stopped; 0 on a clean stop, 1 on an unrecoverable error."""
        s = self.settings
        self.http.start()
        log.info(
            "consuming %s as group %s from %s; metrics on http://%s:%d/metrics",
            s.topic,
            s.group_id,
            s.bootstrap_servers,
            s.metrics_host,
            self.http.port,
        )
        code = 0
        try:
            admin = AdminClient(client_config(s))
            partitions = self._input_partitions(admin)
            ensure_topics(admin, [s.alerts_topic, s.dead_letter_topic], partitions)
            self._consumer.subscribe(
                [s.topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            while not self._stop.is_set():
                if self._fatal:
                    raise FatalKafkaError(self._fatal)
                self._step()
        except (FatalKafkaError, DeliveryError) as exc:
            log.error("stopping without committing the current batch: %s", exc)
            code = 1
        finally:
            self._shutdown(clean=code == 0)
        return code

    def _step(self) -> None:
        messages = self._consumer.consume(num_messages=self.settings.batch_size, timeout=0.5)
        if not messages:
            self._producer.poll(0)
            return
        batch = batch_from_messages(messages)
        if not len(batch):
            return
        outcome = self.engine.process(batch)
        self._publisher.publish(outcome, batch)
        self._publisher.confirm(DELIVERY_TIMEOUT_S)  # raises DeliveryError: nothing committed
        self.metrics.record(outcome)
        for topic, partition, offset in zip(
            batch.topics, batch.partitions, batch.offsets, strict=True
        ):
            self._next_offsets[(topic, partition)] = offset + 1
        self._commit(asynchronous=True)

    def _commit(self, asynchronous: bool, only: set[tuple[str, int]] | None = None) -> None:
        offsets = [
            TopicPartition(t, p, o)
            for (t, p), o in self._next_offsets.items()
            if only is None or (t, p) in only
        ]
        if not offsets:
            return
        try:
            if asynchronous:
                self._consumer.commit(offsets=offsets, asynchronous=True)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as exc:  # a failed commit means reprocessing, not loss
            log.warning("offset commit failed: %s", exc)

    def _shutdown(self, clean: bool) -> None:
        try:
            if clean:
                self._publisher.confirm(DELIVERY_TIMEOUT_S)
                self._commit(asynchronous=False)
            self._consumer.close()
        finally:
            self._producer.flush(10)
            self.http.stop()
            log.info("stopped")

    # -- readiness and status ------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        if self._fatal:
            return False, f"fatal error: {self._fatal}"
        if not self._assigned:
            return False, "no partitions assigned yet"
        return True, f"{len(self._assigned)} partitions assigned"

    def status(self) -> dict[str, object]:
        status = self.engine.status()
        status["assigned_partitions"] = sorted(f"{t}[{p}]" for t, p in self._assigned)
        status["references_loaded"] = sorted(self.engine.references)
        return status

    # -- client callbacks (run inside consume()) -----------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            self._assigned.add((tp.topic, tp.partition))
        log.info("assigned %s", [f"{tp.topic}[{tp.partition}]" for tp in partitions])

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self._commit(asynchronous=False, only=revoked)
        self._release(revoked)
        log.info("revoked %s", sorted(f"{t}[{p}]" for t, p in revoked))

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        lost = {(tp.topic, tp.partition) for tp in partitions}
        self._release(lost)
        log.warning("lost %s", sorted(f"{t}[{p}]" for t, p in lost))

    def _release(self, partitions: set[tuple[str, int]]) -> None:
        self._assigned -= partitions
        for key in partitions:
            self._next_offsets.pop(key, None)
            self.metrics.forget_partition(*key)
        self.engine.forget_partitions(partitions)

    def _on_stats(self, stats_json: str) -> None:
        try:
            self.metrics.record_statistics(stats_json, self._assigned)
        except Exception:
            log.exception("could not read client statistics")

    def _on_error(self, err: Any) -> None:
        if err.fatal():
            self._fatal = err.str()
        elif err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            log.warning("kafka: %s", err.str())
        else:
            log.info("kafka: %s", err.str())

    def _input_partitions(self, admin: Any) -> int:
        deadline = time.monotonic() + 30
        while True:
            try:
                meta = admin.list_topics(topic=self.settings.topic, timeout=10)
                topic = meta.topics.get(self.settings.topic)
                if topic is not None and topic.error is None:
                    return max(1, len(topic.partitions))
                return 1
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise FatalKafkaError(
                        f"cannot reach {self.settings.bootstrap_servers}: {exc}"
                    ) from exc
                time.sleep(1)
