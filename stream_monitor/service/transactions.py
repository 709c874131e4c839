"""Kafka transactions as librdkafka documents them: which errors retry, abort or end us.

The service decides what a batch is; this module runs the transactional calls and sorts
their errors: retriable ones are retried (through a broker outage, up to a deadline),
abortable ones raise TransactionAborted (the caller aborts and reprocesses), fatal ones
raise FatalKafkaError (fenced: another process owns our transactional id).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from stream_monitor.alerts.outcome import BatchOutcome
from stream_monitor.sources.kafka import FatalKafkaError

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 30.0
RETRY_DEADLINE_S = 300.0  # keep retrying through a broker outage this long
STUCK_AFTER_S = CALL_TIMEOUT_S + 15  # a call not back by then is blocked for good
STOP_GRACE_S = 5.0  # how long a stop waits for a transactional call in flight
WAIT_SLICE_S = 0.1
FENCED_CODES = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED}

Partition = tuple[str, int]


class TransactionAborted(Exception):
    """The transaction must be aborted and its batches reprocessed."""


@dataclass(slots=True)
class OpenTransaction:
    """The batches of the transaction in progress: their outcomes and next offsets."""

    started: float = field(default_factory=time.monotonic)
    offsets: dict[Partition, int] = field(default_factory=dict)
    outcomes: list[BatchOutcome] = field(default_factory=list)

    def add(self, outcome: BatchOutcome, offsets: dict[Partition, int]) -> None:
        self.outcomes.append(outcome)
        self.offsets.update(offsets)

    def due(self, interval_ms: int) -> bool:
        """Commit now: the interval has passed, or the last batch raised alerts (an alert
        waits for no interval: its latency is what operators are paged on)."""
        if self.outcomes and self.outcomes[-1].alerts:
            return True
        return (time.monotonic() - self.started) * 1000 >= interval_ms


class InFlightCommit:
    """A transaction's commit (its offsets, then the commit itself) running on a helper
    thread while the member computes its next batch.

    The commit mostly waits for the brokers (two round trips and the coordinators' log
    writes: 20-80 ms here under load); the next batch's engine work needs no broker. Nothing
    is produced until the commit's result is taken (`result`): a new transaction cannot
    begin before, and a failed commit rewinds the state that batch was computed on.
    """

    @classmethod
    def start(
        cls,
        producer: Any,
        txn: OpenTransaction,
        group: object,
        txn_call: Callable[[Callable[[], object], bool], None],
    ) -> InFlightCommit:
        """Start committing `txn` (its offsets in `group`), each call made by `txn_call`
        (`call` with the member's callbacks)."""
        offsets = [TopicPartition(t, p, o) for (t, p), o in txn.offsets.items()]

        def commit() -> None:
            # Not retried: a retried call can block for good once the group coordinator has
            # gone and come back (librdkafka #5456, #5511); aborting and reprocessing is safe.
            txn_call(
                lambda: producer.send_offsets_to_transaction(offsets, group, CALL_TIMEOUT_S),
                False,
            )
            txn_call(lambda: producer.commit_transaction(CALL_TIMEOUT_S), True)

        return cls(txn, commit)

    def __init__(self, txn: OpenTransaction, run: Callable[[], None]) -> None:
        self.txn = txn
        self._failure: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(run,), name="kafka-txn-commit", daemon=True
        )
        self._thread.start()

    def _run(self, run: Callable[[], None]) -> None:
        try:
            run()
        except BaseException as exc:  # handed to the member's thread by `result`
            self._failure = exc

    def result(self) -> BaseException | None:
        """Wait for the commit; what stopped it, or None once committed. The commit's own
        calls are bounded (`call`), so this wait is too."""
        self._thread.join()
        return self._failure


class Interrupted(Exception):
    """A retry through a broker outage ended because the monitor is stopping: nothing more
    is committed, and whatever was not committed is reprocessed by the next owner."""


class ProducerStuck(TransactionAborted):
    """A transactional call outlived its limit: the producer is abandoned, not reused."""


def _bounded(
    run: Callable[[], object], limit_s: float, stopping: Callable[[], bool] | None = None
) -> None:
    """Run a client call on a helper thread and wait at most `limit_s` for it, or at most
    STOP_GRACE_S once `stopping()` (a stop requested during an outage must not wait out
    the call's own timeout).

    librdkafka can block a transactional call for good once a coordinator has gone and come
    back (issues #5456, #5511); a blocked call cannot be interrupted, but it need not block
    the monitor: the caller abandons that producer and starts a new one with the same
    transactional id, whose init_transactions fences the old one (exactly-once holds).
    """
    failure: list[BaseException] = []

    def target() -> None:
        try:
            run()
        except BaseException as exc:  # handed to the waiting thread
            failure.append(exc)

    worker = threading.Thread(target=target, name="kafka-txn-call", daemon=True)
    worker.start()
    deadline = time.monotonic() + limit_s
    stop_deadline: float | None = None
    while worker.is_alive():
        now = time.monotonic()
        if now > deadline:
            raise ProducerStuck(f"a transactional call blocked for over {limit_s:.0f} s")
        if stop_deadline is None and stopping is not None and stopping():
            stop_deadline = now + STOP_GRACE_S
        if stop_deadline is not None and now > stop_deadline:
            raise Interrupted("a transactional call still blocked while stopping")
        worker.join(WAIT_SLICE_S)
    if failure:
        raise failure[0]


def call(
    run: Callable[[], object],
    retry: bool = True,
    on_retry: Callable[[], None] | None = None,
    stopping: Callable[[], bool] | None = None,
) -> None:
    """A transactional call, retried while retriable (not once `stopping()`); see the
    module docstring."""
    deadline = time.monotonic() + RETRY_DEADLINE_S
    while True:
        try:
            _bounded(run, STUCK_AFTER_S, stopping)
            return
        except KafkaException as exc:
            err = exc.args[0]
            if err.fatal():
                fenced = err.code() in FENCED_CODES
                raise FatalKafkaError(f"producer: {err.str()}", fenced=fenced) from exc
            if err.txn_requires_abort() or (err.retriable() and not retry):
                raise TransactionAborted(err.str()) from exc
            if not err.retriable() or time.monotonic() > deadline:
                raise FatalKafkaError(f"transaction: {err.str()}") from exc
            if stopping is not None and stopping():
                raise Interrupted(f"transaction call not retried: {err.str()}") from exc
            if on_retry is not None:
                on_retry()
            log.warning("transaction call failed, retrying: %s", err.str())


def abort(producer: Any, on_retry: Callable[[], None], stopping: Callable[[], bool]) -> None:
    """Abort the open transaction once; whatever stops the abort is left to a new producer.

    The abort is not retried: the caller renews the producer after any abort, and the new
    one's init_transactions aborts what the old one left open (its epoch is fenced). A retry
    would only keep the member blind: after an outage abort_transaction can keep timing out
    once the brokers are back (the client bug `_bounded` describes), and every retry
    waited CALL_TIMEOUT_S, up to RETRY_DEADLINE_S, past the consumer's poll interval.
    """
    try:
        call(lambda: producer.abort_transaction(CALL_TIMEOUT_S), False, on_retry, stopping)
    except ProducerStuck:
        log.warning("abort blocked: the producer is abandoned and will be renewed")
    except TransactionAborted as refused:  # a timeout while the brokers are away, or after
        log.warning("abort did not finish (%s): the producer will be renewed", refused)
    except FatalKafkaError as fatal:
        if fatal.fenced:
            raise
        # After an outage the coordinator may have aborted the transaction itself
        # (transaction timeout) and refuse ours: the renewed producer starts clean, and
        # its init_transactions settles whatever the old one left open.
        log.warning("abort refused (%s): the producer will be renewed", fatal)


def renewed_producer(old: Any, make: Callable[[], Any], abandoned: bool) -> Any:
    """A fresh transactional producer with the same id, after the brokers were away.

    A producer that lived through an outage can keep a dead group coordinator cached and
    then block in send_offsets_to_transaction (librdkafka #5511); a new one looks the
    coordinator up afresh. The caller's init_transactions on it fences the old one's epoch.
    """
    if not abandoned:  # an abandoned one may still be blocked on another thread
        with contextlib.suppress(KafkaException):  # the old one may be in a fatal state
            old.flush(0)
    return make()


def retrying(
    what: str, run: Callable[[], None], stopping: Callable[[], bool], on_retry: Callable[[], None]
) -> None:
    """Run `run`, retrying Kafka errors while the brokers are away (up to a deadline)."""
    deadline = time.monotonic() + RETRY_DEADLINE_S
    while True:
        try:
            run()
            return
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise FatalKafkaError(f"{what} failed: {exc}") from exc
            if stopping():
                raise Interrupted(f"{what} not retried: {exc}") from exc
            on_retry()
            log.warning("%s failed, retrying: %s", what, exc)
            time.sleep(1)  # retry pacing while the brokers are away
