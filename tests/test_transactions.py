"""When the open transaction commits: after its interval, or at once after alerts."""

from __future__ import annotations

from stream_monitor.alerts.contract import Alert
from stream_monitor.alerts.outcome import BatchOutcome
from stream_monitor.service.transactions import OpenTransaction


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
