"""End to end on a real local broker: `stream-monitor run` against a bare consumer.

A topic is pre-filled (6 partitions, 50 models of the synthetic generator, 20 numeric
features; 1 000 000 events by default). Each round then reads all of it, each reader with
its own fresh consumer group, in a rotating order:

  (a) bare+parse  a bare confluent-kafka consumer: consume(num_messages=1000) and
                  orjson.loads of every value, nothing else;
  (b) bare        the same without parsing (it takes each message's value and error);
  (c) monitor     `stream-monitor run` with defaults (exactly-once, window 1000, check
                  every 100, default detectors);
  (d) monitor ALO the same with --processing-guarantee at-least-once.

The bare consumers (own process, the monitor's consumer settings, its fetch settings
`CONSUMER_FETCH` included: with librdkafka's default fetch.queue.backoff.ms a parsing
consumer sits idle most of the time, see docs/benchmarks.md) time themselves
from their partition assignment to their last message. A monitor is timed from /readyz 200
to the group's committed offsets reaching the end of the topic (polled every 20 ms from the
broker; see broker_runs.py for why not its /metrics). Then one more run of (c) and of (d)
under py-spy attributes their wall time to stages (consume, decode, route/window, check,
alert state, produce/commit, metrics, other) in µs per event.

    python bench/bench_end_to_end.py [--events 1000000] [--rounds 3] [--no-profile]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import broker_runs
import stage_profile
from broker_runs import median, table

from stream_monitor.service.kafka_clients import CONSUMER_FETCH
from stream_monitor.tools.synthetic import SyntheticModel, interleave
from tests.kafka_helpers import create_topics, unique

READERS = ("bare_parse", "bare", "monitor_eos", "monitor_alo")
LABELS = {
    "bare_parse": "(a) bare consumer + orjson.loads",
    "bare": "(b) bare consumer, no parsing",
    "monitor_eos": "(c) stream-monitor run, exactly-once",
    "monitor_alo": "(d) stream-monitor run, at-least-once",
}


def bare_consume(
    bootstrap: str, topic: str, group: str, total: int, parse: bool, broker_pid: int
) -> dict[str, Any]:
    """Read `total` messages as the monitor's consumer would, doing nothing else."""
    start: list[float] = []

    def on_assign(consumer: Any, partitions: Any) -> None:
        if not start:
            start.extend(
                [time.monotonic(), broker_runs.bare_child_rusage(), _broker_cpu(broker_pid)]
            )

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "isolation.level": "read_committed",
            **CONSUMER_FETCH,
        }
    )
    consumer.subscribe([topic], on_assign=on_assign)
    loads = orjson.loads
    n = 0
    if parse:
        while n < total:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error() is None:
                    loads(msg.value())  # type: ignore[arg-type]  # never None here
                    n += 1
    else:
        while n < total:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error() is None:
                    msg.value()
                    n += 1
    end = time.monotonic()
    cpu = broker_runs.bare_child_rusage() - start[1]
    broker_cpu = _broker_cpu(broker_pid) - start[2]
    consumer.close()
    seconds = end - start[0]
    return {
        "seconds": round(seconds, 3),
        "events": n,
        "events_per_s": round(n / seconds, 1),
        "reader_cpu_s": round(cpu, 2),
        "reader_cores": round(cpu / seconds, 2),
        "broker_cpu_s": round(broker_cpu, 2),
        "broker_cores": round(broker_cpu / seconds, 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }


def _broker_cpu(pid: int) -> float:
    return broker_runs.cpu_seconds(pid) if pid else 0.0


def run_bare(bootstrap: str, topic: str, total: int, parse: bool, broker_pid: int | None) -> Any:
    cmd = [sys.executable, __file__, "--bare-consumer", "--bootstrap", bootstrap]
    cmd += ["--topic", topic, "--group", unique("bench-bare"), "--events", str(total)]
    cmd += ["--broker-pid", str(broker_pid or 0)] + (["--parse"] if parse else [])
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=900)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_reader(
    reader: str, ctx: dict[str, Any], workdir: Path, on_ready: Any = None
) -> dict[str, Any]:
    b, topic, total = ctx["bootstrap"], ctx["topic"], ctx["events"]
    if reader.startswith("bare"):
        return dict(run_bare(b, topic, total, reader == "bare_parse", ctx["broker_pid"]))
    extra = ["--processing-guarantee", "at-least-once"] if reader == "monitor_alo" else []
    run = broker_runs.run_group(
        b,
        topic,
        total,
        ctx["partitions"],
        ctx["reference"],
        workdir,
        extra_args=extra,
        broker_pid=ctx["broker_pid"],
        label=reader.replace("_", "-"),
        on_ready=on_ready,
        steady_after=ctx["steady_after"],
    )
    out = run.as_dict()
    out["reader_cpu_s"], out["reader_cores"] = out["monitor_cpu_s"][0], out["monitor_cores"]
    return out


def profile(reader: str, ctx: dict[str, Any], workdir: Path, rate: int) -> dict[str, Any]:
    raw = workdir / f"py-spy-{reader}.txt"

    def attach(monitors: list[Any]) -> Any:
        return stage_profile.attach(monitors[0].proc.pid, raw, rate)

    run = run_reader(reader, ctx, workdir, on_ready=attach)
    prof = run.pop("on_ready")
    stages = stage_profile.per_event(prof, run["seconds"], run["events"])
    return {"run": run, "stages": stages, **{k: v for k, v in prof.items() if k != "stages"}}


def stage_table(profiles: dict[str, Any]) -> str:
    names = list(profiles)
    rows: dict[str, dict[str, Any]] = {}
    for name in names:
        for row in profiles[name]["stages"]:
            rows.setdefault(row["stage"], {"group": row["group"]})[name] = row
    order = ["consume", "decode", "route/window", "check", "alert", "produce/commit"]
    order += ["metrics", "other"]
    out = []
    for stage, per in sorted(rows.items(), key=lambda kv: (order.index(kv[1]["group"]), kv[0])):
        cells: list[object] = [per["group"], stage]
        for name in names:
            r = per.get(name)
            cells += [
                f"{r['us_per_event']:.1f}" if r else "0",
                f"{100 * r['share']:.1f}%" if r else "",
            ]
        out.append(cells)
    totals: list[object] = ["", "**total (wall time per event)**"]
    for name in names:
        run = profiles[name]["run"]
        totals += [f"**{run['seconds'] * 1e6 / run['events']:.1f}**", "100%"]
    out.append(totals)
    header = ["group", "stage"]
    for name in names:
        header += [f"{name} µs/event", "share"]
    return table(header, out, left=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--reference-size", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="0: only the profile")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--profile-rate", type=int, default=250, help="py-spy samples/s")
    parser.add_argument("--bootstrap", help="a running broker (default: start a local one)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/end_to_end.json"))
    # internal: the bare consumer's own process
    parser.add_argument("--bare-consumer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    parser.add_argument("--parse", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--broker-pid", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_consumer:
        result = bare_consume(
            args.bootstrap, args.topic, args.group, args.events, args.parse, args.broker_pid
        )
        print(json.dumps(result))
        return

    info = broker_runs.machine()
    workdir = broker_runs.workdir("bench-e2e-")
    models = [
        SyntheticModel(f"model-{i:02d}", n_features=args.features) for i in range(args.models)
    ]
    per_model = args.events // args.models
    with broker_runs.broker(args.bootstrap) as kafka:
        reference = broker_runs.write_references(models, workdir / "ref", args.reference_size)
        events = interleave([m.events(0, per_model) for m in models])
        records = [(str(e["model"]).encode(), orjson.dumps(e)) for e in events]
        del events
        topic = unique("bench-e2e")
        create_topics(kafka.bootstrap, [topic], partitions=args.partitions)
        broker_runs.produce_values(kafka.bootstrap, topic, records)
        ctx: dict[str, Any] = {
            "bootstrap": kafka.bootstrap,
            "broker_pid": kafka.pid,
            "topic": topic,
            "events": len(records),
            "partitions": args.partitions,
            "reference": reference,
            "steady_after": args.models * 1000,  # every model's window (1000) full
        }
        value_bytes = sum(len(v) for _, v in records)
        del records
        rounds: list[dict[str, Any]] = []
        for r in range(args.rounds):
            order = READERS[r % len(READERS) :] + READERS[: r % len(READERS)]
            figures = {}
            for reader in order:
                figures[reader] = run_reader(reader, ctx, workdir)
                print(f"round {r + 1} {reader}: {figures[reader]['events_per_s']:.0f} ev/s")
            rounds.append({"order": list(order), **figures})
        profiles = {}
        if not args.no_profile:
            for reader in ("monitor_eos", "monitor_alo"):
                profiles[reader] = profile(reader, ctx, workdir, args.profile_rate)
        partition_events = broker_runs.partition_counts(kafka.bootstrap, topic)
    result = summarise(args, info, rounds, profiles, ctx, value_bytes, partition_events)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print_report(result)


def summarise(
    args: argparse.Namespace,
    info: dict[str, Any],
    rounds: list[dict[str, Any]],
    profiles: dict[str, Any],
    ctx: dict[str, Any],
    value_bytes: int,
    partition_events: dict[int, int],
) -> dict[str, Any]:
    ratios = {"c_over_a": ("monitor_eos", "bare_parse"), "c_over_b": ("monitor_eos", "bare")}
    ratios["d_over_a"] = ("monitor_alo", "bare_parse")
    for r in rounds:
        r["ratios"] = {
            k: round(r[x]["events_per_s"] / r[y]["events_per_s"], 4) for k, (x, y) in ratios.items()
        }
    return {
        "machine": info,
        "setup": {
            "events": ctx["events"],
            "models": args.models,
            "features": args.features,
            "partitions": args.partitions,
            "reference_events": args.reference_size,
            "mean_value_bytes": round(value_bytes / ctx["events"]),
            "events_per_partition": partition_events,
            "monitor": "defaults: exactly-once, window 1000, check every 100, batch 1000",
        },
        "rounds": rounds,
        "median_events_per_s": {
            k: median([r[k]["events_per_s"] for r in rounds]) for k in READERS if rounds
        },
        "median_ratios": {k: median([r["ratios"][k] for r in rounds]) for k in ratios if rounds},
        "target_c_over_a": 0.7,
        "profiles": profiles,
    }


def print_report(result: dict[str, Any]) -> None:
    if result["rounds"]:
        print_rounds(result)
    if result["profiles"]:
        print("\nStages (py-spy, main thread wall time):\n")
        print(stage_table(result["profiles"]))
        for name, prof in result["profiles"].items():
            run = prof["run"]
            print(f"\n{name} under py-spy: {run['events_per_s']:,.0f} ev/s,", end=" ")
            print(f"{prof['samples']} samples; check parts (samples):", prof["check_parts"])


def print_rounds(result: dict[str, Any]) -> None:
    rounds = result["rounds"]
    header = ["reader"] + [f"round {i + 1} ev/s" for i in range(len(rounds))] + ["median"]
    rows = [
        [LABELS[k]]
        + [f"{r[k]['events_per_s']:,.0f}" for r in rounds]
        + [f"{result['median_events_per_s'][k]:,.0f}"]
        for k in READERS
    ]
    for k in ("monitor_eos", "monitor_alo"):  # the stretch after every window is full
        steady = [r[k].get("steady_events_per_s") for r in rounds]
        if all(steady):
            rows.append(
                [LABELS[k][:3] + " windows full"]
                + [f"{x:,.0f}" for x in steady]
                + [f"{median([float(x) for x in steady if x]):,.0f}"]
            )
    for key in ("c_over_a", "c_over_b", "d_over_a"):
        rows.append(
            [f"ratio {key.replace('_over_', '/')}"]
            + [f"{r['ratios'][key]:.3f}" for r in rounds]
            + [f"{result['median_ratios'][key]:.3f}"]
        )
    print(table(header, rows))
    cpu_rows = [
        [LABELS[k]] + [f"{r[k]['reader_cores']:.2f} / {r[k]['broker_cores']:.2f}" for r in rounds]
        for k in READERS
    ]
    print("\nCPU cores used (reader / broker) per round:\n")
    print(table(["reader"] + [f"round {i + 1}" for i in range(len(rounds))], cpu_rows))


if __name__ == "__main__":
    main()
