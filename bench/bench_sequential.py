"""Sequential input drift at default settings: false alarms, detection delays, cost.

1. False alarms per model on stationary streams (20 N(0, 1) features, each stream with its
   own 5 000-value reference, charts from event 1: warm-up included), over `--fa-events`
   events at the default budget (one per 10^7 events), and on heavily tied Poisson(2)
   features.
2. Detection delay (events from the change to the alert) of the charts, median and p90
   over `--streams` streams per case, the change at a random phase after 500-1 000
   stationary events: +0.5 sd in 1 of 20 features, sd x1.5 in 1, +1 sd in 1, +0.25 sd in 5,
   and 20 Poisson features with one going from rate 2 to 2.71.
3. The same cases through `Engine.process` (`--engine-streams` streams, rule `both`): the
   sequential alert's delay against the window KS test's (window 1 000, checks every 100,
   max KS > 0.1: the defaults before the charts), on identical events.
4. Cost: µs per event of the charts alone (20 features, keys given), and `Engine.process`
   on one model's stream with rule `window` against `sequential` (interleaved repeats).

    python bench/bench_sequential.py [--streams 400] [--fa-events 2e7] [--engine-streams 40]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import orjson

from stream_monitor.checks.sequential import design_size, scores_for
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.detectors.ks import key_bits, ks_keys
from stream_monitor.detectors.sequential_design import ChartDesign
from stream_monitor.engine.core import Engine
from stream_monitor.kernels import SequentialCharts
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.sources.records import RecordBatch
from stream_monitor.tools.drift_streams import (
    Change,
    Sampler,
    delay_summary,
    gaussian,
    poisson,
    run_streams,
    scale,
    shift,
)

F, M, BUDGET = 20, 5000, 1e7
CASES: list[tuple[Sampler, Change]] = [
    (gaussian, shift(0.5)),
    (gaussian, scale(1.5)),
    (gaussian, shift(1.0)),
    (gaussian, shift(0.25, 5)),
    (poisson(2.0), Change("Poisson 2 -> 2.71 in 1", poisson(2.71))),
]


def false_alarms(total: float) -> None:
    for name, null in (("N(0,1)", gaussian), ("Poisson(2)", poisson(2.0))):
        per_stream = 200_000
        streams = max(1, int(total // per_stream))
        t0 = time.perf_counter()
        run = run_streams(
            null,
            None,
            streams=streams,
            features=F,
            reference_size=M,
            before=per_stream,
            after=0,
            false_alarm_events=BUDGET,
            seed=101,
            random_phase=False,
        )
        rate = run.false_alarms / run.events * 1e7
        print(
            f"false alarms, {name:10s}: {run.false_alarms} in {run.events:.2e} events "
            f"= {rate:.2f} per 10^7 ({time.perf_counter() - t0:.0f} s)"
        )


def delays(streams: int) -> None:
    print(f"\ndelays of the charts, {streams} streams a case (median / p90, missed)")
    for i, (null, change) in enumerate(CASES):
        run = run_streams(
            null,
            change,
            streams=streams,
            features=F,
            reference_size=M,
            before=500,
            after=4000,
            false_alarm_events=BUDGET,
            seed=200 + i,
        )
        print(
            f"  {change.name:24s} {run.median_delay:7.1f} / {run.delay_percentile(90):6.1f}"
            f"   missed {run.missed}, false alarms before the change {run.false_alarms}"
        )


def _engine_stream(null: Sampler, change: Change, rng: np.random.Generator) -> tuple:
    reference = null(rng, M, F)
    n0 = 500 + int(rng.integers(0, 501))
    values = null(rng, n0 + 3000, F)
    values[n0:, : change.features] = change.after(rng, 3000, change.features)
    return reference, values, n0


def engine_delays(streams: int) -> None:
    print(f"\nthrough the engine, rule both, {streams} streams a case (median / p90)")
    names = [f"f{j:02d}" for j in range(F)]
    settings = DetectorSettings(input_drift_rule="both")
    for i, (null, change) in enumerate(CASES):
        rng = np.random.default_rng(300 + i)
        found: dict[str, list[float]] = {"cusum": [], "ks": []}
        missed = {"cusum": 0, "ks": 0}
        for s in range(streams):
            reference, values, n0 = _engine_stream(null, change, rng)
            ref = PreparedReference.from_arrays("m", tuple(names), reference, np.zeros(M), 20)
            engine = Engine(settings, {"m": ref})
            batch = RecordBatch()
            for e, row in enumerate(values):
                event = {
                    "model": "m",
                    "features": dict(zip(names, row.tolist(), strict=True)),
                    "prediction": 0.0,
                    "timestamp": 1.7e9 + e,
                }
                batch.append(b"m", orjson.dumps(event), "predictions", 0, e, None)
            alerts = engine.process(batch).alerts
            for test in found:
                fired = [
                    a.events_seen - n0
                    for a in alerts
                    if a.test == test and a.status == "firing" and a.events_seen > n0
                ]
                if fired:
                    found[test].append(fired[0])
                else:
                    missed[test] += 1
            del s
        parts = [
            f"{label} {delay_summary(found[test])} (missed {missed[test]})"
            for test, label in (("cusum", "charts"), ("ks", "window KS"))
        ]
        print(f"  {change.name:24s} " + "   ".join(parts))


def cost(repeats: int) -> None:
    print("\ncost")
    rng = np.random.default_rng(1)
    reference = np.sort(rng.standard_normal((M, F)), axis=0)
    values = rng.standard_normal((100_000, F))
    left = np.column_stack(
        [np.searchsorted(reference[:, j], values[:, j], "left") for j in range(F)]
    )
    right = np.column_stack(
        [np.searchsorted(reference[:, j], values[:, j], "right") for j in range(F)]
    )
    bits = key_bits(np.full(F, M))
    keys = ks_keys(right, left, np.isnan(values), bits)
    design = ChartDesign.solve((design_size(M),) * F, BUDGET)
    rows = [list(r) for r in design.thresholds]
    times, positions = np.zeros(len(values)), np.arange(len(values), dtype=np.int64)
    per_event = []
    for _ in range(5):
        charts = SequentialCharts("m", design.k, design.c, rows, [scores_for(M)] * F)
        t0 = time.perf_counter()
        charts.update(keys, bits, 1, times, positions)
        per_event.append((time.perf_counter() - t0) / len(values) * 1e6)
    print(f"  charts alone, 20 features: {statistics.median(per_event):.3f} µs per event")

    names = [f"f{j:02d}" for j in range(F)]
    ref = PreparedReference.from_arrays("m", tuple(names), reference, np.zeros(M), 20)
    batches = []
    for start in range(0, 100_000, 500):
        batch = RecordBatch()
        for e in range(start, start + 500):
            event = {
                "model": "m",
                "features": dict(zip(names, values[e].round(6).tolist(), strict=True)),
                "prediction": 0.0,
                "timestamp": 1.7e9 + e,
            }
            batch.append(b"m", orjson.dumps(event), "predictions", 0, e, None)
        batches.append(batch)
    seconds: dict[str, list[float]] = {"window": [], "sequential": []}
    for _ in range(repeats):
        for rule in seconds:
            engine = Engine(DetectorSettings(input_drift_rule=rule), {"m": ref})
            engine.process(batches[0])  # the model, its design and its window made
            t0 = time.perf_counter()
            for b in batches[1:]:
                engine.process(b)
            seconds[rule].append(time.perf_counter() - t0)
    n = 500 * (len(batches) - 1)
    w, s = statistics.median(seconds["window"]), statistics.median(seconds["sequential"])
    print(f"  Engine.process, rule window:     {w / n * 1e6:.3f} µs per event")
    print(
        f"  Engine.process, rule sequential: {s / n * 1e6:.3f} µs per event "
        f"(+{(s - w) / n * 1e6:.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=400)
    parser.add_argument("--fa-events", type=float, default=2e7)
    parser.add_argument("--engine-streams", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    opts = parser.parse_args()
    design = ChartDesign.solve((design_size(M),) * F, BUDGET)
    h, _, hq = design.thresholds[0]
    print(
        f"design: F={F}, m={M}, one false alarm per {BUDGET:.0e} events: k={design.k}, "
        f"h={h:.2f}, c={design.c:.4f}, h_scale={hq:.2f}"
    )
    false_alarms(opts.fa_events)
    delays(opts.streams)
    engine_delays(opts.engine_streams)
    cost(opts.repeats)


if __name__ == "__main__":
    main()
