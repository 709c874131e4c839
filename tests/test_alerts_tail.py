"""`stream-monitor alerts`: the human line, and tailing a real alerts topic."""

from __future__ import annotations

import argparse
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from stream_monitor.alerts.contract import (
    Alert,
    FeatureResult,
    SourcePosition,
    WindowInfo,
    alert_id,
)
from stream_monitor.tools.alerts_tail import add_arguments, consumer_config, format_line, run
from tests.kafka_helpers import create_topics, produce, unique


def make_alert(
    model: str = "fraud-scorer",
    kind: str = "input_drift",
    status: str = "firing",
    events_seen: int = 8200,
    score: float = 0.158,
    drifted: tuple[str, ...] = ("f00", "f01"),
) -> Alert:
    firing = status == "firing"
    return Alert(
        alert_id=alert_id(model, kind, status, events_seen),
        model=model,
        model_version="v1",
        kind=kind,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        severity="critical" if score >= 0.2 else "warning",
        test="ks",
        score=score,
        threshold=0.1,
        features=[
            FeatureResult(name=n, test="ks", score=score, p_value=1e-9, drifted=firing)
            for n in drifted
        ]
        + [FeatureResult(name="quiet", test="ks", score=0.01, p_value=0.9, drifted=False)],
        events_seen=events_seen,
        window=WindowInfo(size=1000, start="2026-11-26T10:00:00.000Z", end="2026-11-26T10:05:00Z"),
        source=SourcePosition(topic="predictions", partition=0, offset=events_seen),
        detected_at="2026-11-26T10:05:00.000Z",
        recommendation="retrain" if firing else None,
        details={},
    )


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


# -- format_line ----------------------------------------------------------------------------


def test_format_line_firing() -> None:
    line = format_line(orjson.loads(make_alert().to_json()))
    assert line == (
        "2026-11-26T10:05:00.000Z FIRING   input_drift      model=fraud-scorer version=v1 "
        "ks=0.158 threshold=0.1 severity=warning events_seen=8200 drifted=f00,f01 -> retrain"
    )


def test_format_line_resolved() -> None:
    alert = make_alert(kind="prediction_drift", status="resolved", score=0.081, drifted=())
    line = format_line(orjson.loads(alert.to_json()))
    assert line == (
        "2026-11-26T10:05:00.000Z RESOLVED prediction_drift model=fraud-scorer version=v1 "
        "ks=0.081 threshold=0.1 severity=warning events_seen=8200"
    )


def test_format_line_names_the_segment_and_the_baseline() -> None:
    alert = orjson.loads(make_alert().to_json())
    alert["segment"] = "country=DE"
    alert["details"] = {"baseline_version": "v1"}
    line = format_line(alert)
    assert "model=fraud-scorer version=v1 segment=country=DE versus=v1 ks=0.158 " in line


def test_format_line_many_features_and_missing_fields() -> None:
    names = tuple(f"f{i:02}" for i in range(13))
    line = format_line(orjson.loads(make_alert(drifted=names).to_json()))
    assert "drifted=f00,f01,f02,f03,f04,f05,f06,f07,f08,f09,+3 more -> retrain" in line
    sparse = format_line({"model": "m", "kind": "latency", "status": "firing", "score": 250.0})
    assert sparse == (
        "- FIRING   latency          model=m version=- score=250 threshold=- severity=- "
        "events_seen=-"
    )


def test_format_line_escapes_control_characters() -> None:
    line = format_line({"model": "evil\x1b[31m\nname", "status": "firing"})
    assert "\x1b" not in line and "\n" not in line
    assert "model=evil\\x1b[31m\\nname" in line


def test_consumer_config_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAM_MONITOR_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("STREAM_MONITOR_ALERTS_TOPIC", raising=False)
    defaults = parse()
    assert (defaults.bootstrap_servers, defaults.topic) == ("localhost:9092", "alerts")
    assert (defaults.from_beginning, defaults.json, defaults.model) == (False, False, None)
    assert (defaults.max, defaults.idle_timeout, defaults.kafka) == (None, None, [])

    args = parse("--bootstrap-servers", "k:9092", "--kafka", "security.protocol=SASL_SSL")
    conf = consumer_config(args)
    assert conf["bootstrap.servers"] == "k:9092"
    assert conf["isolation.level"] == "read_committed"
    assert conf["enable.auto.commit"] is False
    assert conf["auto.offset.reset"] == "latest"
    assert conf["group.id"].startswith("stream-monitor-alerts-")
    assert conf["group.id"] != consumer_config(args)["group.id"]  # throwaway, every time
    assert conf["security.protocol"] == "SASL_SSL"
    assert consumer_config(parse("--from-beginning"))["auto.offset.reset"] == "earliest"
    for bad in (["--max", "0"], ["--idle-timeout", "-1"], ["--idle-timeout", "nan"]):
        with pytest.raises(SystemExit):
            parse(*bad)


def test_bad_kafka_option_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(parse("--kafka", "no-equals-sign")) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_no_broker_is_one_clear_line_and_exit_1(capfd: pytest.CaptureFixture[str]) -> None:
    args = parse("--bootstrap-servers", "127.0.0.1:1", "--connect-timeout", "2")
    assert run(args) == 1
    err = capfd.readouterr().err  # librdkafka's own stderr lines too: there must be none
    assert err.splitlines() == [
        "stream-monitor alerts: no Kafka broker answered at 127.0.0.1:1 within 2 s"
    ]


@pytest.mark.kafka
def test_a_missing_topic_is_one_clear_line_and_exit_1(
    kafka_bootstrap: str, capfd: pytest.CaptureFixture[str]
) -> None:
    topic = unique("no-such-alerts")
    assert run(parse("--bootstrap-servers", kafka_bootstrap, "--topic", topic)) == 1
    assert capfd.readouterr().err.splitlines() == [
        f"stream-monitor alerts: topic {topic!r} does not exist on {kafka_bootstrap}"
    ]


# -- on the real broker ---------------------------------------------------------------------


@dataclass
class AlertsTopic:
    bootstrap: str
    topic: str
    alerts: list[Alert]  # committed, in topic order


@pytest.fixture(scope="module")
def alerts_topic(kafka_bootstrap: str) -> AlertsTopic:
    """One partition holding: a1, an aborted transaction's alert, a2, a non-JSON value, a3."""
    topic = unique("alerts-tail")
    create_topics(kafka_bootstrap, [topic], partitions=1)
    a1 = make_alert(events_seen=8200)
    a2 = make_alert(model="churn-predictor", kind="performance", events_seen=500, drifted=())
    a3 = make_alert(status="resolved", events_seen=18900, score=0.05, drifted=())
    produce(kafka_bootstrap, topic, [(a1.model.encode(), a1.to_json())])

    aborted = make_alert(model="ghost", events_seen=1)
    txn = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": unique("txn")})
    txn.init_transactions(30)
    txn.begin_transaction()
    txn.produce(topic, aborted.to_json(), aborted.model.encode())
    txn.flush(30)
    txn.abort_transaction(30)

    produce(
        kafka_bootstrap,
        topic,
        [(a2.model.encode(), a2.to_json()), (b"x", b"not json"), (a3.model.encode(), a3.to_json())],
    )
    return AlertsTopic(kafka_bootstrap, topic, [a1, a2, a3])


def _tail(t: AlertsTopic, *extra: str) -> list[str]:
    return ["--bootstrap-servers", t.bootstrap, "--topic", t.topic, "--from-beginning", *extra]


@pytest.mark.kafka
def test_tail_json_lines(alerts_topic: AlertsTopic, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(parse(*_tail(alerts_topic, "--max", "3", "--json"))) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [a.to_json().decode() for a in alerts_topic.alerts]
    assert "ghost" not in captured.out  # read_committed: the aborted alert never shows
    assert "not a JSON alert" in captured.err


@pytest.mark.kafka
def test_tail_human_lines(alerts_topic: AlertsTopic, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(parse(*_tail(alerts_topic, "--max", "3"))) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [format_line(orjson.loads(a.to_json())) for a in alerts_topic.alerts]
    assert lines[0].startswith("2026-11-26T10:05:00.000Z FIRING   input_drift      ")
    assert "model=churn-predictor" in lines[1] and "performance" in lines[1]
    assert "RESOLVED" in lines[2] and "-> retrain" not in lines[2]


@pytest.mark.kafka
def test_tail_model_filter_and_idle_timeout(
    alerts_topic: AlertsTopic, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    code = run(
        parse(*_tail(alerts_topic, "--json", "--model", "fraud-scorer", "--idle-timeout", "1"))
    )
    assert code == 0
    assert time.monotonic() - started < 20
    fraud = [a.to_json().decode() for a in alerts_topic.alerts if a.model == "fraud-scorer"]
    assert capsys.readouterr().out.splitlines() == fraud


# The command in a child process: it must stop on a signal, cleanly and soon.
_CHILD = (
    "import sys; from stream_monitor.tools.alerts_tail import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.fixture
def child_lines() -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def start(*argv: str) -> tuple[subprocess.Popen[str], queue.Queue[str | None]]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        procs.append(proc)
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        return proc, lines

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.kafka
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_tail_stops_on_signal(alerts_topic: AlertsTopic, child_lines: Any, signum: int) -> None:
    proc, lines = child_lines(*_tail(alerts_topic, "--json"))
    got = [lines.get(timeout=30) for _ in alerts_topic.alerts]  # all read; now it waits
    assert got == [a.to_json().decode() for a in alerts_topic.alerts]
    proc.send_signal(signum)
    assert proc.wait(timeout=15) == 0
    assert lines.get(timeout=5) is None  # nothing more was printed


def test_format_line_of_a_sequential_alert_names_its_chart_and_start() -> None:
    alert = make_alert(events_seen=8063, score=45.2, drifted=("f00",)).model_copy(
        update={"test": "cusum", "threshold": 44.8, "direction": "up", "change_start_event": 8001}
    )
    line = format_line(orjson.loads(alert.to_json()))
    assert "cusum=45.2 threshold=44.8 severity=critical events_seen=8063" in line
    assert line.endswith("direction=up change_start_event=8001 drifted=f00 -> retrain")
