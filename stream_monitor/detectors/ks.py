"""Two-sample Kolmogorov-Smirnov, vectorised over features, without touching the reference.

The statistic sup|F_ref - F_win| is attained at a data point. Between two consecutive
window values the window ECDF is flat and the reference ECDF only rises, so the extremes lie
at each window value x, either at x (`#{r <= x}`, the right limit) or just below it
(`#{r < x}`, the left limit). Both reference counts are looked up once per event when it
enters the window and packed into one integer key, `right << 32 | left`. Both counts rise
with x, so sorting the keys orders the window as sorting its values would; a check sorts the
keys and never reads the reference. When the reference is small enough (under 32 767 values
per feature) the two counts take `key_bits(sizes)` bits each and the keys are 32-bit
integers, which sort twice as fast; otherwise 64-bit keys with 32-bit halves.

Ties: equal keys with right > left are copies of one reference value, and the window ECDF
is read at the last copy (right limit) and before the first (left limit). Equal keys with
right == left may group distinct window values that no reference value separates; there the
reference ECDF is flat, so the extremes over the group are at its ends, which are exactly
what the group's first and last rows give. The differences are formed as
`scipy.stats.ks_2samp` forms them (count / n, then subtraction), so the statistic is
bit-for-bit the same as `ks_2samp(reference, window, method="asymp")`; `as_scipy_default`
turns it into what the default method reports.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import kstwo

FloatArray = npt.NDArray[np.float64]
KeyArray = npt.NDArray[np.signedinteger[Any]]  # int32 or int64, see key_bits

EXACT_MAX_N = 10_000  # scipy's MAX_AUTO_N: above it ks_2samp's default is asymptotic
MISSING_KEY = np.iinfo(np.int64).max  # sorts after every real key
_LOW = np.int64(0xFFFFFFFF)


def key_bits(ref_sizes: npt.NDArray[np.integer]) -> int:
    """Bits per count in a key: 32-bit keys when both counts and the missing marker (all
    ones) fit in 31 bits, else 32 (64-bit keys)."""
    bits = (int(np.max(ref_sizes, initial=0)) + 1).bit_length()
    return bits if 2 * bits <= 31 else 32


def missing_key(bits: int) -> int:
    """The key of a missing value: above every real key."""
    return int(MISSING_KEY) if bits == 32 else (1 << 2 * bits) - 1


def ks_keys(
    right: npt.NDArray[np.integer],
    left: npt.NDArray[np.integer],
    missing: npt.NDArray[np.bool_],
    bits: int = 32,
) -> KeyArray:
    """Pack reference counts into sortable keys (`bits` from `key_bits`, 32 = 64-bit keys);
    missing values get `missing_key(bits)`."""
    dtype = np.int64 if bits == 32 else np.int32
    high: KeyArray = right.astype(dtype)
    keys: KeyArray = (high << bits) | left.astype(dtype)
    keys[missing] = missing_key(bits)
    return keys


def ks_statistic(
    keys: KeyArray,
    ref_sizes: npt.NDArray[np.int64],
    bits: int = 32,
    window_sizes: npt.NDArray[np.int64] | None = None,
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """KS statistic per feature of an (n, F) window of keys, and the window sizes used.

    A feature with no value in the window or in the reference gets statistic 0 and size 0.
    Fastest when `keys` is in Fortran order (each feature's keys contiguous), as windows
    keep them. `window_sizes`, the finite values per feature when the caller already counts
    them (windows do), saves a pass over the keys when none is missing.

    With the window sorted, sup(F_win - F_ref) is attained at a window value's right limit,
    (rank + 1)/n - right/m, largest at the last copy of a value; sup(F_ref - F_win) just
    below one, left/m - rank/n, largest at the first copy. Both are taken over every row, so
    no tie grouping is needed. They are compared exactly, as integers scaled by n m, and only
    the rows that attain the maximum are evaluated in floating point, formed as `ks_2samp`
    forms its differences (count / size, then subtraction), so the result is the same float.
    64-bit keys are repacked into 32-bit ones when the counts allow (the sort is the main
    cost and sorts twice as fast on them).

    Example: one feature, a reference of five values (a tie at 2) against a window of three.

    >>> import numpy as np
    >>> from scipy.stats import ks_2samp
    >>> ref = np.array([1.0, 2.0, 2.0, 3.0, 5.0])
    >>> window = np.array([[2.0], [4.0], [6.0]])
    >>> right = np.searchsorted(ref, window, side="right")
    >>> left = np.searchsorted(ref, window, side="left")
    >>> keys = ks_keys(right, left, np.isnan(window))
    >>> stat, sizes = ks_statistic(keys, np.array([5]))
    >>> bool(stat[0] == ks_2samp(ref, window[:, 0], method="asymp").statistic), sizes.tolist()
    (True, [3])
    """
    n, f = keys.shape
    if n == 0 or f == 0:
        return np.zeros(f), np.zeros(f, dtype=np.int64)
    cols = keys.T
    if window_sizes is not None and int(window_sizes.min(initial=n)) == n:
        missing = None  # nothing to leave out
        sizes = np.full(f, n, dtype=np.int64)
    else:
        missing = cols == missing_key(bits)
        sizes = n - np.count_nonzero(missing, axis=1)
    ref = ref_sizes.astype(np.int64, copy=False)
    if bits == 32 and (small := key_bits(ref)) < 32:
        cols = (((cols >> 32) << small) | (cols & _LOW)).astype(np.int32, order="C")
        bits = small
        if missing is not None:
            cols[missing] = missing_key(bits)
    ordered = np.sort(cols, axis=1)
    right, left = ordered >> bits, ordered & ((1 << bits) - 1)
    wide = n * int(ref.max(initial=0)) >= 2**31 - 1
    itype = np.int64 if wide else np.int32
    m_col: npt.NDArray[Any] = ref.astype(itype)[:, None]
    n_col: npt.NDArray[Any] = sizes.astype(itype)[:, None]
    rank: npt.NDArray[Any] = np.arange(n, dtype=itype)[None, :]
    above = right.astype(itype, copy=False) * n_col
    np.subtract((rank + 1) * m_col, above, out=above)  # n m (F_win - F_ref)(x)
    below = left.astype(itype, copy=False) * n_col
    np.subtract(below, rank * m_col, out=below)  # n m (F_ref - F_win)(x-)
    if sizes.min() < n:  # missing values sort last: leave their rows out
        beyond = rank >= n_col
        lowest = np.iinfo(itype).min
        above[beyond] = lowest
        below[beyond] = lowest
    usable = (sizes > 0) & (ref > 0)
    best = np.maximum(above.max(axis=1), below.max(axis=1))
    best = np.where(usable, best, np.iinfo(itype).max)  # unusable rows: no candidate
    stat = np.zeros(f)
    rows, at = np.divmod(np.flatnonzero(above == best[:, None]), n)  # flat: far cheaper
    np.maximum.at(stat, rows, -(right[rows, at] / ref[rows] - (at + 1) / sizes[rows]))
    rows, at = np.divmod(np.flatnonzero(below == best[:, None]), n)
    np.maximum.at(stat, rows, left[rows, at] / ref[rows] - at / sizes[rows])
    return stat, np.where(usable, sizes, 0).astype(np.int64)


def ks_sorted_statistic(sorted_reference: FloatArray, sorted_sample: FloatArray) -> float:
    """`ks_statistic` of one sample that is already sorted, against a sorted reference (both
    finite): the sample's own order gives its ECDF, so no keys are packed or sorted; the
    differences are formed the same way, so the float is the same.

    >>> import numpy as np
    >>> ks_sorted_statistic(np.array([1.0, 2.0, 2.0, 3.0, 5.0]), np.array([2.0, 4.0, 6.0]))
    0.46666666666666673
    """
    n, m = sorted_sample.size, sorted_reference.size
    if n == 0 or m == 0:
        return 0.0
    steps = np.arange(n + 1, dtype=np.float64) / n
    right = sorted_reference.searchsorted(sorted_sample, side="right")
    left = sorted_reference.searchsorted(sorted_sample, side="left")
    above = np.subtract(steps[1:], right / m).max()  # F_win(x) - F_ref(x)
    below = np.subtract(left / m, steps[:-1]).max()  # F_ref(x-) - F_win(x-)
    return max(float(above), float(below), 0.0)


def as_scipy_default(
    stat: FloatArray, ref_sizes: npt.NDArray[np.int64], sizes: npt.NDArray[np.int64]
) -> FloatArray:
    """The statistic as `ks_2samp` with its default method reports it.

    `ks_statistic` gives the difference as `ks_2samp(..., method="asymp")` computes it (and
    p-values follow from that value).
    The statistic is a multiple of 1/lcm(n, m). Where scipy's default picks the exact method
    (both samples at most EXACT_MAX_N), it snaps the difference to that multiple; so do we,
    the same way, so that the floats agree to the last bit in both regimes.

    >>> import numpy as np
    >>> as_scipy_default(np.array([0.46666666666666673]), np.array([5]), np.array([3])).tolist()
    [0.4666666666666667]
    """
    n1 = np.maximum(ref_sizes, 1)
    n2 = np.maximum(sizes, 1)
    lcm = (n1 // np.gcd(n1, n2)) * n2
    snapped = np.round(stat * lcm) / lcm
    return np.where(np.maximum(n1, n2) <= EXACT_MAX_N, snapped, stat)


def as_scipy_default_one(stat: float, ref_size: int, size: int) -> float:
    """`as_scipy_default` of one statistic, in Python's integer and float arithmetic (the
    same rounding: half to even, one correctly rounded quotient), without array overhead.

    >>> as_scipy_default_one(0.46666666666666673, 5, 3)
    0.4666666666666667
    """
    n1, n2 = max(ref_size, 1), max(size, 1)
    if max(n1, n2) > EXACT_MAX_N or not math.isfinite(stat):
        return stat
    lcm = (n1 // math.gcd(n1, n2)) * n2
    return round(stat * lcm) / lcm


def ks_pvalue(
    stat: FloatArray, ref_sizes: npt.NDArray[np.int64], window_sizes: npt.NDArray[np.int64]
) -> FloatArray:
    """Two-sided p-values as `ks_2samp(..., method="asymp")` gives them (NaN where size 0).

    >>> import numpy as np
    >>> ks_pvalue(np.array([0.5, 0.0]), np.array([100, 100]), np.array([50, 0])).round(6).tolist()
    [0.0, nan]
    """
    ok = (ref_sizes > 0) & (window_sizes > 0)
    m = np.where(ok, ref_sizes, 1).astype(np.float64)
    n = np.where(ok, window_sizes, 1).astype(np.float64)
    en = np.round(m * n / (m + n))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.clip(kstwo.sf(stat, en), 0.0, 1.0)
    return np.where(ok, p, np.nan)
