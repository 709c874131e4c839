"""The full default check as the engine runs it, on one model: µs per check, and its parts.

A model of 20 numeric features (the synthetic generator; values with 6 decimals, its
reference 10 000 events) is fed 1 100 events through `Engine.process` (its window of 1 000
full, written by the native core as in the service), then the check the engine runs every
`check_every` events is timed: `run_checks` (input drift by KS, prediction drift, performance,
latency, data quality) and the concept-drift result, with the default settings. Each part is
timed alone too. Before timing, every feature's KS statistic of the check is compared with
`scipy.stats.ks_2samp` on the window's values (bit for bit; exit status 1 if one differs).

Repetitions of all the timings are interleaved in one process; the figures are medians in µs.

    python bench/bench_check.py [--repeats 300] [--events-shift 0.5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import orjson
from scipy.stats import ks_2samp

from stream_monitor.checks import input_drift, operations, performance, prediction
from stream_monitor.checks.run import run_checks
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.engine.core import Engine
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.sources.records import RecordBatch
from stream_monitor.tools.synthetic import SyntheticModel


def engine_with_full_window(shift: float) -> Engine:
    model = SyntheticModel("m", 20, drift_start=600, drift_shift=shift)
    a = model.arrays(0, 10_000, seed=10_000, drift=False)
    reference = PreparedReference.from_arrays(
        "m", model.feature_names, a["features"], a["prediction"], 20
    )
    engine = Engine(DetectorSettings(), {"m": reference})
    batch = RecordBatch()
    for i, event in enumerate(model.events(0, 1100)):
        batch.append(b"m", orjson.dumps(event), "predictions", 0, i, None)
    engine.process(batch)
    return engine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--events-shift", type=float, default=0.5, help="drift, in sd")
    opts = parser.parse_args()
    engine = engine_with_full_window(opts.events_shift)
    model = engine.models["m@v1"]
    window, plan = model.window, model.plan
    assert window is not None and window.reference is not None
    print(f"window {window.count} rows, written natively: {engine.writes_natively('m@v1')}")

    result = input_drift.input_drift(window, plan)
    assert result.feature_scores is not None
    scores = {name: score for name, _test, score in result.feature_scores()}
    reference = window.reference
    for j, name in enumerate(reference.feature_names):
        values = window.features[: window.count, j]
        column = reference.sorted_columns[j]
        want = ks_2samp(column, values[np.isfinite(values)]).statistic
        if scores[name] != want:
            print(f"feature {name}: {scores[name]!r} differs from ks_2samp's {want!r}")
            return 1

    def full() -> object:
        results = run_checks(window, plan, model.class_tally)
        results.append(model.errors.check())
        return results

    parts: dict[str, Callable[[], object]] = {
        "full default check": full,
        "input drift (KS of 20 features)": lambda: input_drift.input_drift(window, plan),
        "prediction drift (JS and KS)": lambda: prediction.prediction_drift(window, plan),
        "performance (MAE, RMSE)": lambda: performance.performance(window, plan, None),
        "latency percentiles": lambda: operations.latency(window, plan),
        "data quality": lambda: operations.data_quality(window, plan),
        "concept drift (ADWIN result)": lambda: model.errors.check(),
    }
    times: dict[str, list[float]] = {k: [] for k in parts}
    for fn in parts.values():  # warm
        for _ in range(20):
            fn()
    for _ in range(opts.repeats):
        for name, fn in parts.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e6)
    print(f"{'part':<36} {'median us':>10} {'min us':>8}")
    for name, ts in times.items():
        print(f"{name:<36} {statistics.median(ts):>10.1f} {min(ts):>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
