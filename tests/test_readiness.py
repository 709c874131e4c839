"""/readyz reasons, in the order an operator needs them."""

from __future__ import annotations

import time

from stream_monitor.service.readiness import STALL_S, Readiness


def test_ready_once_assigned_with_the_brokers_up() -> None:
    health = Readiness()
    assert health.check(0) == (False, "no partitions assigned yet")
    assert health.check(3) == (True, "3 partitions assigned")


def test_each_reason_for_not_being_ready() -> None:
    assert Readiness(broker_up=False).check(2) == (False, "brokers unreachable")
    assert Readiness(restoring=True).check(2) == (False, "restoring state")
    assert Readiness(fatal="fenced", broker_up=False).check(2) == (False, "fatal error: fenced")


def test_a_consume_loop_blocked_in_a_call_is_not_ready() -> None:
    """The client reports the brokers down only from inside consume(); a loop blocked in a
    transactional call must not look ready meanwhile."""
    health = Readiness()
    now = time.monotonic()
    assert health.check(1, now=now + STALL_S / 2)[0]
    ready, reason = health.check(1, now=now + STALL_S + 5)
    assert not ready and reason.startswith("consume loop blocked for")
    health.beat()
    assert health.check(1)[0]
