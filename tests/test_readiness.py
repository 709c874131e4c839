"""/readyz reasons, in the order an operator needs them, and the partitions being restored."""

from __future__ import annotations

import time

import pytest

from stream_monitor.config.detector import DetectorSettings
from stream_monitor.config.loading import load_settings
from stream_monitor.engine.core import Engine
from stream_monitor.service import model_state
from stream_monitor.service.readiness import STALL_S, Readiness
from stream_monitor.sinks.kafka import KafkaPublisher
from stream_monitor.sinks.prometheus import Metrics


def test_ready_once_assigned_with_the_brokers_up() -> None:
    health = Readiness()
    assert health.check(0) == (False, "no partitions assigned yet")
    assert health.check(3) == (True, "3 partitions assigned")


def test_each_reason_for_not_being_ready() -> None:
    assert Readiness(broker_up=False).check(2) == (False, "brokers unreachable")
    restoring = Readiness(restoring=("p[0]", "p[3]"))
    assert restoring.check(2) == (False, "restoring state of p[0], p[3]")
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


def test_a_member_restoring_partitions_names_them_until_it_is_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """/readyz (and /status) say which partitions are being restored while it runs."""
    settings = load_settings({"topic": "preds"})
    health = Readiness()
    seen: list[tuple[bool, str]] = []

    def read_partitions(_settings: object, numbers: list[int]) -> list[object]:
        seen.append(health.check(2))  # what /readyz answers meanwhile
        return []

    monkeypatch.setattr(model_state, "read_partitions", read_partitions)
    engine = Engine(DetectorSettings(), {})
    keeper = model_state.ModelKeeper(
        settings, engine, None, KafkaPublisher(None, "a", "d"), Metrics(), health
    )
    keeper.restore({("preds", 3), ("preds", 0), ("labels", 1)})
    assert seen == [(False, "restoring state of preds[0], preds[3]")]
    assert health.restoring == () and health.check(2) == (True, "2 partitions assigned")
