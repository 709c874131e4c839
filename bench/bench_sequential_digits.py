"""Sequential input drift on real data: scikit-learn's handwritten digits (shipped with the
package: 1 797 images of 8 x 8 pixels, 64 integer features from 0 to 16, most values tied,
some pixels constant), through `Engine.process` at default settings with the window test
alongside (`--input-drift-rule both`).

Each run shuffles the images: 900 are the model's reference, the other 897 the pool the
live stream draws from (with replacement), so the reference is a sample, as in production.

1. False alarms: `--fa-runs` stationary streams of `--fa-events` events each, the classes in
   their natural mix.
2. Delays (median / p90 over `--runs` runs; the change after 500-1 000 stationary events):
   - class mix: the share of the digit 8 grows from about 10 % to 30 % (a prior shift: every
     pixel's distribution moves a little);
   - ink: every pixel value times 1.15, clipped at 16 (a scanner recalibrated);
   - a class disappears: no more 0s (about 10 % of the images).

Needs scikit-learn (not a dependency of the package): `pip install scikit-learn`.

    python bench/bench_sequential_digits.py [--runs 40] [--fa-runs 100] [--fa-events 20000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import orjson

from stream_monitor.config.detector import DetectorSettings
from stream_monitor.engine.core import Engine
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.sources.records import RecordBatch
from stream_monitor.tools.drift_streams import delay_summary

NAMES = tuple(f"px{j:02d}" for j in range(64))
Draw = Callable[[np.random.Generator, np.ndarray, np.ndarray, int], np.ndarray]


def natural(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    return x[rng.integers(0, len(x), n)]


def more_eights(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    eights, others = x[y == 8], x[y != 8]
    pick = rng.random(n) < 0.3
    out = others[rng.integers(0, len(others), n)]
    out[pick] = eights[rng.integers(0, len(eights), int(pick.sum()))]
    return out


def more_ink(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(natural(rng, x, y, n) * 1.15, 16.0)


def no_zeros(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    rest = x[y != 0]
    return rest[rng.integers(0, len(rest), n)]


def run(reference: np.ndarray, values: np.ndarray) -> list[tuple[str, str, int]]:
    """(test, status, events_seen) of the input-drift alerts of one stream."""
    ref = PreparedReference.from_arrays("digits", NAMES, reference, np.zeros(len(reference)), 20)
    engine = Engine(DetectorSettings(input_drift_rule="both"), {"digits": ref})
    out = []
    for start in range(0, len(values), 1000):
        batch = RecordBatch()
        for e in range(start, min(start + 1000, len(values))):
            features = dict(zip(NAMES, values[e].tolist(), strict=True))
            event = {"model": "digits", "features": features, "prediction": 0.0}
            batch.append(b"digits", orjson.dumps(event), "p", 0, e, None)
        for a in engine.process(batch).alerts:
            if a.kind == "input_drift":
                out.append((a.test, a.status, a.events_seen))
    return out


def split(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    order = rng.permutation(len(x))
    ref, pool = order[:900], order[900:]
    return x[ref], x[pool], y[pool]


def main() -> None:
    from sklearn.datasets import load_digits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--fa-runs", type=int, default=100)
    parser.add_argument("--fa-events", type=int, default=20_000)
    opts = parser.parse_args()
    data = load_digits()
    x, y = data.data.astype(np.float64), data.target

    t0 = time.perf_counter()
    firings = {"cusum": 0, "ks": 0}
    rng = np.random.default_rng(1)
    for _ in range(opts.fa_runs):
        reference, pool, labels = split(rng, x, y)
        for test, status, _ in run(reference, natural(rng, pool, labels, opts.fa_events)):
            if status == "firing":
                firings[test] += 1
    events = opts.fa_runs * opts.fa_events
    seconds = time.perf_counter() - t0
    rates = {t: n / events * 1e7 for t, n in firings.items()}
    print(f"stationary: {events:.2e} events in {opts.fa_runs} streams ({seconds:.0f} s)")
    print(
        f"  false alarms: charts {firings['cusum']} ({rates['cusum']:.2f} per 10^7), "
        f"window KS {firings['ks']} ({rates['ks']:.2f} per 10^7)"
    )

    print(f"\ndelays, {opts.runs} runs a case (median / p90, missed)")
    for name, draw in (
        ("class mix: 8s from 10 % to 30 %", more_eights),
        ("ink x1.15", more_ink),
        ("no more 0s", no_zeros),
    ):
        rng = np.random.default_rng(2)
        found: dict[str, list[int]] = {"cusum": [], "ks": []}
        missed = {"cusum": 0, "ks": 0}
        early = 0
        for _ in range(opts.runs):
            reference, pool, labels = split(rng, x, y)
            n0 = 500 + int(rng.integers(0, 501))
            values = np.vstack([natural(rng, pool, labels, n0), draw(rng, pool, labels, 4000)])
            alerts = run(reference, values)
            early += sum(s == "firing" and e <= n0 for _, s, e in alerts)
            for test in found:
                fired = [e - n0 for t, s, e in alerts if t == test and s == "firing" and e > n0]
                if fired:
                    found[test].append(fired[0])
                else:
                    missed[test] += 1
        parts = [
            f"{label} {delay_summary(found[test])} (missed {missed[test]})"
            for test, label in (("cusum", "charts"), ("ks", "window KS"))
        ]
        print(f"  {name:32s} " + "   ".join(parts) + f"   alarms before the change: {early}")


if __name__ == "__main__":
    main()
