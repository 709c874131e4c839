"""Unrecoverable Kafka errors end the process with a clear message and a non-zero exit code,
so that a supervisor restarts it; SASL/PLAIN settings pass through to the client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from stream_monitor.tools import local_broker
from stream_monitor.tools.synthetic import SyntheticModel
from tests.conftest import free_port
from tests.kafka_helpers import (
    MonitorProcess,
    close_offset_readers,
    create_topics,
    event_records,
    produce,
    read_alerts,
    unique,
    wait_for,
)
from tests.test_kafka_e2e import write_references

pytestmark = pytest.mark.kafka


def test_deleted_input_topic_ends_the_process(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # librdkafka calls a topic missing once its metadata has said so for this long (30 s by
    # default; a user may shorten it the same way, through the `kafka` settings)
    monkeypatch.setenv("STREAM_MONITOR_KAFKA", '{"topic.metadata.propagation.max.ms": 3000}')
    topic, alerts = unique("predictions"), unique("alerts")
    create_topics(kafka_bootstrap, [topic], partitions=1)
    model = SyntheticModel("m", n_features=3)
    produce(kafka_bootstrap, topic, event_records(model.events(0, 300)))
    monitor = MonitorProcess(
        kafka_bootstrap,
        topic,
        alerts,
        unique("group"),
        write_references(tmp_path / "ref", [model]),
        tmp_path / "m.log",
    )
    try:
        wait_for(lambda: monitor.events_seen() >= 300, 120, "events processed")
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        admin.delete_topics([topic])[topic].result(30)
        code = monitor.proc.wait(120)
    finally:
        monitor.kill()
    assert code == 1
    assert f"topic {topic} was deleted" in monitor.log()


def test_a_second_process_with_the_same_instance_id_fences_the_first(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic, alerts, group = unique("predictions"), unique("alerts"), unique("group")
    create_topics(kafka_bootstrap, [topic], partitions=1)
    model = SyntheticModel("m", n_features=3)
    ref = write_references(tmp_path / "ref", [model])
    produce(kafka_bootstrap, topic, event_records(model.events(0, 300)))
    first = MonitorProcess(
        kafka_bootstrap, topic, alerts, group, ref, tmp_path / "1.log", "--instance-id", "pod-0"
    )
    second = None
    try:
        wait_for(lambda: first.events_seen() >= 300, 120, "first processed")
        second = MonitorProcess(
            kafka_bootstrap, topic, alerts, group, ref, tmp_path / "2.log", "--instance-id", "pod-0"
        )
        second.wait_ready()
        produce(kafka_bootstrap, topic, event_records(model.events(300, 200)))
        code = first.proc.wait(120)  # the old one learns it is fenced when it next acts
        assert code == 1
        assert "fenced" in first.log().lower()
        wait_for(lambda: second.events_seen() >= 500, 120, "the new process takes over")
        assert read_alerts(kafka_bootstrap, alerts) == []
    finally:
        first.kill()
        if second is not None:
            assert second.terminate() == 0, second.log()


SASL_USERS = 'user_alice="alice-secret"'


@pytest.fixture
def sasl_broker(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A broker with a PLAINTEXT listener (for the test's own clients) and a SASL/PLAIN one."""
    port, cport, sasl_port = free_port(), free_port(), free_port()
    extra = "\n".join(
        [
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport},"
            f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport},"
            f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
            "SASL_PLAINTEXT:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms=PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config="
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {SASL_USERS};",
        ]
    )
    data = tmp_path / "kafka-sasl"
    local_broker.start(port, cport, data, extra)
    try:
        yield f"127.0.0.1:{port}", f"127.0.0.1:{sasl_port}"
    finally:
        close_offset_readers(f"127.0.0.1:{port}")
        local_broker.stop(port, cport, data)


def _sasl(password: str) -> tuple[str, ...]:
    return (
        "--kafka",
        "security.protocol=SASL_PLAINTEXT",
        "--kafka",
        "sasl.mechanism=PLAIN",
        "--kafka",
        "sasl.username=alice",
        "--kafka",
        f"sasl.password={password}",
    )


def test_sasl_plain_works_and_a_wrong_password_is_fatal(
    sasl_broker: tuple[str, str], tmp_path: Path
) -> None:
    plain, sasl = sasl_broker
    topic, alerts = unique("predictions"), unique("alerts")
    create_topics(plain, [topic], partitions=1)
    model = SyntheticModel("m", n_features=3, drift_start=1500, drift_shift=2.0)
    ref = write_references(tmp_path / "ref", [model])
    produce(plain, topic, event_records(model.events(0, 3000)))

    wrong = MonitorProcess(
        sasl,
        topic,
        alerts,
        unique("group"),
        ref,
        tmp_path / "wrong.log",
        *_sasl("not-the-password"),
    )
    try:
        code = wrong.proc.wait(120)
    finally:
        wrong.kill()
    assert code == 1
    log = wrong.log()
    assert "Authentication failed" in log or "authentication" in log.lower()
    assert "not-the-password" not in log  # secrets are never logged

    right = MonitorProcess(
        sasl, topic, alerts, unique("group"), ref, tmp_path / "right.log", *_sasl("alice-secret")
    )
    try:
        wait_for(lambda: right.events_committed() >= 3000, 120, "events committed over SASL")
        assert [a["kind"] for a in read_alerts(plain, alerts)][:1] == ["input_drift"]
    finally:
        assert right.terminate() == 0, right.log()
