"""When the open transaction commits (after its interval, or at once after alerts), and
how an abort that cannot finish is left to a renewed producer."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException

from stream_monitor.alerts.contract import Alert
from stream_monitor.alerts.outcome import BatchOutcome
from stream_monitor.service import transactions
from stream_monitor.service.transactions import OpenTransaction
from stream_monitor.sources.kafka import FatalKafkaError


def _alert() -> Alert:
    return Alert.model_construct(model="m", kind="input_drift", status="firing")


def test_a_batch_with_alerts_commits_without_waiting_for_the_interval() -> None:
    txn = OpenTransaction()
    txn.add(BatchOutcome(), {("predictions", 0): 10})
    assert not txn.due(60_000)  # quiet batches wait for the interval
    with_alert = BatchOutcome()
    with_alert.alerts.append(_alert())
    txn.add(with_alert, {("predictions", 0): 20})
    assert txn.due(60_000)
    assert txn.offsets == {("predictions", 0): 20}


def test_the_interval_still_bounds_a_quiet_transaction() -> None:
    txn = OpenTransaction(started=0.0)  # monotonic clock: long ago
    txn.add(BatchOutcome(), {("predictions", 0): 10})
    assert txn.due(100)
    assert not OpenTransaction().due(60_000)


class _TimingOutProducer:
    """A producer whose abort always times out, as after an outage (the client bug)."""

    def __init__(self) -> None:
        self.aborts = 0

    def abort_transaction(self, timeout: float) -> None:
        self.aborts += 1
        raise KafkaException(
            KafkaError(KafkaError._TIMED_OUT, "Timed out, retry call to resume", retriable=True)
        )


class _FencedProducer:
    def abort_transaction(self, timeout: float) -> None:
        raise KafkaException(KafkaError(KafkaError._FENCED, "fenced", fatal=True))


def test_an_abort_that_times_out_is_left_to_the_renewed_producer_at_once() -> None:
    producer = _TimingOutProducer()
    retries: list[int] = []
    started = time.monotonic()
    transactions.abort(producer, lambda: retries.append(1), lambda: False)
    assert producer.aborts == 1  # not retried up to the outage deadline
    assert not retries
    assert time.monotonic() - started < transactions.CALL_TIMEOUT_S


def test_a_fenced_abort_still_ends_the_member() -> None:
    with pytest.raises(FatalKafkaError) as raised:
        transactions.abort(_FencedProducer(), lambda: None, lambda: False)
    assert raised.value.fenced
