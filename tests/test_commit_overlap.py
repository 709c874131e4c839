"""A transaction's commit runs while the next batch is computed: nothing of that batch is
produced before the commit is through, and a failed commit voids it (abort, rewind).

The member's Kafka clients are replaced by fakes whose commit waits on a gate, so the
overlap is held open for as long as the test needs it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException

from stream_monitor.config.loading import load_settings
from stream_monitor.service.runtime import MonitorService
from stream_monitor.sources.records import RecordBatch
from stream_monitor.tools.synthetic import SyntheticModel

TOPIC = "predictions"


class GatedProducer:
    """A transactional producer whose commit waits until `gate` is set."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.gate = threading.Event()
        self.commit_error: KafkaException | None = None

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def produce(self, topic: str, value: Any = None, key: Any = None, **kwargs: Any) -> None:
        self.calls.append(f"produce {topic}")

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        return 0

    def send_offsets_to_transaction(self, offsets: Any, group: Any, timeout: float) -> None:
        self.calls.append("send offsets")

    def commit_transaction(self, timeout: float) -> None:
        self.calls.append("commit started")
        assert self.gate.wait(30)
        if self.commit_error is not None:
            raise self.commit_error
        self.calls.append("committed")

    def abort_transaction(self, timeout: float) -> None:
        self.calls.append("abort")

    def produced(self) -> int:
        return sum(c.startswith("produce") for c in self.calls)


class QuietConsumer:
    """What the member asks of its consumer while committing and rewinding."""

    def __init__(self) -> None:
        self.seeks = 0

    def consumer_group_metadata(self) -> object:
        return object()

    def committed(self, partitions: list[Any], timeout: float) -> list[Any]:
        return partitions

    def seek(self, partition: Any) -> None:
        self.seeks += 1


def _batch(model: SyntheticModel, start: int, n: int) -> RecordBatch:
    batch = RecordBatch()
    for i, event in enumerate(model.events(start, n)):
        batch.append(model.name.encode(), orjson.dumps(event), TOPIC, 0, start + i, None)
    return batch


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.01)


@pytest.fixture
def member() -> Iterator[tuple[MonitorService, GatedProducer]]:
    settings = load_settings(
        {
            "bootstrap_servers": "127.0.0.1:1",
            "topic": TOPIC,
            "commit_interval_ms": 0,
            "metrics_port": 0,
            "metrics_host": "127.0.0.1",
        }
    )
    service = MonitorService(settings, {})
    service.http.start()
    real = service._consumer
    producer = GatedProducer()
    service._producer = producer
    service._publisher.use(producer)
    service._consumer = QuietConsumer()
    try:
        yield service, producer
    finally:
        producer.gate.set()
        real.close()
        service.http.stop()


def test_the_next_batch_is_computed_during_the_commit_and_produced_after_it(
    member: tuple[MonitorService, GatedProducer],
) -> None:
    service, producer = member
    model = SyntheticModel("m")
    service._transaction(_batch(model, 0, 50))  # produced, and its commit started
    _wait_for(lambda: "commit started" in producer.calls, "the first commit starts")
    first = producer.produced()
    assert first > 0  # its state records
    second = threading.Thread(target=service._transaction, args=(_batch(model, 50, 50),))
    second.start()
    _wait_for(
        lambda: sum(m.events_seen for m in service.engine.models.values()) == 100,
        "the second is computed",
    )
    assert producer.produced() == first  # nothing produced while the commit runs
    assert producer.calls.count("begin") == 1
    producer.gate.set()
    second.join(30)
    assert not second.is_alive()
    assert producer.calls.count("begin") == 2
    assert producer.calls.index("committed") < len(producer.calls) - producer.calls[::-1].index(
        "begin"
    )
    assert producer.produced() > first  # the second batch's records, in the new transaction


def test_a_failed_commit_voids_the_batch_computed_meanwhile(
    member: tuple[MonitorService, GatedProducer],
) -> None:
    service, producer = member
    model = SyntheticModel("m")
    service._transaction(_batch(model, 0, 50))
    first = producer.produced()
    producer.commit_error = KafkaException(
        KafkaError(KafkaError._STATE, "abortable", txn_requires_abort=True)
    )
    aborts = service.metrics.transaction_aborts._value.get()
    producer.gate.set()
    service._transaction(_batch(model, 50, 50))
    assert "abort" in producer.calls
    assert producer.produced() == first  # the second batch is read again, not produced
    assert producer.calls.count("begin") == 1
    assert service._txn is None and service._committing is None
    assert service.metrics.transaction_aborts._value.get() == aborts + 1
