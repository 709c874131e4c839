"""Alert latency on a real local broker: produce time of an event to its alert being readable.

First the monitor's maximal rate is measured as bench_end_to_end.py does (a pre-filled
topic of the same models, undrifted, defaults), over the stretch after every model's window
is full (the live run's steady state). Then a producer feeds a fresh topic at a fixed rate
(by default half that maximal rate) with 50 models whose drift switches on and off (five of
20 features shifted by 2 standard deviations for 1500 events of the model, then 1500
normal ones, each model at its own phase, after 1000 normal events that fill the window).
`stream-monitor run` (defaults but the configuration under test) monitors it; a
read_committed consumer reads the alerts topic as they become readable. A first live run
(`--warm-up-seconds`, of the first configuration) is not counted: it measured the freshly
started broker's warm-up more than the monitor.

Latency of an alert = the time the reader got it minus the time the event that completed
the window that fired it was handed to the producer (`produce()`); that event is the
alert's model's event number `events_seen` (its source partition and offset are checked
against the producer's delivery reports). Producer, reader and clock are in this process.
The same alerts' latency is also split at their event's delivery report: `to_kafka` (the
producer's side: its queue, the broker's append) and `from_kafka` (the monitor's side: from
the event being in the topic to the alert being readable).

    python bench/bench_alert_latency.py [--seconds 100] [--rounds 2] [--rate 5000] \
        [--config default=] [--config "commit10=--commit-interval-ms 10"] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import broker_runs
import stage_profile
from broker_runs import median, table

from stream_monitor.tools.synthetic import SyntheticModel
from tests.kafka_helpers import MonitorProcess, committed, create_topics, unique

CHUNK = 100  # drift switches on chunk boundaries (multiples of the check cadence)


class Stream:
    """Pre-encoded events of every model, interleaved, with their drift schedule."""

    def __init__(self, args: argparse.Namespace, total: int) -> None:
        self.models = [
            SyntheticModel(f"lat-{i:02d}", n_features=args.features) for i in range(args.models)
        ]
        per_model = -(-total // args.models // CHUNK) * CHUNK
        rng = np.random.default_rng(7)
        cycle = args.drift_on + args.drift_off
        self.drifting = 0
        chunks: list[list[bytes]] = []
        for m in self.models:
            phase = int(rng.integers(0, cycle // CHUNK)) * CHUNK
            values: list[bytes] = []
            for start in range(0, per_model, CHUNK):
                on = start >= args.warmup and (start - args.warmup + phase) % cycle < args.drift_on
                self.drifting += on
                gen = SyntheticModel(
                    m.name,
                    n_features=args.features,
                    drift_start=start if on else None,
                    drift_end=start + CHUNK if on else None,
                    drift_shift=args.drift_shift,
                )
                values += [orjson.dumps(e) for e in gen.events(start, CHUNK)]
            chunks.append(values)
        # round robin: event i of every model before event i + 1 of any
        self.order = [(mi, i) for i in range(per_model) for mi in range(len(self.models))]
        self.values = chunks
        self.produced_at = np.full((len(self.models), per_model), np.nan)
        # (model, event) -> (partition, offset, time of the delivery report): the events
        # that end a chunk (a check of the model), whose alerts are matched to their source
        self.delivered: dict[tuple[int, int], tuple[int, int, float]] = {}


def produce_paced(
    bootstrap: str, topic: str, stream: Stream, rate: float, done: threading.Event
) -> dict[str, Any]:
    """Produce every event at `rate` per second; keep each event's produce() time."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True}
    )
    keys = [m.name.encode() for m in stream.models]
    connect(producer, bootstrap, topic)

    def on_delivery_of(mi: int, i: int) -> Any:
        def cb(err: Any, msg: Any) -> None:
            if err is None:
                stream.delivered[(mi, i)] = (msg.partition(), msg.offset(), time.time())

        return cb

    started = time.time()
    j, n = 0, len(stream.order)
    late_max = 0.0
    while j < n:
        now = time.time()
        due = min(n, int((now - started) * rate) + 1)
        late_max = max(late_max, now - started - j / rate)
        while j < due:
            mi, i = stream.order[j]
            cb = on_delivery_of(mi, i) if (i + 1) % CHUNK == 0 else None
            stream.produced_at[mi, i] = time.time()
            while True:
                try:
                    producer.produce(topic, stream.values[mi][i], keys[mi], on_delivery=cb)
                    break
                except BufferError:
                    producer.poll(0.01)
            j += 1
        producer.poll(0)
        time.sleep(0.002)
    producer.flush(60)
    done.set()
    seconds = time.time() - started
    return {"events": n, "seconds": round(seconds, 2), "achieved_rate": round(n / seconds, 1)}


def connect(producer: Any, bootstrap: str, topic: str) -> None:
    """Have the producer connected, with its producer id and the topic's leaders, before
    the clock starts: its first delivery took about 0.5 s (the id, the metadata), which a
    serving system's long-lived producer does not pay and which every event produced
    meanwhile counted as alert latency. A record on a topic of its own gets it there."""
    warm = unique("lat-connect")
    create_topics(bootstrap, [warm], partitions=1)
    producer.produce(warm, b"connect")
    if producer.flush(60) != 0:
        raise RuntimeError("the bench's producer could not deliver to the broker")
    producer.list_topics(topic, timeout=30)


def read_alerts(bootstrap: str, topic: str, stop: threading.Event, fetch_wait_ms: int) -> Any:
    """Every alert with the time it was readable (read_committed), polled one by one."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("lat-reader"),
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": fetch_wait_ms,
        }
    )
    meta = consumer.list_topics(topic, timeout=30).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    got: list[tuple[float, bytes]] = []
    while not stop.is_set():
        msg = consumer.poll(0.05)
        if msg is None or msg.error() is not None:
            continue
        value = msg.value()
        if value is not None:
            got.append((time.time(), value))
    consumer.close()
    return got


def run_config(
    name: str, extra: list[str], args: argparse.Namespace, stream: Stream, kafka: Any, rate: float
) -> dict[str, Any]:
    workdir: Path = args.workdir
    topic, group, alerts_topic = unique("lat-in"), unique("lat-group"), unique("lat-alerts")
    create_topics(kafka.bootstrap, [topic], partitions=args.partitions)
    monitor = MonitorProcess(
        kafka.bootstrap, topic, alerts_topic, group, args.reference, workdir / f"{name}.log", *extra
    )
    stream.produced_at[:] = np.nan
    stream.delivered.clear()
    try:
        monitor.wait_ready(180)
        stop, done = threading.Event(), threading.Event()
        got: list[Any] = []
        reader = threading.Thread(
            target=lambda: got.extend(
                read_alerts(kafka.bootstrap, alerts_topic, stop, args.reader_fetch_wait_ms)
            )
        )
        reader.start()
        time.sleep(1.0)  # the reader has its partitions before the first event
        producer_out: dict[str, Any] = {}
        spy = None
        if args.profile:
            raw = workdir / f"py-spy-{name}-{unique('r')}.txt"
            spy = stage_profile.attach(monitor.proc.pid, raw, args.profile_rate)
        cpu0 = broker_runs.cpu_seconds(monitor.proc.pid)
        t0 = time.time()
        producer = threading.Thread(
            target=lambda: producer_out.update(
                produce_paced(kafka.bootstrap, topic, stream, rate, done)
            )
        )
        producer.start()
        lags: list[int] = []
        total = len(stream.order)
        while True:  # sample the monitor's lag (produced minus committed) once a second
            time.sleep(1.0)
            done_now = done.is_set()
            produced = int(np.count_nonzero(~np.isnan(stream.produced_at)))
            lag = produced - sum(
                max(o, 0) for o in committed(kafka.bootstrap, group, topic).values()
            )
            lags.append(lag)
            if done_now and lag <= 0:
                break
            if time.time() - t0 > args.seconds * 5 + 120:
                raise RuntimeError("the monitor did not keep up:\n" + monitor.log())
        wall = time.time() - t0
        profile = spy() if spy is not None else None
        time.sleep(2.0)  # alerts of the last transaction reach the reader
        stop.set()
        reader.join()
        producer.join()
        cpu = broker_runs.cpu_seconds(monitor.proc.pid) - cpu0
    finally:
        monitor.terminate(60)
    out = summarise_config(name, extra, stream, got, lags, producer_out, cpu / wall, total)
    if profile is not None:
        out["profile"] = {**profile, "stages": stage_profile.per_event(profile, wall, total)}
    return out


def summarise_config(
    name: str,
    extra: list[str],
    stream: Stream,
    got: list[tuple[float, bytes]],
    lags: list[int],
    producer_out: dict[str, Any],
    monitor_cores: float,
    total: int,
) -> dict[str, Any]:
    index = {m.name: i for i, m in enumerate(stream.models)}
    latencies: list[float] = []
    to_kafka: list[float] = []  # produce() to the delivery report: the producer's side
    kinds: dict[str, int] = {}
    mismatched = 0
    for read_at, value in got:
        alert = orjson.loads(value)
        mi, i = index[alert["model"]], alert["events_seen"] - 1
        source = (alert["source"]["partition"], alert["source"]["offset"])
        delivered = stream.delivered.get((mi, i))
        if delivered is None or delivered[:2] != source:
            mismatched += 1  # not a chunk's last event (a chart's alert), or not its source
            continue
        latencies.append((read_at - stream.produced_at[mi, i]) * 1000)
        to_kafka.append((delivered[2] - stream.produced_at[mi, i]) * 1000)
        key = f"{alert['kind']} {alert['status']}"
        kinds[key] = kinds.get(key, 0) + 1
    ms = np.array(latencies)
    pct = {
        f"p{q}": round(float(np.percentile(ms, q)), 1) if ms.size else None for q in (50, 95, 99)
    }
    # the same alerts' latency split: until their event was in the topic, and after
    after = ms - np.array(to_kafka)
    for part, values in (("to_kafka", np.array(to_kafka)), ("from_kafka", after)):
        for q in (50, 99):
            pct[f"{part}_p{q}"] = round(float(np.percentile(values, q)), 1) if ms.size else None
    return {
        "config": name,
        "args": extra,
        "alerts": len(latencies),
        "alerts_not_matched": mismatched,
        **pct,
        "max": round(float(ms.max()), 1) if ms.size else None,
        "min": round(float(ms.min()), 1) if ms.size else None,
        "mean": round(float(ms.mean()), 1) if ms.size else None,
        "by_kind": dict(sorted(kinds.items())),
        "producer": producer_out,
        "lag_events_max": max(lags, default=0),
        "lag_events_median": median(lags) if lags else 0,
        "lag_events_each_second": lags,
        "monitor_cores": round(monitor_cores, 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "latencies_ms": [round(x, 2) for x in latencies],
        "events": total,
    }


def probe_consume_wait(bootstrap: str, batch: int = 1000, timeout: float = 0.5) -> dict[str, Any]:
    """How long the monitor's consume(num_messages=batch, timeout) blocks under a trickle
    (200 messages/s): whether it returns with what it has or waits to fill the batch."""
    topic = unique("lat-probe")
    create_topics(bootstrap, [topic], partitions=1)
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": unique("probe"), "auto.offset.reset": "latest"}
    )
    consumer.subscribe([topic])
    while not consumer.assignment():
        consumer.consume(1, 0.1)
    stop = threading.Event()

    def trickle() -> None:
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        while not stop.is_set():
            producer.produce(topic, b"x")
            producer.poll(0)
            time.sleep(0.005)
        producer.flush(10)

    feeder = threading.Thread(target=trickle)
    feeder.start()
    calls: list[tuple[float, int]] = []
    try:
        for _ in range(8):
            started = time.monotonic()
            got = consumer.consume(num_messages=batch, timeout=timeout)
            calls.append((time.monotonic() - started, len(got)))
    finally:
        stop.set()
        feeder.join()
        consumer.close()
    return {
        "batch": batch,
        "timeout_s": timeout,
        "seconds_per_call": [round(c[0], 3) for c in calls[2:]],
        "messages_per_call": [c[1] for c in calls[2:]],
    }


def measure_max_rate(args: argparse.Namespace, stream: Stream, kafka: Any) -> dict[str, Any]:
    """The monitor's maximal rate now: defaults, a pre-filled topic of the same models
    (undrifted, enough events per model for every check to run), as bench_end_to_end.py."""
    per_model = args.max_rate_events // len(stream.models)
    topic = unique("lat-max")
    create_topics(kafka.bootstrap, [topic], partitions=args.partitions)
    records = [
        (m.name.encode(), orjson.dumps(e))
        for i in range(0, per_model, CHUNK)
        for m in stream.models
        for e in m.events(i, CHUNK, seed=1)
    ]
    broker_runs.produce_values(kafka.bootstrap, topic, records)
    run = broker_runs.run_group(
        kafka.bootstrap,
        topic,
        len(records),
        args.partitions,
        args.reference,
        args.workdir,
        broker_pid=kafka.pid,
        label="max",
        steady_after=len(stream.models) * 1000,
    )
    return run.as_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rate", type=float, help="events/s (default: a share of the maximal rate measured first)"
    )
    parser.add_argument("--rate-share", type=float, default=0.5, help="of the maximal rate")
    # 1 000 000: about eight seconds once the windows are full; 200 000 gave one to two,
    # and the maximal rate (so the rate fed) moved by a third between runs
    parser.add_argument("--max-rate-events", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=100.0, help="how long to produce")
    parser.add_argument(
        "--max-events", type=int, default=1_500_000, help="fewer seconds at higher rates"
    )
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=1000, help="normal events first")
    parser.add_argument("--drift-on", type=int, default=1500)
    parser.add_argument("--drift-off", type=int, default=1500)
    parser.add_argument("--drift-shift", type=float, default=2.0)
    parser.add_argument("--reference-size", type=int, default=5000)
    parser.add_argument("--reader-fetch-wait-ms", type=int, default=10)
    parser.add_argument(
        "--config",
        action="append",
        help="NAME=monitor arguments (repeatable; default: the default commit interval "
        "and --commit-interval-ms 10)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat the configurations")
    parser.add_argument(
        "--warm-up-seconds",
        type=float,
        default=30.0,
        help="a first live run of the first configuration at the same rate, not counted "
        "(0: none): the broker was just started, and its JVM compiles its hot paths while "
        "it runs (a first run at 15 %% had a p99 of 2.7-4.2 s, the next 130 ms)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the monitor (stages)")
    parser.add_argument("--profile-rate", type=int, default=250)
    parser.add_argument("--bootstrap")
    parser.add_argument("--out", type=Path, default=Path("bench/results/alert_latency.json"))
    args = parser.parse_args()
    configs = [
        c.split("=", 1) for c in (args.config or ["default=", "commit10=--commit-interval-ms 10"])
    ]
    info = broker_runs.machine()
    args.workdir = broker_runs.workdir("bench-latency-")
    results: list[dict[str, Any]] = []
    maxima: list[dict[str, Any]] = []
    with broker_runs.broker(args.bootstrap) as kafka:
        probe = Stream(args, 0)
        args.reference = broker_runs.write_references(
            probe.models, args.workdir / "ref", args.reference_size
        )
        rate: float = args.rate
        if args.rate is None:
            maxima.append(measure_max_rate(args, probe, kafka))
            rate = maxima[-1]["steady_events_per_s"] * args.rate_share
            print(f"maximal rate {maxima[-1]['steady_events_per_s']:,.0f} events/s", end=" ")
            print(f"(windows full; {maxima[-1]['events_per_s']:,.0f} overall): feeding {rate:,.0f}")
        probe_wait = probe_consume_wait(kafka.bootstrap)
        print("consume(1000, 0.5) under a trickle:", probe_wait)
        # every event is encoded before the run: bound the memory that takes
        warm_up: dict[str, Any] | None = None
        if args.warm_up_seconds > 0:
            warm = Stream(args, min(int(rate * args.warm_up_seconds), args.max_events))
            name, extra = configs[0]
            warm_up = run_config(f"warm-up-{name}", shlex.split(extra), args, warm, kafka, rate)
            print(f"warm-up ({name}, not counted): p99 {warm_up['p99']} ms", flush=True)
            del warm
        stream = Stream(args, min(int(rate * args.seconds), args.max_events))
        for r in range(args.rounds):
            for name, extra in configs:
                res = run_config(name, shlex.split(extra), args, stream, kafka, rate)
                res["round"] = r + 1
                results.append(res)
                print(f"round {r + 1} {name}: p50 {res['p50']} p99 {res['p99']} ms", end=" ")
                print(f"({res['alerts']} alerts)", flush=True)
    out = {
        "machine": info,
        "setup": {
            "rate": round(rate, 1),
            "maximal_rate_runs": maxima,
            "seconds": args.seconds,
            "models": args.models,
            "partitions": args.partitions,
            "drift": f"{args.drift_on} on / {args.drift_off} off, shift {args.drift_shift} sd, "
            f"first {args.warmup} normal",
            "reader_fetch_wait_ms": args.reader_fetch_wait_ms,
            "warm_up_run": warm_up,
        },
        "consume_probe": probe_wait,
        "runs": results,
        "target_p99_ms": 250,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print_report(out)


def print_report(out: dict[str, Any]) -> None:
    rows = [
        [
            r["config"] + (" " + " ".join(r["args"]) if r["args"] else ""),
            r["round"],
            r["alerts"],
            r["p50"],
            r["p95"],
            r["p99"],
            r["max"],
            r["to_kafka_p99"],
            r["from_kafka_p99"],
            r["lag_events_max"],
            r["monitor_cores"],
            r["load_average_1m_after"],
        ]
        for r in out["runs"]
    ]
    print(f"\nrate {out['setup']['rate']:,.0f} events/s ({out['setup']['models']} models)\n")
    header = ["config", "round", "alerts", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    header += ["p99 to the topic", "p99 from the topic"]
    print(table([*header, "max lag (events)", "monitor cores", "load avg"], rows))


if __name__ == "__main__":
    main()
