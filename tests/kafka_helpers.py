"""Helpers for tests against the real broker: topics, producing, reading, the monitor process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float, what: str, every: float = 0.2) -> T:
    """Poll `condition` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(n, num_partitions=partitions) for n in names])
    for f in futures.values():
        f.result(timeout=30)


def produce(
    bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]
) -> int:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "enable.idempotence": True}
    )
    n = 0
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.1)
        n += 1
        if n % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    return n


def event_records(events: Iterable[dict[str, object]]) -> list[tuple[bytes | None, bytes | None]]:
    return [(str(e["model"]).encode(), orjson.dumps(e)) for e in events]


def read_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> list[Any]:
    """Every committed message of a topic up to its current end (read_committed).

    Transactional topics end with commit markers, so the end is known by partition EOF,
    not by the offset of the last message.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        pending = set()
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                pending.add(p)
        consumer.assign([TopicPartition(topic, p, 0) for p in pending])
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end")
            for msg in consumer.consume(500, 0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                    continue
                out.append(msg)
        return out
    finally:
        consumer.close()


def read_alerts(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    msgs = read_topic(bootstrap, topic)
    return sorted(
        (orjson.loads(m.value()) for m in msgs), key=lambda a: (a["model"], a["events_seen"])
    )


_OFFSET_READERS: dict[tuple[str, str], Consumer] = {}


def close_offset_readers(bootstrap: str) -> None:
    """Close the cached readers of a broker that goes away (they would retry forever)."""
    for key in [k for k in _OFFSET_READERS if k[0] == bootstrap]:
        _OFFSET_READERS.pop(key).close()


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets ({} while the group coordinator is busy or away)."""
    consumer = _OFFSET_READERS.get((bootstrap, group))
    if consumer is None:  # one reader per group: it never joins, it only asks
        consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        )
        _OFFSET_READERS[(bootstrap, group)] = consumer
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        tps = [TopicPartition(topic, p) for p in meta.partitions]
        return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
    except KafkaException:  # e.g. NOT_COORDINATOR while the group moves: ask again later
        return {}


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("wm")})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in meta.partitions
        }
    finally:
        consumer.close()


class MonitorProcess:
    """`stream-monitor run` as a real subprocess, with its HTTP endpoints at hand."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        alerts_topic: str,
        group: str,
        reference: Path | None,
        log_path: Path,
        *extra: str,
    ) -> None:
        self.port = free_port()
        self.log_path = log_path
        cmd = [
            sys.executable,
            "-m",
            "stream_monitor",
            "run",
            "--bootstrap-servers",
            bootstrap,
            "--topic",
            topic,
            "--alerts-topic",
            alerts_topic,
            "--group-id",
            group,
            "--metrics-port",
            str(self.port),
            "--metrics-host",
            "127.0.0.1",
            *extra,
        ]
        if reference is not None:
            cmd += ["--reference", str(reference)]
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=3) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError:
            return 0, b""

    def status(self) -> dict[str, Any]:
        code, body = self.get("/status")
        return orjson.loads(body) if code == 200 else {}

    def events_seen(self) -> int:
        return sum(m["events_seen"] for m in self.status().get("models", {}).values())

    def events_committed(self) -> int:
        """Valid events whose batch is committed (alerts on the topic, metrics published)."""
        code, body = self.get("/metrics")
        if code != 200:
            return 0
        return int(
            sum(
                s.value
                for family in text_string_to_metric_families(body.decode())
                for s in family.samples
                if s.name == "stream_monitor_events_total" and s.labels.get("status") == "ok"
            )
        )

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        code, body = self.get("/metrics")
        assert code == 200
        out = {}
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def wait_ready(self, timeout: float = 60) -> None:
        wait_for(lambda: self.get("/readyz")[0] == 200 or self._died(), timeout, "monitor ready")
        assert self.proc.poll() is None, self.log()

    def _died(self) -> bool:
        return self.proc.poll() is not None

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]

    def terminate(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._log.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._log.close()
