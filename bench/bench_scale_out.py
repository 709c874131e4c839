"""Scale-out on a real local broker: one consumer group of k = 1, then k = 2 monitors.

A topic of 6 partitions is pre-filled (60 models of the synthetic generator, 20 numeric
features; by default model i on partition i mod 6, so every partition holds the same
number of models and events; `--partitioner key` uses the producer's key hash instead).
Each round runs k = 1 and k = 2 (up to --max-members) `stream-monitor run` processes
(defaults) in a fresh group, in alternating order; reported per k: events/s and
events/s(k) / (k x events/s(1)), and the events per CPU-second of the monitors, which
separates a lack of cores from a cost of coordination. The group is timed from the moment
every member answers /readyz 200 and their assignments cover the topic, to the group's
committed offsets reaching the end of the topic; events committed before that moment are
not counted (and are reported).

The broker runs with group.initial.rebalance.delay.ms=3000 (Kafka's default; the local
script sets 0) so that both members join the group's first generation instead of the
first one taking every partition and processing alone until the second joins.

    python bench/bench_scale_out.py [--events 300000] [--rounds 3] [--partitions 6] \
        [--max-members 2] [--bootstrap HOST:PORT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import broker_runs
from broker_runs import median, table

from stream_monitor.tools.synthetic import SyntheticModel, interleave
from tests.kafka_helpers import create_topics, unique


def member_shares(run: dict[str, Any], per_partition: dict[int, int]) -> list[float]:
    """Share of the topic's events on each member's partitions ("topic[3]" names)."""
    total = sum(per_partition.values())
    if run["members"] == 1:
        return [1.0]
    return [
        round(sum(per_partition[int(p.rsplit("[", 1)[1].rstrip("]"))] for p in a) / total, 4)
        for a in run["assigned"]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--models", type=int, default=60)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--partitioner", choices=["balanced", "key"], default="balanced")
    parser.add_argument("--reference-size", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-members", type=int, default=2)
    parser.add_argument("--rebalance-delay-ms", type=int, default=3000)
    parser.add_argument("--bootstrap")
    parser.add_argument("--out", type=Path, default=Path("bench/results/scale_out.json"))
    args = parser.parse_args()
    if args.partitions < 2 * args.max_members:
        parser.error("use at least 2 partitions per member")

    info = broker_runs.machine()
    workdir = broker_runs.workdir("bench-scale-")
    models = [
        SyntheticModel(f"scale-{i:03d}", n_features=args.features) for i in range(args.models)
    ]
    extra = f"group.initial.rebalance.delay.ms={args.rebalance_delay_ms}\n"
    rounds: list[dict[str, Any]] = []
    with broker_runs.broker(args.bootstrap, extra) as kafka:
        reference = broker_runs.write_references(models, workdir / "ref", args.reference_size)
        events = interleave([m.events(0, args.events // args.models) for m in models])
        index = {m.name: i for i, m in enumerate(models)}
        records = [(str(e["model"]).encode(), orjson.dumps(e)) for e in events]
        partitions = None
        if args.partitioner == "balanced":
            partitions = [index[str(e["model"])] % args.partitions for e in events]
        del events
        topic = unique("bench-scale")
        create_topics(kafka.bootstrap, [topic], partitions=args.partitions)
        broker_runs.produce_values(kafka.bootstrap, topic, records, partitions)
        total = len(records)
        del records
        per_partition = broker_runs.partition_counts(kafka.bootstrap, topic)
        sizes = list(range(1, args.max_members + 1))
        for r in range(args.rounds):
            order = sizes if r % 2 == 0 else sizes[::-1]
            figures: dict[str, Any] = {"order": order}
            for k in order:
                run = broker_runs.run_group(
                    kafka.bootstrap,
                    topic,
                    total,
                    args.partitions,
                    reference,
                    workdir,
                    members=k,
                    broker_pid=kafka.pid,
                    label=f"k{k}",
                ).as_dict()
                run["member_event_shares"] = member_shares(run, per_partition)
                run["events_per_monitor_cpu_s"] = round(run["events"] / sum(run["monitor_cpu_s"]))
                figures[f"k{k}"] = run
                print(f"round {r + 1} k={k}: {run['events_per_s']:,.0f} ev/s", flush=True)
            base = figures["k1"]
            figures["ratios"] = {
                str(k): round(figures[f"k{k}"]["events_per_s"] / (k * base["events_per_s"]), 4)
                for k in sizes[1:]
            }
            figures["cpu_efficiency"] = {  # events per monitor CPU-second, k vs 1
                str(k): round(
                    figures[f"k{k}"]["events_per_monitor_cpu_s"] / base["events_per_monitor_cpu_s"],
                    4,
                )
                for k in sizes[1:]
            }
            rounds.append(figures)
    result = {
        "machine": info,
        "setup": {
            "events": total,
            "models": args.models,
            "partitions": args.partitions,
            "partitioner": args.partitioner,
            "events_per_partition": per_partition,
            "group_initial_rebalance_delay_ms": args.rebalance_delay_ms,
        },
        "rounds": rounds,
        "median_ratios": {str(k): median([r["ratios"][str(k)] for r in rounds]) for k in sizes[1:]},
        "median_cpu_efficiency": {
            str(k): median([r["cpu_efficiency"][str(k)] for r in rounds]) for k in sizes[1:]
        },
        "target": 0.85,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_report(result)


def print_report(result: dict[str, Any]) -> None:
    rows = []
    for i, r in enumerate(result["rounds"]):
        for k in sorted(r["order"]):
            run = r[f"k{k}"]
            rows.append(
                [
                    i + 1,
                    k,
                    f"{run['events_per_s']:,.0f}",
                    f"{run['seconds']:.1f}",
                    run["committed_at_ready"],
                    f"{run['monitor_cores']:.2f}",
                    f"{run['broker_cores']:.2f}",
                    f"{run['events_per_monitor_cpu_s']:,}",
                    " / ".join(f"{s:.2f}" for s in run["member_event_shares"]),
                    f"{r['ratios'][str(k)]:.3f}" if k > 1 else "",
                ]
            )
    header = ["round", "k", "events/s", "s", "committed before ready", "monitor cores"]
    header += ["broker cores", "events per monitor CPU-s", "member shares", "k-rate / (k x 1-rate)"]
    print(table(header, rows))
    for k, ratio in result["median_ratios"].items():
        eff = result["median_cpu_efficiency"][k]
        print(f"\nk={k}: median ratio {ratio:.3f} (target {result['target']}), median events per")
        print(f"monitor CPU-second k={k} / k=1: {eff:.3f}")


if __name__ == "__main__":
    main()
