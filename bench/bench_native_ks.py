"""The KS statistic of one check: the Python `detectors.ks.ks_statistic` against the native
kernel that sorts the keys itself (`stream_monitor._native.ks_statistic`, a radix sort) and
the one the engine uses (`kernels.window_ks_statistic`: numpy's `np.sort` of the keys along
the rows, then `_native.ks_statistic_sorted`'s one scan per feature).

The data: F = 20 numeric features, a window of 1000 events in Fortran order (as windows keep
their keys) against a reference of 10 000 values per feature (synthetic normal data rounded
to 2 decimals, so that window values tie with reference values; 1% of the window missing),
keys as the window makes them (32-bit keys: 14 bits per count). The 64-bit keys of a
reference above 32 766 values are timed too (a reference of 40 000). Every function gets the
window's finite counts, as `checks.input_drift` passes them. Repetitions are interleaved
(Python, radix, sort + scan, Python, ...) in one process, so that all see the same machine
state; the figures are the median of the repetitions, in microseconds per call (all 20
features).

    python bench/bench_native_ks.py [--repeats 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from stream_monitor import _native
from stream_monitor.detectors.ks import key_bits, ks_keys, ks_statistic
from stream_monitor.kernels import window_ks_statistic

Args = tuple[np.ndarray, np.ndarray, int, np.ndarray]


def window_case(n: int, m: int, f: int, seed: int = 1) -> Args:
    rng = np.random.default_rng(seed)
    reference = np.sort(np.round(rng.normal(size=(m, f)), 2), axis=0)
    window = np.round(rng.normal(0.1, 1.1, size=(n, f)), 2)
    window[rng.random(window.shape) < 0.01] = np.nan
    right = np.empty((n, f), dtype=np.int64)
    left = np.empty((n, f), dtype=np.int64)
    for j in range(f):
        right[:, j] = np.searchsorted(reference[:, j], window[:, j], side="right")
        left[:, j] = np.searchsorted(reference[:, j], window[:, j], side="left")
    sizes = np.full(f, m, dtype=np.int64)
    bits = key_bits(sizes)
    keys = np.asfortranarray(ks_keys(right, left, np.isnan(window), bits))
    finite = np.isfinite(window).sum(axis=0).astype(np.int64)
    return keys, sizes, bits, finite


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--calls", type=int, default=20, help="calls per timed repetition")
    opts = parser.parse_args()
    head = f"{'case':<40} {'python us':>10} {'radix us':>10} {'sort+scan us':>13}"
    print(f"{head} {'python / sort+scan':>19}")
    for label, m in (
        ("20 x 1000 vs 10 000 (32-bit keys)", 10_000),
        ("20 x 1000 vs 40 000 (64-bit keys)", 40_000),
    ):
        args = window_case(1000, m, 20)
        want = ks_statistic(*args)
        for got in (_native.ks_statistic(*args), window_ks_statistic(*args)):
            assert np.array_equal(want[0], got[0]) and np.array_equal(want[1], got[1])
        py, rs, ss = [], [], []
        for _ in range(opts.repeats):
            py.append(per_call_us(lambda a=args: ks_statistic(*a), opts.calls))
            rs.append(per_call_us(lambda a=args: _native.ks_statistic(*a), opts.calls))
            ss.append(per_call_us(lambda a=args: window_ks_statistic(*a), opts.calls))
        p, r, s = statistics.median(py), statistics.median(rs), statistics.median(ss)
        print(f"{label:<40} {p:>10.1f} {r:>10.1f} {s:>13.1f} {p / s:>19.2f}")


if __name__ == "__main__":
    main()
