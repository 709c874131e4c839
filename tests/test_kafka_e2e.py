"""The monitor end to end on the real broker: drift, recovery, bad events, clean shutdown."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_monitor.sinks.kafka import (
    HEADER_ERROR,
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_REASON,
    HEADER_TOPIC,
)
from stream_monitor.tools.synthetic import SyntheticModel, interleave, to_jsonl
from tests.kafka_helpers import (
    MonitorProcess,
    committed,
    create_topics,
    end_offsets,
    event_records,
    produce,
    read_alerts,
    read_topic,
    unique,
    wait_for,
)

pytestmark = pytest.mark.kafka

DRIFT_START, DRIFT_END, PER_MODEL = 6000, 12000, 18000
MODELS = [
    SyntheticModel("fraud-scorer", drift_start=DRIFT_START, drift_end=DRIFT_END, drift_shift=2.0),
    SyntheticModel("churn-predictor"),
    SyntheticModel("eta-regressor"),
]


def write_references(directory: Path, models: list[SyntheticModel]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for m in models:
        (directory / f"{m.name}.jsonl").write_bytes(to_jsonl(m.reference(5000)))
    return directory


@dataclass
class DriftRun:
    alerts: list[dict[str, Any]]
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    status: dict[str, Any]


@pytest.fixture(scope="module")
def drift_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DriftRun]:
    tmp = tmp_path_factory.mktemp("drift")
    topic, alerts_topic = unique("predictions"), unique("alerts")
    create_topics(kafka_bootstrap, [topic], partitions=3)
    events = interleave([m.events(0, PER_MODEL) for m in MODELS])
    produce(kafka_bootstrap, topic, event_records(events))
    monitor = MonitorProcess(
        kafka_bootstrap,
        topic,
        alerts_topic,
        unique("group"),
        write_references(tmp / "ref", MODELS),
        tmp / "monitor.log",
    )
    try:
        wait_for(lambda: monitor.events_committed() >= len(events), 180, "all events committed")
        run = DriftRun(
            read_alerts(kafka_bootstrap, alerts_topic), monitor.metrics(), monitor.status()
        )
        yield run
    finally:
        assert monitor.terminate() == 0, monitor.log()


def test_drift_fires_exactly_once_for_the_drifting_model(drift_run: DriftRun) -> None:
    firing = [a for a in drift_run.alerts if a["kind"] == "input_drift" and a["status"] == "firing"]
    assert len(firing) == 1, drift_run.alerts
    alert = firing[0]
    assert alert["model"] == "fraud-scorer"
    assert DRIFT_START < alert["events_seen"] <= DRIFT_START + 1000
    # the default rule: the sequential charts, at the event a chart crossed its threshold
    assert alert["test"] == "cusum" and alert["score"] > alert["threshold"]
    assert alert["direction"] in ("up", "down", "scale")
    assert DRIFT_START - 100 <= alert["change_start_event"] < alert["events_seen"]
    assert alert["recommendation"] == "retrain"
    assert {f["name"] for f in alert["features"] if f["drifted"]} <= {
        "f00",
        "f01",
        "f02",
        "f03",
        "f04",
    }
    assert alert["source"]["topic"].startswith("predictions-")
    assert alert["detected_at"].endswith("Z")
    assert not [a for a in drift_run.alerts if a["model"] != "fraud-scorer"]
    # the score gauge was above threshold while drifting; at the end it has recovered
    fraud = (("model", "fraud-scorer"), ("model_version", "v1"), ("segment", ""))
    score = drift_run.metrics[("stream_monitor_drift_score", (("kind", "input_drift"), *fraud))]
    assert score <= 0.1
    for m in MODELS:
        ok = drift_run.metrics[
            (
                "stream_monitor_events_total",
                (("model", m.name), ("model_version", "v1"), ("segment", ""), ("status", "ok")),
            )
        ]
        assert ok == PER_MODEL
        checks = drift_run.metrics[
            (
                "stream_monitor_checks_total",
                (("model", m.name), ("model_version", "v1"), ("segment", "")),
            )
        ]
        assert checks == PER_MODEL // 100


def test_recovery_resolves_once(drift_run: DriftRun) -> None:
    inputs = [a for a in drift_run.alerts if a["kind"] == "input_drift"]
    assert [a["status"] for a in inputs] == ["firing", "resolved"]
    resolved = inputs[1]
    assert DRIFT_END < resolved["events_seen"] <= DRIFT_END + 1000
    assert resolved["test"] == "cusum" and resolved["score"] > resolved["threshold"]
    assert resolved["alert_id"] != inputs[0]["alert_id"]
    status = drift_run.status["models"]["fraud-scorer@v1"]
    assert status["firing"] == [] and status["should_retrain"] is False
    assert status["window"]["filled"] == 1000


def test_drift_score_above_threshold_on_metrics_while_drifting(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic, alerts_topic = unique("predictions"), unique("alerts")
    create_topics(kafka_bootstrap, [topic], partitions=1)
    model = SyntheticModel("fraud-scorer", drift_start=3000, drift_shift=2.0)
    produce(kafka_bootstrap, topic, event_records(model.events(0, 5000)))
    monitor = MonitorProcess(
        kafka_bootstrap,
        topic,
        alerts_topic,
        unique("group"),
        write_references(tmp_path / "ref", [model]),
        tmp_path / "m.log",
    )
    try:
        wait_for(lambda: monitor.events_committed() >= 5000, 120, "events committed")
        metrics = monitor.metrics()
        key = (
            ("kind", "input_drift"),
            ("model", "fraud-scorer"),
            ("model_version", "v1"),
            ("segment", ""),
        )
        assert metrics[("stream_monitor_drift_score", key)] > 0.1
        assert metrics[("stream_monitor_drift_detected", key)] == 1
        alerts = read_alerts(kafka_bootstrap, alerts_topic)
        assert (
            metrics[
                (
                    "stream_monitor_alerts_total",
                    (
                        ("kind", "input_drift"),
                        ("model", "fraud-scorer"),
                        ("model_version", "v1"),
                        ("segment", ""),
                        ("status", "firing"),
                    ),
                )
            ]
            == 1
        )
        assert [a["status"] for a in alerts if a["kind"] == "input_drift"] == ["firing"]
    finally:
        assert monitor.terminate() == 0, monitor.log()


BAD_RECORDS: list[tuple[bytes | None, bytes | None, str]] = [
    (b"steady", b"{not json", "not_json"),
    (b"steady", b"[1, 2, 3]", "not_object"),
    (b"steady", orjson.dumps({"prediction": 0.5}), "missing_features"),
    (
        b"steady",
        orjson.dumps({"features": {"f00": "high", "f01": 1.0}, "prediction": 0.5}),
        "bad_type",
    ),
    (
        b"steady",
        orjson.dumps({"features": {"f00": 1.0}, "prediction": 0.5, "latency_ms": "slow"}),
        "bad_type",
    ),
    (
        b"steady",
        orjson.dumps({"model": "other", "features": {}, "prediction": 1}),
        "model_mismatch",
    ),
]


def test_bad_events_go_to_the_dead_letter_topic_and_nothing_else_is_lost(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic, alerts_topic = unique("predictions"), unique("alerts")
    create_topics(kafka_bootstrap, [topic], partitions=1)
    model = SyntheticModel("steady", n_features=2)
    good = event_records(model.events(0, 600))
    records: list[tuple[bytes | None, bytes | None]] = []
    expected_reasons = []
    for i, rec in enumerate(good):
        records.append(rec)
        if i % 100 == 50:
            for key, value, reason in BAD_RECORDS:
                records.append((key, value))
                expected_reasons.append(reason)
    produce(kafka_bootstrap, topic, records)
    monitor = MonitorProcess(
        kafka_bootstrap,
        topic,
        alerts_topic,
        unique("group"),
        write_references(tmp_path / "ref", [model]),
        tmp_path / "m.log",
    )
    try:
        wait_for(lambda: monitor.events_seen() >= 600, 120, "good events processed")
        dlq = wait_for(
            lambda: (lambda m: m if len(m) >= len(expected_reasons) else None)(
                read_topic(kafka_bootstrap, f"{topic}.dlq")
            ),
            60,
            "dead letters",
        )
        assert len(dlq) == len(expected_reasons)
        offsets_by_value: dict[bytes | None, list[int]] = {}
        for offset, (_, value) in enumerate(records):
            offsets_by_value.setdefault(value, []).append(offset)
        reasons = []
        for msg in dlq:
            headers = {k: v.decode() for k, v in msg.headers()}
            reasons.append(headers[HEADER_REASON])
            assert headers[HEADER_ERROR]
            assert headers[HEADER_TOPIC] == topic and headers[HEADER_PARTITION] == "0"
            assert int(headers[HEADER_OFFSET]) in offsets_by_value[msg.value()]  # unchanged
        assert sorted(reasons) == sorted(expected_reasons)
        metrics = monitor.metrics()
        assert (
            metrics[
                (
                    "stream_monitor_events_total",
                    (
                        ("model", "steady"),
                        ("model_version", "v1"),
                        ("segment", ""),
                        ("status", "ok"),
                    ),
                )
            ]
            == 600
        )
        invalid = sum(
            v
            for (name, labels), v in metrics.items()
            if name == "stream_monitor_events_total" and ("status", "invalid") in labels
        )
        assert invalid == len(expected_reasons)
        assert monitor.proc.poll() is None  # still running
        assert monitor.get("/healthz")[0] == 200
    finally:
        assert monitor.terminate() == 0, monitor.log()


def test_sigterm_commits_and_a_restart_does_not_repeat_alerts(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic, alerts_topic, group = unique("predictions"), unique("alerts"), unique("group")
    create_topics(kafka_bootstrap, [topic], partitions=2)
    drifting = SyntheticModel("fraud-scorer", drift_start=2000, drift_shift=2.0)
    steady = SyntheticModel("eta-regressor")
    ref = write_references(tmp_path / "ref", [drifting, steady])
    produce(kafka_bootstrap, topic, event_records(drifting.events(0, 4000)))
    first = MonitorProcess(kafka_bootstrap, topic, alerts_topic, group, ref, tmp_path / "1.log")
    try:
        wait_for(lambda: first.events_committed() >= 4000, 120, "first run committed")
        wait_for(lambda: read_alerts(kafka_bootstrap, alerts_topic), 30, "an alert")
    finally:
        code = first.terminate()
    assert code == 0, first.log()
    ends = {p: o for p, o in end_offsets(kafka_bootstrap, topic).items() if o > 0}
    assert ends  # the partition holding the model's events
    commits = committed(kafka_bootstrap, group, topic)
    assert {p: commits[p] for p in ends} == ends  # every processed event is committed
    before = read_alerts(kafka_bootstrap, alerts_topic)
    assert [(a["model"], a["kind"], a["status"]) for a in before if a["kind"] == "input_drift"] == [
        ("fraud-scorer", "input_drift", "firing")
    ]

    second = MonitorProcess(kafka_bootstrap, topic, alerts_topic, group, ref, tmp_path / "2.log")
    try:
        second.wait_ready()
        produce(kafka_bootstrap, topic, event_records(steady.events(0, 1500)))
        wait_for(
            lambda: (
                second.status().get("models", {}).get("eta-regressor@v1", {}).get("events_seen")
                == 1500
            ),
            120,
            "new events processed after restart",
        )
        status = second.status()["models"]
        # its events were committed, not read again; its window came back from the changelog
        assert status["fraud-scorer@v1"]["events_seen"] == 4000
        assert status["fraud-scorer@v1"]["window"]["filled"] == 1000
        assert status["fraud-scorer@v1"]["firing"] == ["input_drift", "prediction_drift"]
        assert read_alerts(kafka_bootstrap, alerts_topic) == before
    finally:
        assert second.terminate() == 0, second.log()


def test_a_webhook_receives_the_committed_alerts(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Alerts reach a Slack-compatible webhook configured in YAML, after the commit."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict[str, Any]] = []
    arrived = threading.Condition()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with arrived:
                received.append(
                    {"id": self.headers["X-Stream-Monitor-Alert-Id"], "body": orjson.loads(body)}
                )
                arrived.notify_all()
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(
        "webhooks:\n"
        f"  - url: http://127.0.0.1:{server.server_address[1]}/hook\n"
        "    format: slack\n"
        "    kinds: [input_drift]\n"
    )
    topic, alerts_topic = unique("predictions"), unique("alerts")
    create_topics(kafka_bootstrap, [topic], partitions=1)
    model = SyntheticModel("fraud-scorer", drift_start=2000, drift_shift=2.0)
    produce(kafka_bootstrap, topic, event_records(model.events(0, 3500)))
    monitor = MonitorProcess(
        kafka_bootstrap,
        topic,
        alerts_topic,
        unique("group"),
        write_references(tmp_path / "ref", [model]),
        tmp_path / "m.log",
        "--config",
        str(cfg),
    )
    try:
        wait_for(lambda: len(received) >= 1, 120, "the webhook call")
        published = [
            a for a in read_alerts(kafka_bootstrap, alerts_topic) if a["kind"] == "input_drift"
        ]
        assert [r["id"] for r in received] == [a["alert_id"] for a in published]
        assert received[0]["body"]["text"].startswith(
            ":warning: FIRING: Input drift on fraud-scorer"
        )
        assert f":{server.server_address[1]}/hook" not in monitor.log()  # a secret
    finally:
        server.shutdown()
        assert monitor.terminate() == 0, monitor.log()


def test_an_empty_assigned_partition_reports_lag_zero(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Every assigned partition has a consumer-lag series, an empty one at 0."""
    topic, alerts_topic = unique("predictions"), unique("alerts")
    create_topics(kafka_bootstrap, [topic], partitions=3)
    model = MODELS[1]
    events = model.events(0, 300)
    produce(kafka_bootstrap, topic, event_records(events))  # one key: one partition
    monitor = MonitorProcess(
        kafka_bootstrap,
        topic,
        alerts_topic,
        unique("group"),
        write_references(tmp_path / "ref", [model]),
        tmp_path / "monitor.log",
    )
    try:
        wait_for(lambda: monitor.events_committed() >= len(events), 120, "events committed")

        def lags() -> dict[str, float]:
            return {
                dict(labels)["partition"]: value
                for (name, labels), value in monitor.metrics().items()
                if name == "stream_monitor_consumer_lag" and dict(labels)["topic"] == topic
            }

        wait_for(
            lambda: len(lags()) == 3 and all(v == 0 for v in lags().values()),
            60,
            "a lag series of 0 for each assigned partition",
        )
        assert sorted(lags()) == ["0", "1", "2"]
    finally:
        assert monitor.terminate() == 0, monitor.log()
