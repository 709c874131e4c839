"""Engine alone, the shape of the end-to-end bench: where a batch's time goes, and two A/Bs
measured in one process, batch by batch in alternation (these machines are noisy).

50 models of 20 numeric features (the synthetic generator), references of 5 000 events,
defaults otherwise (window 1 000, a check every 100, sequential charts), batches of 5 000
JSON records in shuffled model order: each model has about 100 events per batch, so its
check falls mid-batch and the fleet stops it there.

1. Waves against one by one (`engine/waves.py`): two engines on the same batches, one
   with an observer (which keeps the model-by-model pass: each stopped model resumed alone
   after its checks), one without (every stopped model checked, then all resumed in one
   call, side by side).
2. The records read on one thread and on two (`decode_predictions` with a fleet of each:
   `validate_on` reads stretches of the batch side by side).
3. The stages of the engine with waves, by wrapping its calls: the decoder, the fleet's
   first runs (ingest), the resumes, the checks.

    python bench/bench_batch_stages.py [--events 400000] [--models 50] [--batch 5000]
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import logging
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stream_monitor.alerts.outcome import LATENCY_BUCKETS_SECONDS
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.engine import native_windows
from stream_monitor.engine.core import Engine
from stream_monitor.engine.observers import EngineObserver
from stream_monitor.kernels import WindowFleet, decode_predictions
from stream_monitor.reference.loading import prepare_from_events
from stream_monitor.sources.records import RecordBatch
from stream_monitor.tools.synthetic import SyntheticModel, interleave

WARM_EVENTS = 150_000  # windows full and every model checked before timing


def make_batches(models: list[SyntheticModel], events: int, size: int) -> list[RecordBatch]:
    merged = interleave([m.events(0, events // len(models), seed=i) for i, m in enumerate(models)])
    random.Random(1).shuffle(merged)
    values = [orjson.dumps(e) for e in merged]
    batches = []
    for start in range(0, len(values), size):
        batch = RecordBatch()
        for i, v in enumerate(values[start : start + size]):
            batch.append(None, v, "predictions", 0, start + i, None)
        batches.append(batch)
    return batches


def per_event(seconds: list[float], size: int) -> float:
    return statistics.median(seconds) / size * 1e6


def waves_against_one_by_one(refs: dict[str, Any], batches: list[RecordBatch], size: int) -> dict:
    waved, one_by_one = Engine(DetectorSettings(), refs), Engine(DetectorSettings(), refs)
    one_by_one.observe(EngineObserver())  # hears nothing; keeps the model-by-model pass
    warm = WARM_EVENTS // size
    for b in batches[:warm]:
        waved.process(b)
        one_by_one.process(b)
    gc.freeze()
    times: dict[str, list[float]] = {"waves": [], "one_by_one": []}
    for i, b in enumerate(batches[warm:]):
        order = [("waves", waved), ("one_by_one", one_by_one)]
        for name, engine in order if i % 2 else order[::-1]:
            t = time.perf_counter()
            engine.process(b)
            times[name].append(time.perf_counter() - t)
    waves, one = per_event(times["waves"], size), per_event(times["one_by_one"], size)
    return {"waves_us": waves, "one_by_one_us": one, "ratio": waves / one}


def read_threads(batches: list[RecordBatch], models: list[SyntheticModel], size: int) -> dict:
    names = tuple(f"f{j:02d}" for j in range(20))
    schemas = {f"{m.name}@v1": names for m in models} | {m.name: names for m in models}
    fleets = {t: WindowFleet(list(LATENCY_BUCKETS_SECONDS), t) for t in (1, 2)}
    times: dict[int, list[float]] = {1: [], 2: []}
    for i, b in enumerate(batches[:40]):
        for t in (1, 2) if i % 2 else (2, 1):
            start = time.perf_counter()
            decode_predictions(b.values, b.keys, b.timestamps, schemas, fleets[t], True)
            times[t].append(time.perf_counter() - start)
    one, two = per_event(times[1], size), per_event(times[2], size)
    return {"one_thread_us": one, "two_threads_us": two, "ratio": two / one}


def stages(refs: dict[str, Any], batches: list[RecordBatch], size: int) -> dict:
    engine = Engine(DetectorSettings(), refs)
    spent: collections.Counter[str] = collections.Counter()

    def timed(owner: Any, attr: str, label: str) -> None:
        call: Callable[..., Any] = getattr(owner, attr)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - start

        setattr(owner, attr, wrapper)

    timed(native_windows, "decode_native", "decode")
    timed(engine._native, "decode", "decode and first runs")
    timed(engine._native, "resume_many", "resumes")
    timed(engine, "_due_check", "checks")
    warm = WARM_EVENTS // size
    for b in batches[:warm]:
        engine.process(b)
    spent.clear()
    total = 0.0
    for b in batches[warm:]:
        start = time.perf_counter()
        engine.process(b)
        total += time.perf_counter() - start
    events = (len(batches) - warm) * size
    spent["first runs"] = spent.pop("decode and first runs") - spent["decode"]
    out = {k: v / events * 1e6 for k, v in spent.items()}
    out["other"] = (total - sum(spent.values())) / events * 1e6
    out["total"] = total / events * 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/batch_stages.json"))
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the references' size notes
    models = [SyntheticModel(f"m{i:02d}", n_features=20) for i in range(args.models)]
    refs = {m.name: prepare_from_events(m.name, m.reference(5000), 20, "bench") for m in models}
    batches = make_batches(models, args.events, args.batch)
    result = {
        "waves": waves_against_one_by_one(refs, batches, args.batch),
        "read_threads": read_threads(batches, models, args.batch),
        "stages_us_per_event": stages(refs, batches, args.batch),
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
