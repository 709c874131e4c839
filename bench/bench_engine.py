"""Engine alone (no broker) against a re-implementation of the original design's monitor.

Both run in this process on the same stream of JSON-encoded prediction events (20 numeric
features, window 1000, a check every 100 events per model, reference 10 000 events):

- seed: the original single-model design this project started from: per-event deques,
  `np.array(list(deque))` at every check, one `scipy.stats.ks_2samp` per feature, checks from
  100 events in the window;
- engine: stream_monitor's Engine with the same window, cadence and minimum window.

The seed is too slow to run the whole stream in a reasonable time: it is timed on a stretch
of the stream after its windows are full (its steady state, as the engine's run is mostly);
the rates are events per second of each. The KS statistics of both are compared at every check
of one model: they must be identical.

Both timed stretches start after `gc.freeze()`: the bench holds its whole input (200 000
encoded events and their batches) for the run, which a consumer never does; without the
freeze, the collector's passes over those inputs land in whichever run is timed. The
service freezes what its start-up built the same way (`stream-monitor run`).

    python bench/bench_engine.py [--events 200000] [--seed-events 10000] [--models 10]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import time
from collections import deque
from pathlib import Path

import numpy as np
import orjson
import scipy
from scipy.stats import ks_2samp

from stream_monitor.config.detector import DetectorSettings
from stream_monitor.engine.core import Engine
from stream_monitor.reference.loading import prepare_from_events
from stream_monitor.sources.records import RecordBatch
from stream_monitor.tools.synthetic import SyntheticModel, interleave

WINDOW, CHECK_EVERY, REFERENCE, THRESHOLD = 1000, 100, 10_000, 0.1


class SeedModelMonitor:
    """The original design's in-process monitor for one model, as described."""

    def __init__(self, reference_data: np.ndarray, reference_predictions: np.ndarray) -> None:
        self.reference_data = reference_data
        self.reference_predictions = reference_predictions
        self.input_window: deque[np.ndarray] = deque(maxlen=WINDOW)
        self.prediction_window: deque[float] = deque(maxlen=WINDOW)
        self.latency_window: deque[float] = deque(maxlen=WINDOW)
        self.timestamp_window: deque[float] = deque(maxlen=WINDOW)
        self.error_window: deque[float] = deque(maxlen=WINDOW)
        self.prediction_count = 0
        self.drift_detections = 0
        self.last_ks: list[float] = []

    def log_prediction(
        self,
        features: np.ndarray,
        prediction: float,
        latency_ms: float,
        timestamp: float,
        actual: float | None,
    ) -> None:
        self.input_window.append(features)
        self.prediction_window.append(prediction)
        self.latency_window.append(latency_ms)
        self.timestamp_window.append(timestamp)
        if actual is not None:
            self.error_window.append(abs(prediction - actual))
        self.prediction_count += 1
        if self.prediction_count % CHECK_EVERY == 0:
            drifted, _score = self.detect_input_drift()
            if drifted:
                self.drift_detections += 1

    def detect_input_drift(self) -> tuple[bool, float]:
        if len(self.input_window) < 100:
            return False, 0.0
        current = np.array(list(self.input_window))
        self.last_ks = [
            ks_2samp(self.reference_data[:, i], current[:, i]).statistic
            for i in range(current.shape[1])
        ]
        score = max(self.last_ks)
        return score > THRESHOLD, score


def make_stream(n_models: int, per_model: int) -> tuple[list[SyntheticModel], list[bytes]]:
    models = [
        SyntheticModel(f"model-{i:03d}", drift_start=per_model // 2 if i % 5 == 0 else None)
        for i in range(n_models)
    ]
    events = interleave([m.events(0, per_model) for m in models])
    return models, [orjson.dumps(e) for e in events]


def batches(values: list[bytes], size: int) -> list[RecordBatch]:
    out = []
    for start in range(0, len(values), size):
        batch = RecordBatch()
        for i, v in enumerate(values[start : start + size]):
            batch.append(None, v, "predictions", 0, start + i, None)
        out.append(batch)
    return out


def run_seed(models: list[SyntheticModel], values: list[bytes], warm: int, timed: int) -> float:
    """Events/s of the seed monitors over values[warm:warm + timed], windows already full."""
    names = models[0].feature_names
    monitors = {}
    for m in models:
        ref = m.reference(REFERENCE)
        monitors[m.name] = SeedModelMonitor(
            np.array([[e["features"][n] for n in names] for e in ref]),  # type: ignore[index]
            np.array([e["prediction"] for e in ref]),
        )

    def feed(chunk: list[bytes]) -> None:
        for value in chunk:
            e = orjson.loads(value)
            feats = e["features"]
            monitors[e["model"]].log_prediction(
                np.array([feats[n] for n in names]),
                e["prediction"],
                e["latency_ms"],
                e["timestamp"],
                e.get("actual"),
            )

    feed(values[:warm])
    gc.freeze()  # as for the engine
    started = time.perf_counter()
    feed(values[warm : warm + timed])
    return timed / (time.perf_counter() - started)


def run_engine(models: list[SyntheticModel], values: list[bytes], batch_size: int) -> float:
    refs = {
        m.name: prepare_from_events(m.name, m.reference(REFERENCE), 20, "bench") for m in models
    }
    engine = Engine(
        DetectorSettings(window_size=WINDOW, check_every=CHECK_EVERY, min_window=100), refs
    )
    prepared = batches(values, batch_size)
    gc.freeze()  # the bench's own inputs are no one's live objects (see the module's doc)
    started = time.perf_counter()
    for batch in prepared:
        engine.process(batch)
    return len(values) / (time.perf_counter() - started)


def compare_ks(model: SyntheticModel, n_events: int) -> int:
    """Checks of one model where the seed's and the engine's KS statistics are identical."""
    names = model.feature_names
    ref = model.reference(REFERENCE)
    seed = SeedModelMonitor(
        np.array([[e["features"][n] for n in names] for e in ref]),  # type: ignore[index]
        np.array([e["prediction"] for e in ref]),
    )
    engine = Engine(
        DetectorSettings(window_size=WINDOW, check_every=CHECK_EVERY, min_window=100),
        {model.name: prepare_from_events(model.name, ref, 20, "bench")},
    )
    values = [orjson.dumps(e) for e in model.events(0, n_events)]
    compared = 0
    for batch in batches(values, CHECK_EVERY):  # one check per batch
        for value in batch.values:
            assert value is not None
            e = orjson.loads(value)
            seed.log_prediction(
                np.array([e["features"][n] for n in names]),
                e["prediction"],
                e["latency_ms"],
                e["timestamp"],
                e.get("actual"),
            )
        (checks,) = engine.process(batch).checks.values()  # one model (its version's key)
        result = checks[0]
        ours = [f.score for f in result.features()]
        if ours != [float(s) for s in seed.last_ks]:
            raise AssertionError(f"KS statistics differ at check {compared + 1}")
        compared += 1
    return compared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed-events", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/engine.json"))
    args = parser.parse_args()

    models, values = make_stream(args.models, args.events // args.models)
    identical_checks = compare_ks(models[0], 3000)
    engine_rate = run_engine(models, values, args.batch_size)
    seed_rate = run_seed(models, values, args.models * WINDOW, args.seed_events)
    result = {
        "machine": f"{platform.machine()} cores={os.cpu_count()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "events": len(values),
        "models": args.models,
        "features": 20,
        "window": WINDOW,
        "check_every": CHECK_EVERY,
        "reference": REFERENCE,
        "engine_events_per_s": round(engine_rate),
        "seed_events_measured": args.seed_events,
        "seed_events_per_s": round(seed_rate),
        "ratio": round(engine_rate / seed_rate, 1),
        "ks_identical_checks": identical_checks,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
