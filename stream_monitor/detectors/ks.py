"""Two-sample Kolmogorov-Smirnov, vectorised over features, without touching the reference.

The statistic sup|F_ref - F_win| is attained at a data point. Between two consecutive
window values the window ECDF is flat and the reference ECDF only rises, so the extremes lie
at each window value x, either at x (`#{r <= x}`, the right limit) or just below it
(`#{r < x}`, the left limit). Both reference counts are looked up once per event when it
enters the window and packed into one integer key, `right << 32 | left`. Both counts rise
with x, so sorting the keys orders the window as sorting its values would; a check sorts the
keys and never reads the reference.

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

import numpy as np
import numpy.typing as npt
from scipy.stats import kstwo

FloatArray = npt.NDArray[np.float64]
KeyArray = npt.NDArray[np.int64]

EXACT_MAX_N = 10_000  # scipy's MAX_AUTO_N: above it ks_2samp's default is asymptotic
MISSING_KEY = np.iinfo(np.int64).max  # sorts after every real key
_LOW = np.int64(0xFFFFFFFF)


def ks_keys(
    right: npt.NDArray[np.integer], left: npt.NDArray[np.integer], missing: npt.NDArray[np.bool_]
) -> KeyArray:
    """Pack reference counts into sortable keys; missing values get MISSING_KEY."""
    keys = (right.astype(np.int64) << 32) | left.astype(np.int64)
    keys[missing] = MISSING_KEY
    return keys


def ks_statistic(
    keys: KeyArray, ref_sizes: npt.NDArray[np.int64]
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """KS statistic per feature of an (n, F) window of keys, and the window sizes used.

    A feature with no value in the window or in the reference gets statistic 0 and size 0.
    """
    n, f = keys.shape
    if n == 0 or f == 0:
        return np.zeros(f), np.zeros(f, dtype=np.int64)
    ordered = np.sort(keys, axis=0)
    valid = ordered != MISSING_KEY
    sizes = valid.sum(axis=0).astype(np.int64)
    differs = ordered[1:] != ordered[:-1]
    last = np.empty_like(valid)
    last[:-1] = differs
    last[-1] = True
    last &= valid
    first = np.empty_like(valid)
    first[1:] = differs
    first[0] = True
    first &= valid
    right = ordered >> 32
    left = ordered & _LOW
    rank = np.arange(n, dtype=np.int64)[:, None]
    safe_sizes = np.maximum(sizes, 1)
    safe_ref = np.maximum(ref_sizes, 1)
    at_value = right / safe_ref - (rank + 1) / safe_sizes  # F_ref(x) - F_win(x)
    below_value = left / safe_ref - rank / safe_sizes  # F_ref(x-) - F_win(x-)
    stat = np.maximum(
        np.where(last, np.abs(at_value), 0.0).max(axis=0),
        np.where(first, np.abs(below_value), 0.0).max(axis=0),
    )
    usable = (sizes > 0) & (ref_sizes > 0)
    return np.where(usable, stat, 0.0), np.where(usable, sizes, 0)


def as_scipy_default(
    stat: FloatArray, ref_sizes: npt.NDArray[np.int64], sizes: npt.NDArray[np.int64]
) -> FloatArray:
    """The statistic as `ks_2samp` with its default method reports it.

    `ks_statistic` gives the difference as `ks_2samp(..., method="asymp")` computes it (and
    p-values follow from that value).
    The statistic is a multiple of 1/lcm(n, m). Where scipy's default picks the exact method
    (both samples at most EXACT_MAX_N), it snaps the difference to that multiple; so do we,
    the same way, so that the floats agree to the last bit in both regimes.
    """
    n1 = np.maximum(ref_sizes, 1)
    n2 = np.maximum(sizes, 1)
    lcm = (n1 // np.gcd(n1, n2)) * n2
    snapped = np.round(stat * lcm) / lcm
    return np.where(np.maximum(n1, n2) <= EXACT_MAX_N, snapped, stat)


def ks_pvalue(
    stat: FloatArray, ref_sizes: npt.NDArray[np.int64], window_sizes: npt.NDArray[np.int64]
) -> FloatArray:
    """Two-sided p-values as `ks_2samp(..., method="asymp")` gives them (NaN where size 0)."""
    ok = (ref_sizes > 0) & (window_sizes > 0)
    m = np.where(ok, ref_sizes, 1).astype(np.float64)
    n = np.where(ok, window_sizes, 1).astype(np.float64)
    en = np.round(m * n / (m + n))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.clip(kstwo.sf(stat, en), 0.0, 1.0)
    return np.where(ok, p, np.nan)
