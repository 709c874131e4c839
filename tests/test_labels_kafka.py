"""Late labels on the real broker: joined out of order, alerts they cause, outcomes counted,
a SIGKILL in the middle of them, and the start-up check of the labels topic."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_monitor.sinks.kafka import HEADER_REASON, HEADER_TOPIC
from stream_monitor.tools.synthetic import SyntheticModel, interleave
from tests.kafka_helpers import (
    MonitorProcess,
    create_topics,
    event_records,
    produce,
    read_alerts,
    read_topic,
    unique,
    wait_for,
)
from tests.label_helpers import labels_of, without_actuals
from tests.test_kafka_e2e import write_references

pytestmark = pytest.mark.kafka

RISE, PER_MODEL, GHOSTS = 1500, 3000, 40
MODELS = [SyntheticModel("rises", n_features=5), SyntheticModel("steady", n_features=5)]


def label_records(labels: list[dict[str, object]]) -> list[tuple[bytes | None, bytes | None]]:
    return [(str(x["model"]).encode(), orjson.dumps(x)) for x in labels]


def locally_shuffled(items: list[dict[str, object]], block: int, seed: int) -> list[Any]:
    """Out of order within blocks: labels come late and in any order, yet older events'
    labels mostly before newer ones', as when the truth takes a variable time to arrive."""
    rng, out = random.Random(seed), []
    for s in range(0, len(items), block):
        part = items[s : s + block]
        rng.shuffle(part)
        out.extend(part)
    return out


def _key(labels: dict[str, str]) -> str:
    """The window a series is of: the model, or `model@version`."""
    version = labels["model_version"]
    return f"{labels['model']}@{version}" if version else labels["model"]


def label_counts(monitor: MonitorProcess) -> dict[tuple[str, str], float]:
    return {
        (_key(dict(labels)), dict(labels)["status"]): v
        for (name, labels), v in monitor.metrics().items()
        if name == "stream_monitor_labels_total"
    }


@dataclass
class LabelRun:
    alerts: list[dict[str, Any]]
    counts: dict[tuple[str, str], float]
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    status: dict[str, Any]
    label_at: dict[tuple[int, int], dict[str, Any]]  # (partition, offset) -> label
    labels_topic: str
    dead_letters: list[Any]


@pytest.fixture(scope="module")
def label_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelRun]:
    tmp = tmp_path_factory.mktemp("labels")
    topic, labels_topic, alerts = unique("predictions"), unique("labels"), unique("alerts")
    create_topics(kafka_bootstrap, [topic, labels_topic], partitions=2)
    events = {m.name: m.events(0, PER_MODEL) for m in MODELS}
    produce(
        kafka_bootstrap, topic, event_records(without_actuals(interleave(list(events.values()))))
    )
    monitor = MonitorProcess(
        kafka_bootstrap,
        topic,
        alerts,
        unique("group"),
        write_references(tmp / "ref", MODELS),
        tmp / "monitor.log",
        "--labels-topic",
        labels_topic,
    )
    try:
        wait_for(lambda: monitor.events_committed() >= 2 * PER_MODEL, 60, "predictions consumed")
        rises = labels_of(events["rises"], shift_from=RISE, shift=3.0)
        steady = labels_of(events["steady"])
        labels = locally_shuffled(interleave([rises, steady]), 300, seed=11)
        ghosts = [
            {"event_id": f"ghost-{i}", "actual": 1.0, "model": "rises"} for i in range(GHOSTS)
        ]
        produce(kafka_bootstrap, labels_topic, label_records(labels + ghosts))
        produce(kafka_bootstrap, labels_topic, [(b"rises", b"{not a label")])
        expected = {
            ("rises@v1", "joined"): PER_MODEL,
            ("steady@v1", "joined"): PER_MODEL,
            ("rises@v1", "unmatched"): GHOSTS,
            ("rises", "invalid"): 1,  # unreadable: no version
        }
        wait_for(lambda: label_counts(monitor) == expected, 60, "every label committed")
        label_at = {
            (m.partition(), m.offset()): orjson.loads(m.value())
            for m in read_topic(kafka_bootstrap, labels_topic)
            if m.value().startswith(b'{"')
        }
        yield LabelRun(
            read_alerts(kafka_bootstrap, alerts),
            label_counts(monitor),
            monitor.metrics(),
            monitor.status(),
            label_at,
            labels_topic,
            read_topic(kafka_bootstrap, f"{topic}.dlq"),
        )
    finally:
        assert monitor.terminate() == 0, monitor.log()


def test_joined_labels_are_the_window_errors(label_run: LabelRun) -> None:
    """The predictions came without actuals; the late labels alone give MAE and RMSE."""
    models = label_run.status["models"]
    rises = models["rises@v1"]["results"]["performance"]
    steady = models["steady@v1"]["results"]["performance"]
    assert rises["labeled"] == steady["labeled"] == 1000  # every window row got its label
    assert 2.5 < rises["mae"] < 3.5  # the window holds events after the rise only
    assert steady["mae"] < 0.5 and steady["healthy"] is True
    mae = label_run.metrics[
        (
            "stream_monitor_model_error",
            (("metric", "mae"), ("model", "rises"), ("model_version", "v1"), ("segment", "")),
        )
    ]
    assert mae == pytest.approx(rises["mae"])
    assert models["rises@v1"]["labels"]["joined_ever"] == PER_MODEL
    assert models["rises@v1"]["labels"]["awaiting"] == 0
    assert label_run.status["labels"]["totals"] == {
        "joined": 2 * PER_MODEL,
        "late": 0,
        "unmatched": GHOSTS,
        "invalid": 1,
    }


def test_error_rise_alerts_after_the_known_point(label_run: LabelRun) -> None:
    label_driven = [
        a
        for a in label_run.alerts
        if a["kind"] in ("performance", "concept_drift") and a["status"] == "firing"
    ]
    assert {a["kind"] for a in label_driven if a["model"] == "rises"} >= {"performance"}
    assert not [a for a in label_driven if a["model"] == "steady" and a["kind"] == "performance"]
    for alert in (a for a in label_driven if a["model"] == "rises"):
        source = alert["source"]
        assert source["topic"] == label_run.labels_topic  # raised by a label, not an event
        label = label_run.label_at[(source["partition"], source["offset"])]
        index = int(str(label["event_id"]).rsplit("-", 1)[1])
        assert index >= RISE, alert  # the labels of the rise, not those before it
        assert alert["events_seen"] == PER_MODEL and alert["recommendation"] == "retrain"
    perf = next(a for a in label_driven if a["kind"] == "performance")
    assert perf["score"] > perf["threshold"] == 0.5


def test_labels_that_match_nothing_are_counted(label_run: LabelRun) -> None:
    assert label_run.counts[("rises@v1", "unmatched")] == GHOSTS
    assert ("rises@v1", "late") not in label_run.counts
    bad = label_run.dead_letters  # the predictions were all good: only the label is here
    assert len(bad) == 1 and bad[0].value() == b"{not a label"
    headers = dict(bad[0].headers())
    assert headers[HEADER_TOPIC] == label_run.labels_topic.encode()
    assert headers[HEADER_REASON] == b"not_json"


def test_sigkill_mid_labels_neither_loses_nor_repeats_one(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Killed while joining labels (an open transaction), restarted: every label that matches
    is joined exactly once (durable count), and none comes back as a repeat."""
    model = SyntheticModel("crashy", n_features=3)
    topic, labels_topic, alerts = unique("predictions"), unique("labels"), unique("alerts")
    group = unique("group")
    create_topics(kafka_bootstrap, [topic, labels_topic], partitions=1)
    events = model.events(0, 10_000)
    produce(kafka_bootstrap, topic, event_records(without_actuals(events)))
    labels = locally_shuffled(labels_of(events), 500, seed=3)
    ref = write_references(tmp_path / "ref", [model])
    args = (kafka_bootstrap, topic, alerts, group, ref)
    extra = ("--labels-topic", labels_topic, "--instance-id", "crashy", "--batch-size", "100")
    slow_commits = ("--commit-interval-ms", "1000")  # the kill lands in an open transaction

    def joined(m: MonitorProcess) -> int:
        return int(
            m.status()
            .get("models", {})
            .get("crashy@v1", {})
            .get("labels", {})
            .get("joined_ever", 0)
        )

    first = MonitorProcess(*args, tmp_path / "1.log", *extra, *slow_commits)
    try:
        wait_for(lambda: first.events_seen() >= len(events), 60, "predictions consumed")
        produce(kafka_bootstrap, labels_topic, label_records(labels[:4000]))
        wait_for(lambda: joined(first) >= 4000, 60, "the first labels joined")
        produce(kafka_bootstrap, labels_topic, label_records(labels[4000:]))
        wait_for(lambda: joined(first) > 4000, 60, "more labels being joined", every=0.01)
    finally:
        first.kill()  # SIGKILL mid-labels
    second = MonitorProcess(*args, tmp_path / "2.log", *extra)
    try:
        wait_for(lambda: joined(second) >= len(labels), 60, "every label joined after restart")
        wait_for(lambda: second.status()["labels"]["partitions"] == [0], 30, "labels assigned")
        counts = label_counts(second)
        assert joined(second) == len(labels), second.log()  # none lost, none twice
        assert counts.get(("crashy@v1", "unmatched"), 0) == 0  # a repeat would be unmatched
        assert counts.get(("crashy@v1", "late"), 0) == 0
        state = second.status()["models"]["crashy@v1"]
        assert state["labels"]["awaiting"] == 0
        assert state["results"]["performance"]["labeled"] == 1000
    finally:
        assert second.terminate() == 0, second.log()


def test_labels_wait_for_their_predictions(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Started on a backlog of predictions and of their labels, the monitor holds each label
    until the predictions before it are consumed: none is unmatched for being early."""
    model = SyntheticModel("backlog", n_features=3)
    topic, labels_topic = unique("predictions"), unique("labels")
    create_topics(kafka_bootstrap, [topic, labels_topic], partitions=1)
    events = model.events(0, 8000)
    produce(kafka_bootstrap, topic, event_records(without_actuals(events)))
    newest_first = labels_of(events)[::-1]  # read early, they would all miss their predictions
    produce(kafka_bootstrap, labels_topic, label_records(newest_first))
    monitor = MonitorProcess(
        kafka_bootstrap,
        topic,
        unique("alerts"),
        unique("group"),
        write_references(tmp_path / "ref", [model]),
        tmp_path / "m.log",
        "--labels-topic",
        labels_topic,
        "--batch-size",
        "100",  # predictions take many batches: labels are read meanwhile
    )
    try:
        monitor.wait_ready()
        wait_for(lambda: sum(label_counts(monitor).values()) >= len(events), 60, "labels handled")
        assert label_counts(monitor) == {("backlog@v1", "joined"): len(events)}, monitor.log()
    finally:
        assert monitor.terminate() == 0, monitor.log()


def test_labels_topic_must_match_the_partitions(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic, labels_topic = unique("predictions"), unique("labels")
    create_topics(kafka_bootstrap, [topic], partitions=2)
    create_topics(kafka_bootstrap, [labels_topic], partitions=1)
    monitor = MonitorProcess(
        kafka_bootstrap,
        topic,
        unique("alerts"),
        unique("group"),
        None,
        tmp_path / "m.log",
        "--labels-topic",
        labels_topic,
    )
    try:
        code = monitor.proc.wait(60)
    finally:
        monitor.kill()
    assert code == 1
    assert f"labels topic {labels_topic} has 1 partitions but {topic} has 2" in monitor.log()
