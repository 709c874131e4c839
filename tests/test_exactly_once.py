"""Nothing lost, nothing doubled, on the real broker: crashes, rebalances, restarts, outages.

The oracle is a run that nothing disturbs: its read_committed alerts must equal, model by
model and in order, those of a run that is killed with SIGKILL again and again, or that
loses and gains group members, or whose broker goes away for 30 seconds.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stream_monitor.config.detector import DetectorSettings
from stream_monitor.engine.core import Engine
from stream_monitor.tools import local_broker
from stream_monitor.tools.synthetic import SyntheticModel, interleave
from tests.conftest import free_port
from tests.helpers import batches_of_events, references
from tests.kafka_helpers import (
    MonitorProcess,
    close_offset_readers,
    committed,
    create_topics,
    event_records,
    produce,
    read_topic,
    unique,
    wait_for,
)
from tests.test_kafka_e2e import write_references

pytestmark = pytest.mark.kafka

FAST_GROUP = ("--kafka", "session.timeout.ms=6000", "--kafka", "heartbeat.interval.ms=1000")


def crash_models() -> list[SyntheticModel]:
    """30 models; every third drifts at a known point, some recover."""
    models = []
    for i in range(30):
        if i % 3 == 0:
            start = 2000 + 150 * i
            end = start + 2500 if i % 2 == 0 else None
            models.append(
                SyntheticModel(
                    f"m{i:02d}", n_features=8, drift_start=start, drift_end=end, drift_shift=2.0
                )
            )
        else:
            models.append(SyntheticModel(f"m{i:02d}", n_features=8))
    return models


@dataclass
class Stream:
    topic: str
    models: list[SyntheticModel]
    events: list[dict[str, object]]
    reference_dir: Path
    total: int


@pytest.fixture(scope="module")
def stream(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Stream:
    tmp = tmp_path_factory.mktemp("eos")
    models = crash_models()
    per_model = 200_000 // len(models) + 1
    events = interleave([m.events(0, per_model) for m in models])
    topic = unique("predictions")
    create_topics(kafka_bootstrap, [topic], partitions=6)
    produce(kafka_bootstrap, topic, event_records(events))
    return Stream(topic, models, events, write_references(tmp / "ref", models), len(events))


def processed(bootstrap: str, group: str, topic: str) -> int:
    """Input events whose offsets the group has committed."""
    return sum(max(o, 0) for o in committed(bootstrap, group, topic).values())


def alerts_by_model(bootstrap: str, topic: str) -> dict[str, list[dict[str, Any]]]:
    import orjson

    out: dict[str, list[dict[str, Any]]] = {}
    for msg in read_topic(bootstrap, topic, timeout=60):  # offset order within a partition
        alert = orjson.loads(msg.value())
        out.setdefault(alert["model"], []).append(alert)
    return out


def run_to_end(
    bootstrap: str, s: Stream, group: str, alerts: str, log: Path, *extra: str
) -> MonitorProcess:
    monitor = MonitorProcess(bootstrap, s.topic, alerts, group, s.reference_dir, log, *extra)
    monitor.wait_ready()  # up and handling signals, even when nothing is left to process
    wait_for(
        lambda: processed(bootstrap, group, s.topic) >= s.total or monitor.proc.poll(),
        600,
        "every event committed",
        every=0.5,
    )
    assert monitor.proc.poll() is None, monitor.log()
    return monitor


@pytest.fixture(scope="module")
def reference_alerts(
    kafka_bootstrap: str, stream: Stream, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[dict[str, Any]]]:
    """One uninterrupted monitor over the whole stream."""
    log = tmp_path_factory.mktemp("reference") / "monitor.log"
    alerts = unique("alerts")
    monitor = run_to_end(kafka_bootstrap, stream, unique("group"), alerts, log)
    assert monitor.terminate() == 0, monitor.log()
    by_model = alerts_by_model(kafka_bootstrap, alerts)
    drifting = {m.name for m in stream.models if m.drift_start is not None}
    assert set(by_model) == drifting  # every drifting model alerted, no other did
    return by_model


def test_uninterrupted_run_matches_the_engine(
    stream: Stream, reference_alerts: dict[str, list[dict[str, Any]]]
) -> None:
    """The live monitor's alerts are those of the engine over each model's sequence."""
    engine = Engine(DetectorSettings(), references(stream.models))
    expected: dict[str, list[dict[str, Any]]] = {}
    for batch in batches_of_events(stream.events):
        for alert in engine.process(batch).alerts:
            expected.setdefault(alert.model, []).append(alert.as_dict())
    strip = ("source",)  # topic and offsets differ: the engine read a list, not the topic
    assert {
        m: [{k: v for k, v in a.items() if k not in strip} for a in alerts]
        for m, alerts in reference_alerts.items()
    } == {
        m: [{k: v for k, v in a.items() if k not in strip} for a in alerts]
        for m, alerts in expected.items()
    }


def test_crash_equivalence_under_repeated_sigkill(
    kafka_bootstrap: str,
    stream: Stream,
    reference_alerts: dict[str, list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    rng = random.Random(20261126)
    group, alerts = unique("group"), unique("alerts")
    kill_points = sorted(rng.sample(range(5_000, stream.total - 5_000), 12))
    kills = 0
    for i, point in enumerate(kill_points):
        monitor = MonitorProcess(
            kafka_bootstrap,
            stream.topic,
            alerts,
            group,
            stream.reference_dir,
            tmp_path / f"run{i}.log",
            "--instance-id",
            "crash-test",
        )
        wait_for(
            lambda p=point, m=monitor: (
                processed(kafka_bootstrap, group, stream.topic) >= p or m.proc.poll() is not None
            ),
            300,
            f"progress to {point}",
            every=0.1,
        )
        assert monitor.proc.poll() is None, monitor.log()
        monitor.kill()  # SIGKILL: no goodbye, an open transaction left behind
        kills += 1
    final = run_to_end(
        kafka_bootstrap,
        stream,
        group,
        alerts,
        tmp_path / "final.log",
        "--instance-id",
        "crash-test",
    )
    assert final.terminate() == 0, final.log()
    assert kills >= 10
    assert alerts_by_model(kafka_bootstrap, alerts) == reference_alerts


def test_rebalance_equivalence_members_leave_and_join(
    kafka_bootstrap: str,
    stream: Stream,
    reference_alerts: dict[str, list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    group, alerts = unique("group"), unique("alerts")

    def member(name: str) -> MonitorProcess:
        return MonitorProcess(
            kafka_bootstrap,
            stream.topic,
            alerts,
            group,
            stream.reference_dir,
            tmp_path / f"{name}.log",
            "--instance-id",
            name,
            *FAST_GROUP,
        )

    members = {name: member(name) for name in ("a", "b", "c")}
    wait_for(
        lambda: processed(kafka_bootstrap, group, stream.topic) >= stream.total // 3,
        300,
        "a third of the stream",
        every=0.2,
    )
    members["b"].kill()
    members["d"] = member("d")
    wait_for(
        lambda: processed(kafka_bootstrap, group, stream.topic) >= stream.total,
        600,
        "every event committed",
        every=0.5,
    )
    for name, m in members.items():
        if name != "b":
            assert m.terminate() == 0, m.log()
    assert alerts_by_model(kafka_bootstrap, alerts) == reference_alerts


def test_restart_without_blindness(kafka_bootstrap: str, tmp_path: Path) -> None:
    """After SIGTERM and a restart, the first check sees a full window, not an empty one."""
    topic, alerts, group = unique("predictions"), unique("alerts"), unique("group")
    create_topics(kafka_bootstrap, [topic], partitions=1)
    model = SyntheticModel("steady", n_features=5)
    ref = write_references(tmp_path / "ref", [model])
    produce(kafka_bootstrap, topic, event_records(model.events(0, 1500)))
    first = MonitorProcess(kafka_bootstrap, topic, alerts, group, ref, tmp_path / "1.log")
    wait_for(lambda: first.events_seen() >= 1500, 120, "first run processed")
    assert first.terminate() == 0, first.log()
    second = MonitorProcess(kafka_bootstrap, topic, alerts, group, ref, tmp_path / "2.log")
    try:
        second.wait_ready()
        produce(kafka_bootstrap, topic, event_records(model.events(1500, 100)))
        status = wait_for(
            lambda: (lambda s: s if s.get("checks") == 16 else None)(
                second.status().get("models", {}).get("steady@v1", {})
            ),
            120,
            "the first check after the restart",
        )
        assert status["window"]["filled"] == 1000
        assert status["events_seen"] == 1600
        assert status["results"]["input_drift"]["healthy"] is True  # judged on a full window
    finally:
        assert second.terminate() == 0, second.log()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[str, int, int, Path]]:
    port, cport = free_port(), free_port()
    data = tmp_path / "kafka"
    local_broker.start(port, cport, data)
    try:
        yield f"127.0.0.1:{port}", port, cport, data
    finally:
        close_offset_readers(f"127.0.0.1:{port}")
        local_broker.stop(port, cport, data)


@dataclass
class OutageRun:
    """Two models on two partitions, one drifting at 9000, and a monitor consuming them."""

    bootstrap: str
    tmp_path: Path
    models: list[SyntheticModel]
    events: list[dict[str, Any]]
    topic: str
    alerts: str
    group: str

    @classmethod
    def prepared(cls, bootstrap: str, tmp_path: Path) -> OutageRun:
        models = [
            SyntheticModel("drifty", n_features=8, drift_start=9000, drift_shift=2.0),
            SyntheticModel("steady", n_features=8),
        ]
        events = interleave([m.events(0, 20_000) for m in models])
        run = cls(bootstrap, tmp_path, models, events, *(unique(n) for n in NAMES))
        create_topics(bootstrap, [run.topic], partitions=2)
        produce(bootstrap, run.topic, event_records(events))
        return run

    def monitor(self, log_name: str) -> MonitorProcess:
        ref = write_references(self.tmp_path / "ref", self.models)
        log_path = self.tmp_path / log_name
        args = (self.bootstrap, self.topic, self.alerts, self.group, ref, log_path)
        return MonitorProcess(*args, "--batch-size", "200")

    def processed(self) -> int:
        return processed(self.bootstrap, self.group, self.topic)

    def all_processed(self) -> None:
        wait_for(
            lambda: self.processed() >= len(self.events),
            300,
            "every event committed after the outage",
            every=0.5,
        )

    def assert_exact_alerts(self) -> None:
        engine = Engine(DetectorSettings(), references(self.models))
        batches = batches_of_events(self.events)
        expected = [a.alert_id for b in batches for a in engine.process(b).alerts]
        by_model = alerts_by_model(self.bootstrap, self.alerts)
        got = [a["alert_id"] for m in by_model.values() for a in m]
        assert sorted(got) == sorted(expected)  # nothing lost, nothing doubled
        assert len(got) == len(set(got))


NAMES = ("predictions", "alerts", "group")


def broker_away_mid_stream(
    run: OutageRun, monitor: MonitorProcess, broker: tuple[str, int, int, Path]
) -> float:
    """Stop the broker once 8000 events are committed; the monitor says it is not ready.
    Returns when the broker stopped (time.monotonic)."""
    _, port, cport, data = broker
    wait_for(lambda: run.processed() >= 8_000, 180, "mid-stream")
    local_broker.stop(port, cport, data)
    stopped = time.monotonic()
    wait_for(lambda: monitor.get("/readyz")[0] == 503, 60, "not ready while the broker is away")
    assert monitor.proc.poll() is None, monitor.log()
    return stopped


def test_broker_outage_of_30_seconds(
    own_broker: tuple[str, int, int, Path], tmp_path: Path
) -> None:
    bootstrap, port, cport, data = own_broker
    run = OutageRun.prepared(bootstrap, tmp_path)
    monitor = run.monitor("m.log")
    try:
        outage_started = broker_away_mid_stream(run, monitor, own_broker)
        time.sleep(max(0.0, 30 - (time.monotonic() - outage_started)))  # the outage itself
        assert monitor.proc.poll() is None, monitor.log()
        local_broker.start(port, cport, data)
        run.all_processed()
        wait_for(lambda: monitor.get("/readyz")[0] == 200, 60, "ready again")
        run.assert_exact_alerts()
    finally:
        assert monitor.terminate() == 0, monitor.log()


SHUTDOWN_LIMIT_S = 30  # Kubernetes' default termination grace period


def test_sigterm_while_the_broker_is_away_stops_promptly_and_loses_nothing(
    own_broker: tuple[str, int, int, Path], tmp_path: Path
) -> None:
    """A pod stopped during an outage leaves within the grace period; what it had not
    committed is reprocessed by its successor once the broker is back."""
    bootstrap, port, cport, data = own_broker
    run = OutageRun.prepared(bootstrap, tmp_path)
    first = run.monitor("1.log")
    try:
        broker_away_mid_stream(run, first, own_broker)
        code = first.terminate(timeout=SHUTDOWN_LIMIT_S)
    finally:
        first.kill()
    assert code == 0, first.log()
    local_broker.start(port, cport, data)
    second = run.monitor("2.log")
    try:
        run.all_processed()
        run.assert_exact_alerts()
    finally:
        assert second.terminate() == 0, second.log()
