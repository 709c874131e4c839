"""Exactly-once vs at-least-once on the real broker, changelog bytes, and restore time.

1. Throughput: `stream-monitor run` consumes the same pre-filled topic (6 partitions,
   50 models, 20 features, window 1000, check every 100) once with
   `--processing-guarantee exactly-once` and once with `at-least-once` (separate groups);
   events/s from readiness to the last committed offset. Reported: both and the ratio.
2. Changelog bytes per 1000 events (from `stream_monitor_changelog_bytes_total`), next to
   the input's bytes per 1000 events.
3. Restore time for 1000 models: the state records of 1000 models with full windows
   (1000 x 20) are written to a changelog topic; then the time to read them back from the
   broker and rebuild the models, as a process does on partition assignment.

    python bench/bench_guarantees.py [--events 100000] [--bootstrap HOST:PORT]

Without --bootstrap a local broker is started on free ports (deploy/kafka-local).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from confluent_kafka import Producer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import broker_runs

from stream_monitor.config.detector import DetectorSettings
from stream_monitor.config.loading import load_settings
from stream_monitor.engine.core import Engine
from stream_monitor.reference.loading import prepare_from_events
from stream_monitor.service.changelog import CHANGELOG_CONFIG, read_partitions
from stream_monitor.service.kafka_clients import ensure_topics, new_admin
from stream_monitor.state.models import StateTracker
from stream_monitor.state.records import encode
from stream_monitor.state.restore import restore
from stream_monitor.tools.synthetic import SyntheticModel, interleave
from tests.helpers import batches_of_events
from tests.kafka_helpers import (
    MonitorProcess,
    committed,
    create_topics,
    event_records,
    produce,
    unique,
    wait_for,
)


def throughput(
    bootstrap: str, topic: str, total: int, refdir: Path, guarantee: str, workdir: Path
) -> tuple[float, float]:
    group, alerts = unique("bench"), unique("alerts")
    monitor = MonitorProcess(
        bootstrap,
        topic,
        alerts,
        group,
        refdir,
        workdir / f"{guarantee}.log",
        "--processing-guarantee",
        guarantee,
        "--log-level",
        "WARNING",
    )
    try:
        monitor.wait_ready(120)
        started = time.monotonic()
        wait_for(
            lambda: sum(max(o, 0) for o in committed(bootstrap, group, topic).values()) >= total,
            900,
            f"{guarantee}: all committed",
            every=0.05,
        )
        seconds = time.monotonic() - started
        metrics = monitor.metrics()
        state_bytes = metrics[("stream_monitor_changelog_bytes_total", ())]
    finally:
        monitor.terminate()
    return total / seconds, state_bytes


def restore_time(bootstrap: str, n_models: int) -> dict[str, float]:
    models = [SyntheticModel(f"r{i:04d}") for i in range(n_models)]
    refs = {m.name: prepare_from_events(m.name, m.reference(2000), 20, "bench") for m in models}
    settings = load_settings({"bootstrap_servers": bootstrap, "group_id": unique("restore")})
    engine, tracker = Engine(DetectorSettings(), refs), StateTracker(1000)
    admin = new_admin(settings)
    ensure_topics(
        admin, {settings.changelog_topic: 6}, {settings.changelog_topic: CHANGELOG_CONFIG}
    )
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    written = 0
    for chunk in range(0, n_models, 50):  # 50 models at a time keeps memory small
        group = models[chunk : chunk + 50]
        events = interleave([m.events(0, 1000) for m in group])
        for batch in batches_of_events(events, 5000):
            outcome = engine.process(batch)
            for m, n in outcome.ok_counts.items():
                tracker.appended(m, n)
            for record in tracker.records(engine, outcome.ok_counts):
                value = encode(record)
                written += len(value)
                partition = int(record.model[1:].split("@")[0]) % 6
                producer.produce(settings.changelog_topic, value, record.key, partition=partition)
                producer.poll(0)
        for m in group:  # drop the in-memory windows: only the changelog keeps them
            engine.models.pop(m.key, None)
    producer.flush(60)
    fresh, fresh_tracker = Engine(DetectorSettings(), refs), StateTracker(1000)
    started = time.monotonic()
    records = read_partitions(settings, list(range(6)))
    read_s = time.monotonic() - started
    restored = restore(fresh, records, fresh_tracker)
    total_s = time.monotonic() - started
    assert len(restored) == n_models
    assert all(s.window is not None and s.window.count == 1000 for s in fresh.models.values())
    return {
        "models": n_models,
        "records": len(records),
        "bytes": written,
        "read_seconds": round(read_s, 2),
        "restore_seconds": round(total_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--restore-models", type=int, default=1000)
    parser.add_argument("--bootstrap")
    parser.add_argument("--out", type=Path, default=Path("bench/results/guarantees.json"))
    args = parser.parse_args()

    workdir = broker_runs.workdir("bench-guarantees-")
    with broker_runs.broker(args.bootstrap) as kafka:
        bootstrap = kafka.bootstrap
        models = [SyntheticModel(f"model-{i:02d}") for i in range(args.models)]
        refdir = broker_runs.write_references(models, workdir / "ref", 5000)
        events = interleave([m.events(0, args.events // args.models) for m in models])
        topic = unique("bench-predictions")
        create_topics(bootstrap, [topic], partitions=6)
        records = event_records(events)
        input_bytes = sum(len(v or b"") for _, v in records)
        produce(bootstrap, topic, records)
        eos_rate, eos_state = throughput(
            bootstrap, topic, len(events), refdir, "exactly-once", workdir
        )
        alo_rate, _ = throughput(bootstrap, topic, len(events), refdir, "at-least-once", workdir)
        result = {
            "events": len(events),
            "models": args.models,
            "exactly_once_events_per_s": round(eos_rate),
            "at_least_once_events_per_s": round(alo_rate),
            "ratio_eos_to_alo": round(eos_rate / alo_rate, 2),
            "changelog_bytes_per_1000_events": round(eos_state / len(events) * 1000),
            "input_bytes_per_1000_events": round(input_bytes / len(events) * 1000),
            "restore": restore_time(bootstrap, args.restore_models),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
