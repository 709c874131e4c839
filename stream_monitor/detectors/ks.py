"""Two-sample Kolmogorov-Smirnov, vectorised over features, without touching the reference.

The statistic sup|F_ref - F_win| is attained at a data point. Between two consecutive
window values the window ECDF is flat and the reference ECDF only rises, so the extremes lie
at each window value (right limits, `#{r <= x}`) or just below it (left limits, `#{r < x}`).
Both reference counts are looked up once per event when it enters the window
(`PreparedReference.cdf_counts`); a check then only sorts the window. The differences are
formed exactly as `scipy.stats.ks_2samp` forms them (count / n, then subtraction), so the
statistic is bit-for-bit the same, ties included.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.stats import kstwo

FloatArray = npt.NDArray[np.float64]


def ks_statistic(
    window: FloatArray,
    ref_right: npt.NDArray[np.integer],
    ref_left: npt.NDArray[np.integer],
    ref_sizes: npt.NDArray[np.int64],
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """KS statistic per feature of an (n, F) window (NaN = missing) and the sizes used.

    `ref_right`/`ref_left` are the reference counts at each window value (n, F);
    `ref_sizes` the reference's finite values per feature. A feature with no finite value
    in the window or the reference gets statistic 0 and size 0.
    """
    n, f = window.shape
    if n == 0 or f == 0:
        return np.zeros(f), np.zeros(f, dtype=np.int64)
    order = np.argsort(window, axis=0)  # NaN sorts last; order among ties is irrelevant
    values = np.take_along_axis(window, order, axis=0)
    right = np.take_along_axis(ref_right, order, axis=0)
    left = np.take_along_axis(ref_left, order, axis=0)
    valid = ~np.isnan(values)
    sizes = valid.sum(axis=0).astype(np.int64)
    # The ECDF of the window jumps at the last copy of a value and starts at its first copy.
    differs = values[1:] != values[:-1]  # NaN != NaN is True: a NaN run never joins a value
    last = np.empty_like(valid)
    last[:-1] = differs
    last[-1] = True
    last &= valid
    first = np.empty_like(valid)
    first[1:] = differs
    first[0] = True
    first &= valid
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
