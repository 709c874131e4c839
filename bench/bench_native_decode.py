"""Decoding prediction batches: orjson alone, the Python path (`decode_batch` then
`event_arrays` per model) and the native decoder (`decode.native.decode_native`).

The data: 50 models of `tools.synthetic.SyntheticModel` (20 features, at full precision:
about 870 bytes an event; `--rounded`: the synthetic's 6 decimals), events interleaved
round-robin, about 2% of the feature values missing (half absent, half null), batches of 500
records; every model's schema known (its 20 feature names). Repetitions are interleaved
(orjson, Python, native, orjson, ...) in one process, so that all three see the same machine
state; the figures are the median of the repetitions, in microseconds per event.

    python bench/bench_native_decode.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import orjson

from stream_monitor.decode.arrays import event_arrays
from stream_monitor.decode.native import decode_native
from stream_monitor.decode.predictions import decode_batch
from stream_monitor.sources.records import RecordBatch
from stream_monitor.tools.synthetic import SyntheticModel, interleave

MODELS = 50
BATCH = 500


def make_batches(
    batches: int, rounded: bool, seed: int = 3
) -> tuple[list[RecordBatch], dict[str, tuple[str, ...]]]:
    models = [SyntheticModel(f"model-{k:02d}") for k in range(MODELS)]
    per_model = batches * BATCH // MODELS
    streams = [m.events(0, per_model, seed=seed) for m in models]
    if not rounded:  # the features at full precision (17 digits): about 870 bytes an event
        for m, stream in zip(models, streams, strict=True):
            values = m.arrays(0, per_model, seed)["features"].tolist()
            for e, row in zip(stream, values, strict=True):
                e["features"] = dict(zip(m.feature_names, row, strict=True))
    events = interleave(streams)
    rng = np.random.default_rng(seed)
    for e in events:
        features = e["features"]
        assert isinstance(features, dict)
        for name in list(features):
            u = rng.random()
            if u < 0.01:
                del features[name]
            elif u < 0.02:
                features[name] = None
    out = []
    for b in range(batches):
        batch = RecordBatch()
        for i, e in enumerate(events[b * BATCH : (b + 1) * BATCH]):
            batch.append(str(e["model"]).encode(), orjson.dumps(e), "predictions", 0, i, 1.7e9)
        out.append(batch)
    schemas = {m.name: tuple(m.feature_names) for m in models}
    return out, schemas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batches", type=int, default=20, help="batches per timed repetition")
    parser.add_argument(
        "--rounded", action="store_true", help="features rounded to 6 decimals (about 470 bytes)"
    )
    opts = parser.parse_args()
    batches, schemas = make_batches(opts.batches, opts.rounded)
    events = sum(len(b) for b in batches)
    size = sum(len(v or b"") for b in batches for v in b.values) / events

    def orjson_only() -> None:
        loads = orjson.loads
        for batch in batches:
            for v in batch.values:
                loads(v)  # type: ignore[arg-type]

    def python_path() -> None:
        for batch in batches:
            decoded = decode_batch(batch)
            for name, model_events in decoded.by_model.items():
                event_arrays(schemas[name], model_events)

    def native_path() -> None:
        for batch in batches:
            decode_native(batch, schemas)

    cases: list[tuple[str, Callable[[], None]]] = [
        ("orjson.loads per value", orjson_only),
        ("decode_batch + event_arrays (Python)", python_path),
        ("decode_native (Rust + adapter)", native_path),
    ]
    times: dict[str, list[float]] = {label: [] for label, _ in cases}
    for fn in (f for _, f in cases):
        fn()  # warm up
    for _ in range(opts.repeats):
        for label, fn in cases:
            start = time.perf_counter()
            fn()
            times[label].append((time.perf_counter() - start) / events * 1e6)
    print(
        f"{events} events per repetition, {size:.0f} bytes per event, "
        f"{MODELS} models, batches of {BATCH}"
    )
    print(f"{'case':<40} {'us/event':>9} {'vs Python':>10}")
    python = statistics.median(times["decode_batch + event_arrays (Python)"])
    for label, _ in cases:
        median = statistics.median(times[label])
        print(f"{label:<40} {median:>9.3f} {python / median:>9.1f}x")


if __name__ == "__main__":
    main()
