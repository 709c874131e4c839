"""The compiled kernels (Rust, `native/`, the extension `stream_monitor._native`), for the
layers that use them.

One module imports the extension, so the import rule has one exception to know of: the
import-linter reads Python source only, cannot see the compiled module, and takes the
import below for one of the package itself. The kernels import nothing of the package; each
equals, bit for bit, the numpy function it names (tests/test_native_*.py).
"""

import numpy as np
import numpy.typing as npt

from stream_monitor._native import (
    Adwin,
    NativeDecoded,
    NativeModel,
    NormalScores,
    ReferenceColumns,
    ResidualSubspace,
    SequentialCharts,
    WindowFleet,
    bin_index,
    decode_predictions,
    histogram_js,
    ks_scipy_default,
    ks_sorted_statistic,
    ks_statistic,
    ks_statistic_sorted,
    linear_percentiles,
    numeric_quality,
    projection_errors,
    reference_keys,
    regression_errors,
)

__all__ = [
    "Adwin",
    "NativeDecoded",
    "NativeModel",
    "NormalScores",
    "ReferenceColumns",
    "ResidualSubspace",
    "SequentialCharts",
    "WindowFleet",
    "bin_index",
    "decode_predictions",
    "histogram_js",
    "ks_scipy_default",
    "ks_sorted_statistic",
    "ks_statistic",
    "ks_statistic_sorted",
    "linear_percentiles",
    "numeric_quality",
    "projection_errors",
    "reference_keys",
    "regression_errors",
    "window_ks_statistic",
]


def window_ks_statistic(
    keys: npt.NDArray[np.int64] | npt.NDArray[np.int32],
    ref_sizes: npt.NDArray[np.int64],
    bits: int,
    window_sizes: npt.NDArray[np.int64] | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """`ks_statistic`, bit for bit, the faster way: numpy sorts the keys along the rows (its
    SIMD sort of 32- and 64-bit integers beats the native radix sort) and the native kernel
    scans them once (docs/benchmarks.md)."""
    ordered = np.sort(keys, axis=0)
    # np.sort keeps the dtype; its stub loses it for a union of two
    return ks_statistic_sorted(ordered, ref_sizes, bits, window_sizes)  # type: ignore[arg-type]
