"""Memory per model, and many models in one process: exact vs compact references.

Part 1, bytes per model (window 1000 x 20 numeric features, check every 100, KS tests), for
references of 2 000 and 10 000 events, exact and with `reference_summary` (default q = 100):

- `arrays`: sum of `nbytes` of the model's window (`ModelWindow.nbytes`) and reference
  (`PreparedReference.nbytes`): the payload, deterministic;
- `traced`: what `tracemalloc` says 20 such models retain after they are built and fed 1 100
  events each through `Engine.process` (windows full, checks run), divided by 20. numpy
  reports its buffers to tracemalloc, so this counts the arrays plus every Python object the
  engine keeps per model (MonitoredModel, alert state, last check results). It does not see
  what the native core allocates (the references' sparse indexes, the charts, the native
  ADWIN, arrays it returns): part 2's RSS per model does, and its ratio (`ratio_rss`) is
  the figure judged.

The yardstick is the raw window (the columns a window must hold: 20 features + prediction
+ actual + latency + timestamp as float64, 1000 x 24 x 8 = 192 000 bytes) plus the prepared
reference (`nbytes` of the same reference); the target is at most 1.25 x that per model.

Part 0: the compact KS against `ks_2samp` on 30 seeds x 20 features (ties included).

Part 2, fleets (a child process per reference mode, so RSS is its own): 10 000 models and 50
models, each in its own Engine, references of 2 000 events built with
`PreparedReference.from_arrays`. Each model is created by `Engine.process` (one event each),
then its window is filled to 1 000 rows through the window's own path (`WindowBlock` of 999
events, `ModelWindow.append`; the ADWIN error detector is not fed by this fill), so the timed
stretch runs in steady state: full windows, a check per model every 100 events. The timed
stream is round-robin over the models (as `bench_engine.py`), JSON-encoded, in batches of
1 000; only `Engine.process` is timed, in ten slices alternating between the two fleets, so
that other load falls on both alike. Each slice's batches are made before the slice is timed
and processed back to back, as a consumer drains a backlog. With `--batches-between` each
batch is made just before it is processed instead (the harness before 2026-12-07, stage 12):
making a batch draws every one of its models' arrays, which for 10 000 models means 10 000
generator calls per 10 batches against one per 10 batches for 50 models, and that work
evicts the caches the large fleet's next batch would find warm. RSS: VmRSS and VmHWM from
/proc/self/status. A cProfile of a further stretch: µs per (model, batch) pair.

    python bench/bench_memory.py [--points 100] [--fleet 10000] [--fleet-events 1000000]
        [--batches-between]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import ctypes
import gc
import json
import os
import platform
import pstats
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import scipy
from scipy.stats import ks_2samp

from stream_monitor.config.detector import DetectorSettings
from stream_monitor.detectors.ks import ks_keys, ks_statistic
from stream_monitor.engine.core import Engine
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.reference.summary import bound
from stream_monitor.sources.records import RecordBatch
from stream_monitor.tools.synthetic import SyntheticModel
from stream_monitor.window.ring import WindowBlock

WINDOW, CHECK_EVERY, FEATURES, BATCH = 1000, 100, 20, 1000
RAW_WINDOW = WINDOW * (FEATURES + 4) * 8  # features, prediction, actual, latency, timestamp
T0 = 1_767_225_600.0


def reference(model: SyntheticModel, size: int, points: int | None) -> PreparedReference:
    a = model.arrays(0, size, seed=10_000, drift=False)
    ref = PreparedReference.from_arrays(
        model.name, model.feature_names, a["features"], a["prediction"], 20
    )
    return ref.compacted(points) if points else ref


def settings() -> DetectorSettings:
    return DetectorSettings(window_size=WINDOW, check_every=CHECK_EVERY)


def stream(models: list[SyntheticModel], start: int, rounds: int) -> Iterator[RecordBatch]:
    """Round-robin events (round r: event r of every model), JSON-encoded, in batches.

    Arrays are drawn a chunk of about 10 000 events at a time and events are encoded batch
    by batch, so the stream itself holds little memory (the fleet's RSS is the engine's).
    """
    names = models[0].feature_names
    n = len(models)
    chunk = max(1, 10_000 // n)
    offset = 0
    batch = RecordBatch()
    for r0 in range(start, start + rounds, chunk):
        k = min(chunk, start + rounds - r0)
        arrays = [m.arrays(r0, k, seed=0) for m in models]
        feats = [np.round(a["features"], 6).tolist() for a in arrays]
        cols = {
            key: [np.round(a[key], 6).tolist() for a in arrays]
            for key in ("prediction", "actual", "latency_ms")
        }
        for r in range(k):
            for i, m in enumerate(models):
                event = {
                    "model": m.name,
                    "model_version": m.version,
                    "event_id": f"{m.name}-{r0 + r}",
                    "timestamp": round(T0 + (r0 + r) * 0.01, 3),
                    "features": dict(zip(names, feats[i][r], strict=True)),
                    **{key: cols[key][i][r] for key in cols},
                }
                batch.append(None, orjson.dumps(event), "predictions", 0, offset, None)
                offset += 1
                if len(batch.values) == BATCH:
                    yield batch
                    batch = RecordBatch()
    if batch.values:
        yield batch


# -- part 1: bytes per model ------------------------------------------------------------------


def per_model(ref_size: int, points: int | None, n_models: int = 20) -> dict[str, Any]:
    models = [SyntheticModel(f"m{i:05d}") for i in range(n_models)]
    prepared = list(stream(models, 0, WINDOW + CHECK_EVERY))
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    refs = {m.name: reference(m, ref_size, points) for m in models}
    engine = Engine(settings(), refs)
    for batch in prepared:
        engine.process(batch)
    gc.collect()
    traced = (tracemalloc.get_traced_memory()[0] - base) / n_models
    tracemalloc.stop()
    state = engine.models[models[0].key]
    assert state.window is not None and state.window.count == WINDOW and state.checks > 0
    window_bytes = state.window.nbytes()
    ref_bytes = refs[models[0].name].nbytes()
    yardstick = RAW_WINDOW + ref_bytes
    return {
        "reference_events": ref_size,
        "reference_summary": points,
        "window_nbytes": window_bytes,
        "reference_nbytes": ref_bytes,
        "arrays_bytes": window_bytes + ref_bytes,
        "traced_bytes": round(traced),
        "raw_window_plus_reference": yardstick,
        "ratio_arrays": round((window_bytes + ref_bytes) / yardstick, 3),
        "ratio_traced": round(traced / yardstick, 3),
    }


# -- accuracy of the compact KS against scipy ------------------------------------------------


def accuracy(points: int, ref_size: int, seeds: int = 30, n: int = 1000) -> dict[str, Any]:
    """Largest |KS_summary - ks_2samp| over seeds x 20 features, against the bound.

    Half the features continuous (normal), half with ties (rounded to 0.1, or integers
    0..299); windows drawn from the reference's law, half of them shifted by 0.2 sd so that
    statistics sit near the 0.1 threshold. Decisions at threshold 0.1 that differ are counted.
    """
    worst = worst_ratio = total = 0.0
    flips = count = 0
    limit = 0.0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        shift = 0.2 if seed % 2 else 0.0
        ref = rng.normal(size=(ref_size, FEATURES))
        win = rng.normal(shift, 1.0, size=(n, FEATURES))
        ref[:, 10:15], win[:, 10:15] = np.round(ref[:, 10:15], 1), np.round(win[:, 10:15], 1)
        ref[:, 15:] = rng.integers(0, 300, (ref_size, 5))
        win[:, 15:] = rng.integers(int(60 * shift), 300, (n, 5))
        names = [f"f{j:02d}" for j in range(FEATURES)]
        compact = PreparedReference.from_arrays("a", names, ref, ref[:, 0], 20).compacted(points)
        assert compact.summary is not None
        right, left = compact.cdf_counts(win)
        keys = ks_keys(right, left, ~np.isfinite(win), compact.key_bits)
        ours, _ = ks_statistic(np.asfortranarray(keys), compact.sizes, compact.key_bits)
        for j in range(FEATURES):
            exact = ks_2samp(ref[:, j], win[:, j], method="asymp").statistic
            diff = abs(float(ours[j]) - exact)
            b = float(compact.summary.ks_bound[j])
            assert diff <= b + 1e-12, (seed, j, diff, b)
            worst, total, count = max(worst, diff), total + diff, count + 1
            worst_ratio = max(worst_ratio, diff / b if b else 0.0)
            flips += (ours[j] > 0.1) != (exact > 0.1)
            limit = max(limit, b)
    return {
        "reference_events": ref_size,
        "points": points,
        "bound_a_priori": round(bound(np.array([ref_size]), points), 5),
        "bound_largest_feature": round(limit, 5),
        "max_abs_diff": round(worst, 5),
        "max_diff_over_feature_bound": round(worst_ratio, 3),
        "mean_abs_diff": round(total / count, 6),
        "decisions_flipped_at_0.1": f"{flips} of {count}",
    }


# -- part 2: a fleet in one process ---------------------------------------------------------


def rss() -> dict[str, int]:
    """VmRSS and VmHWM (peak) of this process, bytes, after handing freed heap back to the
    system (glibc malloc_trim), so that RSS counts what is live, not what was once used."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    out: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def fill_windows(engine: Engine, models: list[SyntheticModel]) -> None:
    """Create every model through the engine, then fill its window to WINDOW rows."""
    for batch in stream(models, 0, 1):
        engine.process(batch)
    for m in models:
        state = engine.models[m.key]
        assert state.window is not None
        a = m.arrays(1, WINDOW - 1, seed=0)
        times = T0 + np.arange(1, WINDOW) * 0.01
        block = WindowBlock(
            a["features"], a["prediction"], a["actual"], a["latency_ms"], times, state.reference
        )
        state.window.append(block, 0, len(block))
        state.events_seen += len(block)
        state.since_check = 0


def feed(
    engine: Engine,
    models: list[SyntheticModel],
    start: int,
    events: int,
    between: bool = False,
) -> tuple[float, float]:
    """Seconds spent in Engine.process (and in its checks) over `events` round-robin events,
    the batches made beforehand (`between`: each just before it is processed)."""
    spent = checks = 0.0
    batches = stream(models, start, events // len(models))
    for batch in batches if between else list(batches):
        t = time.perf_counter()
        outcome = engine.process(batch)
        spent += time.perf_counter() - t
        checks += sum(outcome.check_seconds)
    return spent, checks


STAGES = {  # stage -> the (file suffix, function)s whose cumulative times it sums
    "decode_batch (per event)": [("decode/predictions.py", "decode_batch")],
    "add_model": [("engine/core.py", "add_model")],
    "_block: the model's events as arrays": [("engine/core.py", "_block")],
    "  WindowBlock(): reference look-ups": [("window/ring.py", "__init__")],
    "    cdf_counts (searchsorted / knots)": [
        ("reference/prepared.py", "cdf_counts"),
        ("reference/summary.py", "cdf_counts"),
    ],
    "    ks_keys": [("detectors/ks.py", "ks_keys")],
    "    prediction_bin": [("reference/prepared.py", "prediction_bin")],
    "_advance": [("engine/core.py", "_advance")],
    "  ModelWindow.append": [("window/ring.py", "append")],
    "  ADWIN on the errors": [("checks/concept.py", "watch")],
    "  run_checks": [("checks/run.py", "run_checks")],
    "  alert state update": [("alerts/transitions.py", "update")],
    "label join (events_taken)": [("labels/join.py", "events_taken")],
}


def profile(engine: Engine, models: list[SyntheticModel], start: int, rounds: int) -> dict:
    """cProfile of `rounds` more rounds: cumulative µs per (model, batch) pair by stage, and
    the functions with the most own time."""
    profiler = cProfile.Profile()
    pairs = checks = 0
    total = 0.0
    for batch in stream(models, start, rounds):
        profiler.enable()
        t = time.perf_counter()
        outcome = engine.process(batch)
        total += time.perf_counter() - t
        profiler.disable()
        pairs += len(outcome.ok_counts)
        checks += len(outcome.check_seconds)
    stats = pstats.Stats(profiler)
    rows: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    cum: dict[str, float] = {}
    for (file, _line, func), row in rows.items():
        for stage, places in STAGES.items():
            if any(func == name and file.endswith(suffix) for suffix, name in places):
                cum[stage] = cum.get(stage, 0.0) + row[3]
    process = sum(
        r[3] for (f, _, fn), r in rows.items() if fn == "process" and f.endswith("engine/core.py")
    )
    inner = sum(v for k, v in cum.items() if not k.startswith(" "))
    cum["process itself: routing, outcome bookkeeping"] = process - inner
    top = sorted(rows.items(), key=lambda kv: -kv[1][2])[:15]
    return {
        "events": rounds * len(models),
        "model_batch_pairs": pairs,
        "checks": checks,
        "profiled_us_per_pair": round(total / pairs * 1e6, 1),
        "stages_us_per_pair": {k: round(v / pairs * 1e6, 1) for k, v in cum.items()},
        "own_time_us_per_pair": {
            f"{Path(f).name}:{fn}": round(r[2] / pairs * 1e6, 1) for (f, _, fn), r in top
        },
    }


@dataclass(slots=True)
class Fleet:
    """Models of one engine and the next round of the stream each model gets."""

    models: list[SyntheticModel]
    engine: Engine
    next_round: int = WINDOW
    seconds: float = 0.0
    check_seconds: float = 0.0
    events: int = 0

    def run(self, rounds: int, timed: bool = True, between: bool = False) -> None:
        events = rounds * len(self.models)
        spent, checks = feed(self.engine, self.models, self.next_round, events, between)
        self.next_round += rounds
        if timed:
            self.seconds += spent
            self.check_seconds += checks
            self.events += rounds * len(self.models)

    def figures(self) -> dict[str, Any]:
        states = self.engine.models.values()
        return {
            "models": len(self.models),
            "windows_full": sum(1 for s in states if s.window and s.window.count == WINDOW),
            "timed_events": self.events,
            "events_per_s": round(self.events / self.seconds),
            "us_per_event": round(self.seconds / self.events * 1e6, 1),
            "checks_us_per_event": round(self.check_seconds / self.events * 1e6, 1),
        }


def build(n_models: int, points: int | None, prefix: str) -> tuple[Fleet, dict[str, Any]]:
    models = [SyntheticModel(f"{prefix}{i:05d}") for i in range(n_models)]
    marks: dict[str, Any] = {"rss_start": rss()["VmRSS"]}
    t = time.perf_counter()
    refs = {m.name: reference(m, 2000, points) for m in models}
    marks["reference_build_s"] = round(time.perf_counter() - t, 1)
    engine = Engine(settings(), refs)
    marks["rss_after_references"] = rss()["VmRSS"]
    t = time.perf_counter()
    fill_windows(engine, models)
    marks["window_fill_s"] = round(time.perf_counter() - t, 1)
    marks["rss_after_fill"] = rss()["VmRSS"]
    return Fleet(models, engine), marks


def fleet(args: argparse.Namespace, points: int | None) -> dict[str, Any]:
    """A small and a large fleet in this process, timed in alternating slices so that load
    from elsewhere on the machine falls on both alike; RSS counts the large one."""
    small, _ = build(args.small_fleet, points, "s")
    large, marks = build(args.fleet, points, "m")
    for f in (small, large):
        f.run(10, timed=False)  # warm-up: 10 events per model
    slices = 10
    large_rounds = args.fleet_events // args.fleet // slices
    small_rounds = args.small_fleet_events // args.small_fleet // slices
    for _ in range(slices):
        large.run(large_rounds, between=args.batches_between)
        small.run(small_rounds, between=args.batches_between)
    after = rss()
    prof_rounds = max(1, args.profile_events // args.fleet)
    big, little = large.figures(), small.figures()
    first = large.engine.models[large.models[0].key].reference
    assert first is not None
    yardstick = RAW_WINDOW + first.nbytes()
    per_model = (after["VmRSS"] - marks["rss_start"]) / args.fleet
    return {
        "reference_summary": points,
        "large": {
            **big,
            **marks,
            "rss_after_run": after["VmRSS"],
            "rss_peak": after["VmHWM"],
            "rss_per_model": round(per_model),
            # with an exact reference, the RSS a model costs against the same yardstick as
            # part 1's: everything counted, the native heap and the allocator's pages too
            "raw_window_plus_reference": yardstick,
            "ratio_rss": round(per_model / yardstick, 3),
            "profile": profile(large.engine, large.models, large.next_round, prof_rounds),
        },
        "small": {
            **little,
            "profile": profile(
                small.engine,
                small.models,
                small.next_round,
                args.profile_events // len(small.models),
            ),
        },
        "rate_ratio": round(big["events_per_s"] / little["events_per_s"], 3),
    }


def child(args: argparse.Namespace, points: int | None) -> dict[str, Any]:  # own RSS
    cmd = [sys.executable, __file__, "--child", "--points", str(points or 0)]
    cmd += ["--batches-between"] if args.batches_between else []
    for name in ("fleet", "small_fleet", "fleet_events", "small_fleet_events", "profile_events"):
        cmd += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100, help="reference_summary q")
    parser.add_argument("--fleet", type=int, default=10_000)
    parser.add_argument("--small-fleet", type=int, default=50)
    parser.add_argument("--fleet-events", type=int, default=1_000_000)
    parser.add_argument("--small-fleet-events", type=int, default=200_000)
    parser.add_argument("--profile-events", type=int, default=20_000)
    parser.add_argument(
        "--batches-between",
        action="store_true",
        help="make each timed batch just before it is processed (default: a slice's beforehand)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--skip-fleet", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench/results/memory.json"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(fleet(args, args.points or None)))
        return
    result: dict[str, Any] = {
        "machine": f"{platform.machine()} cores={os.cpu_count()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "raw_window_bytes": RAW_WINDOW,
        "accuracy": [],
        "per_model": [],
        "fleet": [],
    }
    for ref_size in (2000, 10_000):
        for points in sorted({32, args.points, 200}):
            row = accuracy(points, ref_size)
            print(json.dumps(row), flush=True)
            result["accuracy"].append(row)
    for ref_size in (2000, 10_000):
        exact = per_model(ref_size, None)
        compact = per_model(ref_size, args.points)
        # the compact model against the exact mode's yardstick (raw window + whole reference)
        compact["ratio_traced_vs_exact_yardstick"] = round(
            compact["traced_bytes"] / exact["raw_window_plus_reference"], 3
        )
        for row in (exact, compact):
            print(json.dumps(row), flush=True)
            result["per_model"].append(row)
    if not args.skip_fleet:
        for points in (None, args.points):
            result["fleet"].append(child(args, points))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
