"""`stream-monitor demo`: a local broker, the monitor, and traffic that drifts, with alerts shown.

Three models send 20-feature predictions with labels and latencies; `fraud-scorer` drifts
(5 features shifted by 2 standard deviations) between two known event indices and then
recovers, so the terminal shows one alert firing and later resolving. A few malformed
events go to the dead-letter topic.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import orjson

from stream_monitor.tools import local_broker
from stream_monitor.tools.synthetic import SyntheticModel, to_jsonl

TOPIC = "demo-predictions"
ALERTS_TOPIC = "demo-alerts"
DLQ_TOPIC = "demo-predictions.dlq"
PARTITIONS = 3
BAD_EVERY = 5000  # one malformed event per this many good ones

MODELS = (
    SyntheticModel("fraud-scorer", drift_start=8000, drift_end=18000, drift_shift=2.0),
    SyntheticModel("churn-predictor"),
    SyntheticModel("eta-regressor"),
)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    bootstrap_servers: str
    events_per_model: int
    rate: float
    metrics_port: int
    workdir: Path
    start_broker: bool
    references_only: bool = False  # write the references and exit (containers share them)
    produce_only: bool = False  # only send traffic to an existing topic (containers)


def _say(text: str) -> None:
    print(text, flush=True)


def format_alert(value: bytes) -> str:
    a = orjson.loads(value)
    drifted = [f["name"] for f in a.get("features", []) if f.get("drifted")]
    line = (
        f"ALERT {a['status'].upper():8} {a['kind']:17} model={a['model']} "
        f"{a['test']}={a['score']:.3f} threshold={a['threshold']:g} severity={a['severity']} "
        f"events_seen={a['events_seen']}"
    )
    if a.get("direction"):  # sequential detection: the chart, and where the change began
        line += f" direction={a['direction']}"
    if a.get("change_start_event") is not None:
        line += f" change_start_event={a['change_start_event']}"
    if drifted:
        line += f" drifted={','.join(drifted)}"
    if a.get("recommendation"):
        line += f" -> {a['recommendation']}"
    return line + "\n      " + value.decode()[:400] + ("..." if len(value) > 400 else "")


def _recreate_topics(bootstrap: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [TOPIC, ALERTS_TOPIC, DLQ_TOPIC]
    existing = set(admin.list_topics(timeout=10).topics)
    doomed = [n for n in names if n in existing]
    deadline = time.monotonic() + 30
    if doomed:
        for f in admin.delete_topics(doomed).values():
            f.result(timeout=30)
        while set(doomed) & set(admin.list_topics(timeout=10).topics):
            if time.monotonic() > deadline:
                raise RuntimeError(f"topics {doomed} were not deleted in time")
            time.sleep(0.2)
    while True:
        futures = admin.create_topics([NewTopic(n, num_partitions=PARTITIONS) for n in names])
        try:
            for f in futures.values():
                f.result(timeout=30)
            return
        except Exception as exc:
            if "already exists" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _tail_alerts(bootstrap: str, stop: threading.Event, seen: list[str]) -> None:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"demo-tail-{time.time_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([ALERTS_TOPIC])
    try:
        while not stop.is_set():
            msg = consumer.poll(0.3)
            value = None if msg is None or msg.error() else msg.value()
            if value is None:
                continue
            seen.append(value.decode())
            _say(format_alert(value))
    finally:
        consumer.close()


def _status(port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as resp:
            data: dict[str, object] = orjson.loads(resp.read())
            return data
    except OSError:
        return None


def _produce(bootstrap: str, opts: DemoOptions) -> int:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10})
    chunk = 500
    sent = 0
    started = time.monotonic()
    t0 = time.time()  # event times follow the pace of the traffic
    for start in range(0, opts.events_per_model, chunk):
        count = min(chunk, opts.events_per_model - start)
        streams = [
            m.events(start, count, seed=1, t0=t0, interval_s=len(MODELS) / opts.rate)
            for m in MODELS
        ]
        for i in range(count):
            for events in streams:
                e = events[i]
                producer.produce(TOPIC, orjson.dumps(e), str(e["model"]).encode())
                sent += 1
                if sent % BAD_EVERY == 0:
                    producer.produce(TOPIC, b'{"features": "not an object"', b"fraud-scorer")
            producer.poll(0)
        producer.flush(30)
        ahead = sent / opts.rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)  # pacing the traffic, not waiting for a result
    producer.flush(30)
    return sent


def write_references(workdir: Path) -> Path:
    refdir = workdir / "reference"
    refdir.mkdir(parents=True, exist_ok=True)
    for m in MODELS:
        (refdir / f"{m.name}.jsonl").write_bytes(to_jsonl(m.reference(5000)))
    return refdir


def monitor_command(bootstrap: str, refdir: Path, metrics_port: int) -> list[str]:
    """The demo's `stream-monitor run`: a fresh group, its endpoints on 127.0.0.1 only."""
    return [
        sys.executable,
        "-m",
        "stream_monitor",
        "run",
        "--bootstrap-servers",
        bootstrap,
        "--topic",
        TOPIC,
        "--alerts-topic",
        ALERTS_TOPIC,
        "--reference",
        str(refdir),
        "--group-id",
        f"demo-{time.time_ns()}",
        "--metrics-port",
        str(metrics_port),
        "--metrics-host",  # a demo listens on this machine only
        "127.0.0.1",
    ]


def run_demo(opts: DemoOptions) -> int:
    """The demo from start to end: broker, topics, monitor, traffic, summary, shutdown.

    Kept whole so the demo's steps read in the order they happen (long for that reason).
    """
    bootstrap = opts.bootstrap_servers
    if opts.references_only:
        _say(f"references written to {write_references(opts.workdir)}")
        return 0
    if opts.produce_only:
        sent = _produce(bootstrap, opts)
        _say(f"sent {sent} events to {TOPIC}")
        return 0
    host, _, port_text = bootstrap.split(",")[0].rpartition(":")
    started_broker = False
    if not local_broker.reachable(bootstrap):
        if not opts.start_broker or host not in ("127.0.0.1", "localhost"):
            _say(f"no Kafka broker answers at {bootstrap}")
            return 1
        _say(f"starting a local Kafka broker on {bootstrap} (first run fetches Kafka's jars)")
        local_broker.start(int(port_text), int(port_text) + 1)
        started_broker = True
    refdir = write_references(opts.workdir)
    _recreate_topics(bootstrap)
    log_path = opts.workdir / "monitor.log"
    cmd = monitor_command(bootstrap, refdir, opts.metrics_port)
    stop = threading.Event()
    alerts: list[str] = []
    with log_path.open("wb") as log_file:
        monitor = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
        tail = threading.Thread(target=_tail_alerts, args=(bootstrap, stop, alerts), daemon=True)
        tail.start()
        try:
            total = opts.events_per_model * len(MODELS)
            _say(
                f"monitor running (log: {log_path}); metrics: "
                f"http://127.0.0.1:{opts.metrics_port}/metrics, status: "
                f"http://127.0.0.1:{opts.metrics_port}/status"
            )
            _say(
                f"sending {total} events of {len(MODELS)} models at {opts.rate:g}/s; "
                f"fraud-scorer drifts from event {MODELS[0].drift_start} to {MODELS[0].drift_end}"
            )
            _produce(bootstrap, opts)
            status = _wait_processed(opts.metrics_port, total, monitor)
            _summary(status, alerts)
        except KeyboardInterrupt:
            _say("interrupted")
        finally:
            stop.set()
            monitor.send_signal(signal.SIGTERM)
            try:
                monitor.wait(30)
            except subprocess.TimeoutExpired:
                monitor.kill()
            tail.join(5)
            if started_broker:
                local_broker.stop(int(port_text), int(port_text) + 1)
    return 0 if monitor.returncode == 0 else 1


def _wait_processed(port: int, total: int, monitor: subprocess.Popen[bytes]) -> dict[str, object]:
    deadline = time.monotonic() + 120
    status: dict[str, object] = {}
    while time.monotonic() < deadline and monitor.poll() is None:
        status = _status(port) or {}
        models = status.get("models", {})
        assert isinstance(models, dict)
        if sum(int(m.get("events_seen", 0)) for m in models.values()) >= total:
            break
        time.sleep(0.5)  # polling the monitor's status until it caught up
    return status


def _summary(status: dict[str, object], alerts: list[str]) -> None:
    _say("\nsummary (from /status):")
    models = status.get("models", {})
    assert isinstance(models, dict)
    for name, m in models.items():
        _say(
            f"  {name:20} events={m['events_seen']:>6} firing={m['firing']} "
            f"retrain={m['should_retrain']}"
        )
    _say(f"  {len(alerts)} alerts published on {ALERTS_TOPIC}")
