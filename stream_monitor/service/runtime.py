"""`stream-monitor run`: consume -> engine -> publish -> commit, as one consumer-group member.

Exactly once (default): a Kafka transaction holds a batch's alerts, dead letters, state
records and offsets; its commit runs while the next batch is computed. At least once: they
are acknowledged before offsets are committed. Either way a model's window and alert state
come back from the changelog on assignment.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from confluent_kafka import KafkaException

from stream_monitor.config.settings import Settings
from stream_monitor.engine.core import Engine
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.service import transactions
from stream_monitor.service.changelog import prepare_output_topics
from stream_monitor.service.endpoints import HttpEndpoints
from stream_monitor.service.kafka_clients import (
    BrokerWaitStopped,
    commit_offsets,
    new_consumer,
    new_producer,
    seek_committed,
    transactional_id,
)
from stream_monitor.service.label_feed import LabelFeed
from stream_monitor.service.model_state import ModelKeeper
from stream_monitor.service.readiness import Readiness
from stream_monitor.sinks.kafka import DeliveryError, KafkaPublisher
from stream_monitor.sinks.prometheus import Metrics
from stream_monitor.sinks.webhooks import WebhookDispatcher
from stream_monitor.sources.kafka import FatalKafkaError, MissingTopicError, batch_from_messages
from stream_monitor.sources.records import RecordBatch, next_offsets

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT_S = 60.0
Partition = tuple[str, int]


class MonitorService:
    """One consumer-group member running the engine."""

    def __init__(self, settings: Settings, references: dict[str, PreparedReference]) -> None:
        self.settings = settings
        self.exactly_once = settings.processing_guarantee == "exactly-once"
        self.engine = Engine(
            settings.detector_settings(), references, native_threads=settings.native_threads
        )
        self.metrics = Metrics(feature_limit=settings.feature_metrics)
        self._stop = threading.Event()
        self._subscribed = False  # the broker answered and the group was joined
        self._assigned: set[Partition] = set()
        self._ever_assigned = False
        self.health = Readiness()
        self._next_offsets: dict[Partition, int] = {}
        # the open transaction (exactly-once): it spans batches for --commit-interval-ms
        self._txn: transactions.OpenTransaction | None = None
        self._committing: transactions.InFlightCommit | None = None  # the last one's commit
        self._producer_abandoned = False  # a call of it blocked: never touch it again
        self._consumer = new_consumer(settings, stats_cb=self._on_stats, error_cb=self._on_error)
        self.labels = LabelFeed.of(settings, self.engine, self.metrics, error_cb=self._on_error)
        self._txn_id = transactional_id(settings) if self.exactly_once else None
        self._producer = new_producer(settings, self._txn_id, error_cb=self._on_producer_error)
        self._renew_producer = False  # set when the brokers were away (see _transaction)
        self._publisher = KafkaPublisher(
            self._producer, settings.alerts_topic, settings.dead_letter_topic
        )
        self.models = ModelKeeper(
            settings, self.engine, self.labels, self._publisher, self.metrics, self.health
        )
        self.webhooks = WebhookDispatcher(settings.webhooks, on_result=self.metrics.webhook_result)
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
            "consuming %s as group %s from %s (%s); metrics on http://%s:%d/metrics",
            s.topic,
            s.group_id,
            s.bootstrap_servers,
            s.processing_guarantee,
            s.metrics_host,
            self.http.port,
        )
        code = 0
        try:
            prepare_output_topics(self.settings, self._stop.is_set)
            if self.exactly_once:
                self._txn_call(
                    lambda: self._producer.init_transactions(transactions.CALL_TIMEOUT_S)
                )
            self._consumer.subscribe(
                [s.topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            self._subscribed = True
            while not self._stop.is_set():
                if self.health.fatal:
                    raise FatalKafkaError(self.health.fatal)
                self._step()
        except (FatalKafkaError, DeliveryError, KafkaException) as exc:
            log.error("stopping without committing the current batch: %s", exc)
            code = 1
        except transactions.Interrupted as exc:  # stopped while the brokers were away
            log.warning("stopping without committing (reprocessed by the next owner): %s", exc)
            code = 1 if self.health.fatal else 0
        except BrokerWaitStopped:  # stopped before any broker answered: nothing to commit
            self.health.broker_up = False
        finally:
            self._shutdown(clean=code == 0)
        return code

    def _shutdown(self, clean: bool) -> None:
        """Commit what was processed if the brokers are there to take it; otherwise leave it
        to the next owner (no waiting out an outage past a supervisor's grace period)."""
        self._stop.set()  # a transactional call from here on waits STOP_GRACE_S at most
        try:
            if clean and self.health.broker_up:
                self._commit_all()
                if not self.exactly_once:
                    self._publisher.confirm(DELIVERY_TIMEOUT_S)
                    self._commit_offsets(asynchronous=False)
        except transactions.Interrupted as exc:
            log.warning("stopping: %s", exc)
        if self._txn or self._committing or (self._subscribed and not self.health.broker_up):
            log.warning("brokers unreachable: the last batches are left to the next owner")
            # aborted by the coordinator (transaction.timeout.ms) unless a commit in flight made it
            self._txn = self._committing = None
        try:
            self._consumer.close()
        finally:
            try:
                self._producer.flush(10 if self.health.broker_up else 0)
            except KafkaException as exc:  # a producer in a fatal state has nothing to flush
                log.warning("producer flush at shutdown: %s", exc)
            if self.labels is not None:
                self.labels.close()
            self.webhooks.close(timeout=5)
            self.http.stop()
            log.info("stopped")

    # -- one batch -----------------------------------------------------------------------

    def _step(self) -> None:
        self.models.beat()
        busy = self._predictions()
        if self.labels is not None:  # labels never wait: whatever may be joined now
            labels = self.labels.poll(self.settings.batch_size)
            if len(labels):
                self._handle(labels)
                busy = True
        if not busy and self._finish_commit():
            with contextlib.suppress(KafkaException):  # a fatal producer is renewed, not polled
                self._producer.poll(0)
            if self._txn is not None:  # idle: what is pending commits now, not later
                self._start_commit()

    def _predictions(self) -> bool:
        """Consume and handle a batch of predictions; whether there was one."""
        limit = self.settings.max_batch_wait_ms / 1000
        wait = limit if self.labels is None else min(limit, self.labels.prediction_wait_s)
        messages = self._consumer.consume(num_messages=self.settings.batch_size, timeout=wait)
        if not messages:
            return False
        try:
            batch = batch_from_messages(messages)
        except MissingTopicError as exc:
            if self._ever_assigned:
                raise FatalKafkaError(f"topic {self.settings.topic} was deleted: {exc}") from exc
            log.warning("waiting for topic %s: %s", self.settings.topic, exc)
            return False
        if self.labels is not None:
            self.labels.seen(batch)
        if not len(batch):
            return False
        self._handle(batch)
        return True

    def _handle(self, batch: RecordBatch) -> None:
        self.health.broker_up = True
        (self._transaction if self.exactly_once else self._at_least_once)(batch)

    def _at_least_once(self, batch: RecordBatch) -> None:
        outcome = self.models.process(batch)
        self._publisher.confirm(DELIVERY_TIMEOUT_S)  # raises DeliveryError: nothing committed
        self.metrics.record(outcome)
        self._next_offsets.update(next_offsets(batch, self.settings.topic))
        self._commit_offsets(asynchronous=True)
        self.webhooks.offer(outcome.alerts)

    def _transaction(self, batch: RecordBatch) -> None:
        """Add a batch to the open transaction; commit it once the interval has passed. It
        is computed while the last commit runs, produced once that is through."""
        work = self.models.compute(batch)
        if not self._finish_commit():
            return
        if self._txn is None:
            if self._renew_producer:
                self._retrying("renewing the transactional producer", self._new_txn_producer)
            self._producer.begin_transaction()
            self._txn = transactions.OpenTransaction()
        try:
            self.models.publish(work)
        except KafkaException as exc:  # the producer refused a message: start over
            self._fail_transaction(transactions.TransactionAborted(str(exc)))
            return
        self._txn.add(work.outcome, next_offsets(batch, self.settings.topic))
        if self._txn.due(self.settings.commit_interval_ms):
            self._start_commit()

    def _commit_all(self) -> None:
        """Finish the commit in flight, then commit the open transaction and wait for it."""
        if self._finish_commit() and self._txn is not None:
            self._start_commit()
            self._finish_commit()

    def _start_commit(self) -> None:
        """Commit the open transaction on a helper thread (see InFlightCommit)."""
        assert self._txn is not None and self._committing is None
        self._committing = transactions.InFlightCommit.start(
            self._producer, self._txn, self._consumer.consumer_group_metadata(), self._txn_call
        )
        self._txn = None

    def _finish_commit(self) -> bool:
        """Wait for the commit in flight, if any: its alerts and counts go out; a failure
        aborts and rewinds (False: whatever was computed since is void)."""
        committing, self._committing = self._committing, None
        if committing is None:
            return True
        failure = committing.result()
        if isinstance(failure, transactions.TransactionAborted | FatalKafkaError):
            self._fail_transaction(failure)
            return False
        if failure is not None:  # stopping (Interrupted), or a bug: the member ends
            raise failure
        self._publisher.discard()  # delivered with the commit; nothing left to confirm
        for outcome in committing.txn.outcomes:
            self.metrics.record(outcome)
            self.webhooks.offer(outcome.alerts)  # committed alerts only; at least once
        return True

    def _fail_transaction(self, exc: Exception) -> None:
        """Abort (when the producer still can) and reprocess from the committed point."""
        if isinstance(exc, FatalKafkaError) and exc.fenced:
            raise exc
        log.warning("aborting the transaction and reprocessing its batches: %s", exc)
        self._renew_producer = True
        self.metrics.transaction_aborts.inc()
        if isinstance(exc, transactions.ProducerStuck):
            self._producer_abandoned = True
            self.health.broker_up = False
        elif isinstance(exc, transactions.TransactionAborted):
            transactions.abort(self._producer, self._brokers_away, self._stopping)
        self._publisher.discard()
        self._txn = None
        self._rewind()

    def _new_txn_producer(self) -> None:
        self._producer = transactions.renewed_producer(
            self._producer,
            lambda: new_producer(self.settings, self._txn_id, error_cb=self._on_producer_error),
            self._producer_abandoned,
        )
        self._producer_abandoned = False
        producer = self._producer
        self._txn_call(lambda: producer.init_transactions(transactions.CALL_TIMEOUT_S))
        log.info("transactional producer renewed after the brokers were unreachable")
        self._publisher.use(self._producer)
        self._renew_producer = False

    def _retrying(self, what: str, run: Callable[[], None]) -> None:
        transactions.retrying(what, run, self._stopping, self._brokers_away)

    def _txn_call(self, run: Callable[[], object], retry: bool = True) -> None:
        transactions.call(run, retry, self._brokers_away, self._stopping)

    def _stopping(self) -> bool:
        return self._stop.is_set() or self.health.fatal is not None

    def _brokers_away(self) -> None:
        self.health.broker_up = False

    def _rewind(self) -> None:
        """After an abort: back to the committed offsets and the committed state, retried
        while the brokers are unreachable (an abort often comes from an outage)."""
        assigned, reset = self._assigned.copy(), self.settings.auto_offset_reset

        def rewind() -> None:
            seek_committed(self._consumer, assigned, reset, transactions.CALL_TIMEOUT_S)
            self.models.release(assigned)
            self.models.restore(assigned)

        self._retrying("rewind after an abort", rewind)

    def _commit_offsets(self, asynchronous: bool, only: set[Partition] | None = None) -> None:
        offsets = {k: o for k, o in self._next_offsets.items() if only is None or k in only}
        if not commit_offsets(self._consumer, offsets, asynchronous):
            self.metrics.commit_failures.inc()

    # -- readiness and status ------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        return self.health.check(len(self._assigned))

    def status(self) -> dict[str, object]:
        status = self.engine.status()
        status["assigned_partitions"] = sorted(f"{t}[{p}]" for t, p in self._assigned)
        # a member taking partitions over lists their models only once restored
        status["restoring_partitions"] = list(self.health.restoring)
        status["references_loaded"] = sorted(self.engine.references)
        status["processing_guarantee"] = self.settings.processing_guarantee
        if self.labels is not None:
            self.labels.status(status)
        return status

    # -- client callbacks (run inside consume()) -----------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        added = {(tp.topic, tp.partition) for tp in partitions}
        self.metrics.rebalances.inc()
        log.info("assigned %s", sorted(f"{t}[{p}]" for t, p in added))
        self._retrying("state restore", lambda: self.models.restore(added))
        self._assigned |= added
        self._ever_assigned = True

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self.metrics.rebalances.inc()
        # commit what was done for these partitions first
        self._commit_all()
        if not self.exactly_once and self.health.broker_up:
            self._commit_offsets(asynchronous=False, only=revoked)
        self._release(revoked)
        log.info("revoked %s", sorted(f"{t}[{p}]" for t, p in revoked))

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        lost = {(tp.topic, tp.partition) for tp in partitions}
        self._release(lost)
        log.warning("lost %s", sorted(f"{t}[{p}]" for t, p in lost))

    def _release(self, partitions: set[Partition]) -> None:
        self._assigned -= partitions
        for key in partitions:
            self._next_offsets.pop(key, None)
            self.metrics.forget_partition(*key)
        self.models.release(partitions)
        if self.labels is not None:
            self.labels.release(partitions)

    def _on_stats(self, stats_json: str) -> None:
        try:
            self.health.broker_up = self.metrics.record_statistics(stats_json, self._assigned)
        except Exception:  # statistics must never break consumption
            log.exception("could not read client statistics")

    def _on_producer_error(self, err: Any) -> None:
        """Under exactly-once a fatal producer error that is not fencing ends only the current
        transaction: the producer is renewed and the batch reprocessed."""
        if self.exactly_once and err.fatal() and err.code() not in transactions.FENCED_CODES:
            log.error("producer: %s (it will be renewed)", err.str())
            self._renew_producer = True
            return
        self._on_error(err)

    def _on_error(self, err: Any) -> None:
        s = self.settings
        topics = (s.topic, s.alerts_topic, s.dead_letter_topic, s.changelog_topic, s.labels_topic)
        if self.health.client_error(err, topics, self._ever_assigned):  # every broker is down
            self._renew_producer = self.exactly_once
