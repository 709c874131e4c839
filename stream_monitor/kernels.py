"""The compiled kernels (Rust, `native/`, the extension `stream_monitor._native`), for the
layers that use them.

One module imports the extension, so the import rule has one exception to know of: the
import-linter reads Python source only, cannot see the compiled module, and takes the
import below for one of the package itself. The kernels import nothing of the package; each
equals, bit for bit, the numpy function it names (tests/test_native_*.py).
"""

from stream_monitor._native import (
    Adwin,
    NativeDecoded,
    NativeModel,
    ReferenceColumns,
    WindowFleet,
    bin_index,
    decode_predictions,
    ks_sorted_statistic,
    ks_statistic,
    reference_keys,
)

__all__ = [
    "Adwin",
    "NativeDecoded",
    "NativeModel",
    "ReferenceColumns",
    "WindowFleet",
    "bin_index",
    "decode_predictions",
    "ks_sorted_statistic",
    "ks_statistic",
    "reference_keys",
]
