"""The per-event KS look-ups: numpy (`PreparedReference.cdf_counts`), the native kernel
without an index (both counts in lockstep), and through the reference's sparse index
(`ReferenceColumns.keys`, what windows use); blocks of 10 and 100 events of 20 features,
against one reference (cached) or 50 in turn (as with 50 models: not cached). All three
give the same keys (tests/test_native_lookup.py); printed: µs per block.

    python bench/bench_native_lookups.py
"""

from __future__ import annotations

import time

import numpy as np

from stream_monitor import kernels
from stream_monitor.reference.prepared import PreparedReference


def main() -> None:
    rng = np.random.default_rng(1)
    names = [f"f{j}" for j in range(20)]
    refs = [
        PreparedReference.from_arrays(
            "m", names, rng.normal(size=(10_000, 20)), np.zeros(10_000), 10
        )
        for _ in range(50)
    ]
    cols = [r.columns() for r in refs]
    print(f"{'block':>6} {'references':>10} {'indexed':>9} {'lockstep':>9} {'numpy':>9}")
    for rows in (10, 100):
        block = rng.normal(size=(rows, 20))
        for k in (1, 50):
            t = time.perf_counter()
            for i in range(3000):
                cols[i % k].keys(block, 14)
            indexed = (time.perf_counter() - t) / 3000 * 1e6
            t = time.perf_counter()
            for i in range(3000):
                r = refs[i % k]
                kernels.reference_keys(r.flat_columns, r.column_starts, block, 14)
            lockstep = (time.perf_counter() - t) / 3000 * 1e6
            t = time.perf_counter()
            for i in range(1000):
                refs[i % k].cdf_counts(block)
            numpy = (time.perf_counter() - t) / 1000 * 1e6
            print(f"{rows:>6} {k:>10} {indexed:>9.1f} {lockstep:>9.1f} {numpy:>9.1f}")


if __name__ == "__main__":
    main()
