"""The window sorted against the reference, and the Wasserstein distance on it.

Wasserstein and Cramér-von Mises (`cvm`) both integrate the gap between the two ECDFs, so
both need the window in order and each window value's place in the reference
(`#{ref <= x}`, already known per event for KS); the reference side comes prepared once in
`NumericReference` (prefix sums, tie structure).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stream_monitor.detectors.numeric import (
    FloatArray,
    IntArray,
    NumericReference,
    Scores,
    _usable,
)


@dataclass(frozen=True, slots=True)
class SortedWindow:
    """A window sorted per feature, with each value's place in the reference."""

    values: FloatArray  # (n, F) ascending per column; the sizes[j] finite values come first
    sizes: IntArray  # (F,) finite values per feature
    below: IntArray  # (n, F) #{reference values < value}
    upto: IntArray  # (n, F) #{reference values <= value}


def sort_window(
    ref: NumericReference, window: FloatArray, upto: IntArray | None = None
) -> SortedWindow:
    """Sort an (n, F) window per feature and find its values' places in the reference.

    `upto`, if given, holds `#{reference <= value}` per window row (as the window keeps them
    for KS: `ks_key >> 32`); then nothing is searched at check time. Otherwise it costs one
    `np.searchsorted` per feature: numpy has no per-column binary search (a single call on
    lexicographic complex keys (feature, value) does it all, but measured 4x slower).
    `#{reference < value}` follows from it with the prepared tie groups.
    """
    finite = np.isfinite(window)
    clean = np.where(finite, window, np.nan)  # NaN sorts last
    sizes = finite.sum(axis=0).astype(np.int64)
    if upto is None:
        values = np.sort(clean, axis=0)
        found = np.zeros(values.shape, dtype=np.int64)
        for j in range(values.shape[1]):
            k = int(sizes[j])
            found[:k, j] = np.searchsorted(ref.column(j), values[:k, j], side="right")
    else:
        order = np.argsort(clean, axis=0)
        values = np.take_along_axis(clean, order, axis=0)
        found = np.take_along_axis(upto.astype(np.int64, copy=False), order, axis=0)
    valid = np.arange(values.shape[0])[:, None] < sizes[None, :]
    found = np.where(valid, found, 0)
    below = found
    if ref.sorted_values.size:  # a value equal to x_(u-1) sits on top of that tie group
        at = ref.offsets[None, :-1] + found - 1  # clipped: rows with found == 0 are masked
        tied = valid & (found > 0) & (np.take(ref.sorted_values, at, mode="clip") == values)
        below = np.where(tied, np.take(ref.tie_start, at, mode="clip"), found)
    return SortedWindow(values, sizes, below.astype(np.int64), found)


def wasserstein(ref: NumericReference, win: SortedWindow) -> Scores:
    """1-D Wasserstein distance W1 = integral |F_ref - F_win| dx per feature.

    Equals `scipy.stats.wasserstein_distance(ref_col, win_col)` to rounding, in O(n) per
    feature once the window is sorted: the reference is never merged or sorted again.
    With counts R(x) = #{ref <= x}, W(x) = #{win <= x}, m n W1 = integral |n R - m W|. The
    integral runs over the gaps between consecutive pooled values; a gap that starts at a
    window value, or ends at one, is one term. The other gaps lie between reference values
    x_i, x_i+1 with no window value between, so W is a constant w there and R = i + 1: on a
    run [p, q) of them the integrand's sign changes once, at i + 1 = K = ceil(m w / n), and
    each side sums sum (i + 1 - K)(x_i+1 - x_i) = (q - K) x_q - (p - K) x_p - (S_q - S_p),
    S the reference's prefix sums (prepared once). Those terms are large and cancel to the
    small wanted sum, so they are summed error-free: S in double-double, the integer-by-float
    products split exactly (Veltkamp), and the sum compensated (Ogita-Rump-Oishi Sum2); the
    result is as accurate as scipy's sum of non-negative terms, with or without an offset in
    the data. Needs fewer than 2^26 reference values per feature.

    Kept whole: it is one derivation, step by step, and every term reads the same run
    bounds, K and gathers; split, the parts would pass a dozen arrays between them.

    Example, against scipy:

    >>> import numpy as np
    >>> from scipy.stats import wasserstein_distance
    >>> from stream_monitor.detectors.numeric import NumericReference
    >>> ref = NumericReference.prepare([np.arange(10.0)])
    >>> window = np.array([[0.5], [7.0], [8.0], [9.5]])
    >>> w1 = wasserstein(ref, sort_window(ref, window)).statistic[0]
    >>> float(w1), float(wasserstein_distance(np.arange(10.0), window[:, 0]))
    (2.0, 2.0)
    """
    f = ref.n_features
    n = win.values.shape[0]
    m = ref.sizes
    nw = win.sizes
    vals = ref.sorted_values
    if n == 0 or vals.size == 0:
        return Scores(np.zeros(f), np.zeros(f, dtype=np.int64))
    # Counts and coefficients are integers below 2^53, held exactly as floats (fast SIMD);
    # int64 arrays are kept only to index.
    nn = np.maximum(nw, 1).astype(np.float64)[None, :]
    mm = m.astype(np.float64)[None, :]
    base = ref.offsets[None, :-1]  # feature j's x_i is vals[base_j + i]
    sbase = base + np.arange(f)[None, :]  # and its S_t is prefix[sbase_j + t]
    # Run k (k = 0..n) holds the reference values with exactly k window values below them:
    # indices [a_k, b_k), b_k = #{ref <= y_k} (m past the last window value); its gaps
    # x_i -> x_i+1 are i in [a_k, b_k - 1). Gathers clip at the array ends; what they read
    # past a feature's column is multiplied by 0 or masked.
    k = np.arange(n + 1, dtype=np.float64)[:, None]
    in_window = k[:-1] < nw[None, :]
    b = np.empty((n + 1, f), dtype=np.int64)
    b[:-1] = np.where(in_window, win.upto, m[None, :])
    b[-1] = m
    bf = b.astype(np.float64)
    af = np.empty_like(bf)
    af[0] = 0.0
    af[1:] = bf[:-1]
    x_b = np.take(vals, base + b, mode="clip")  # x_(b_k)
    x_b1 = np.take(vals, base + b - 1, mode="clip")  # x_(b_k - 1): the run's last value
    x_a = np.empty_like(x_b)
    x_a[0] = np.take(vals, base[0], mode="clip")
    x_a[1:] = x_b[:-1]
    c = mm * k  # m * W on the run, W = k
    big_k = np.ceil(c / nn)  # the sign of n (i + 1) - c changes at i + 1 = K (exact: c < 2^53)
    sf = np.minimum(np.maximum(big_k - 1.0, af), np.maximum(af, bf - 1.0))
    s = sf.astype(np.int64)
    x_s = np.take(vals, base + s, mode="clip")
    sa_hi = np.empty_like(x_b)
    sa_lo = np.empty_like(x_b)
    sa_hi[0] = sa_lo[0] = 0.0
    sa_hi[1:] = np.take(ref.prefix_hi, sbase + b[:-1], mode="clip")
    sa_lo[1:] = np.take(ref.prefix_lo, sbase + b[:-1], mode="clip")
    hi_index = sbase + b - 1
    sh_hi = np.take(ref.prefix_hi, hi_index, mode="clip")
    sh_lo = np.take(ref.prefix_lo, hi_index, mode="clip")
    ss_hi = np.take(ref.prefix_hi, sbase + s, mode="clip")
    ss_lo = np.take(ref.prefix_lo, sbase + s, mode="clip")
    # sum_[s, b-1) (i + 1 - K) dx - sum_[a, s) (i + 1 - (K - 1)) dx (both sums >= 0) is
    # (b-1-K) x_(b-1) + (a-K+1) x_a - (2s-2K+1) x_s - S_(b-1) - S_a + 2 S_s, summed error-free.
    inner = _sum2(
        [
            *_exact_product(bf - 1.0 - big_k, x_b1),
            *_exact_product(af - big_k + 1.0, x_a),
            *_exact_product(2.0 * (big_k - sf) - 1.0, x_s),
            -sh_hi,
            -sa_hi,
            2.0 * ss_hi,
        ],
        (2.0 * ss_lo - sh_lo) - sa_lo,
    )
    above = nn * big_k - c  # n K - m W >= 0
    runs = nn * inner + above * (x_b1 - x_s) + (nn - above) * (x_s - x_a)
    runs = runs * (bf - af >= 2.0)  # a run with no gap adds nothing
    # The gap from a run's last reference value up to the window value y_k that ends it.
    y = win.values
    ends = in_window & (bf[:-1] > af[:-1])
    closing = np.where(ends, np.abs(nn * bf[:-1] - c[:-1]) * (y - x_b1[:-1]), 0.0)
    # The gap from each window value y_k to the next pooled value (R = b_k, W = k + 1).
    next_y = np.full_like(y, np.inf)
    next_y[:-1] = np.where(in_window[1:], y[1:], np.inf)
    nxt = np.minimum(next_y, np.where(bf[:-1] < mm, x_b[:-1], np.inf))
    gap = np.where(in_window & (nxt < np.inf), nxt - y, 0.0)
    opening = np.abs(nn * bf[:-1] - mm * (k[:-1] + 1.0)) * gap
    total = runs.sum(axis=0) + (closing + opening).sum(axis=0)
    stat = total / (np.maximum(m, 1) * np.maximum(nw, 1))
    return _usable(stat, ref, nw)


_SPLITTER = 134217729.0  # 2**27 + 1


def _exact_product(k: FloatArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """k * x as two floats whose sum is exact, for integers |k| < 2**27 (Veltkamp split)."""
    t = _SPLITTER * x
    x_hi = t - (t - x)
    return k * x_hi, k * (x - x_hi)


def _sum2(parts: Sequence[FloatArray], small: FloatArray) -> FloatArray:
    """Sum of `parts` (+ the tiny `small`) as if in twice the precision (Ogita-Rump-Oishi).

    A cascade of `_two_sum`, written in place: the arrays are big enough for fresh
    temporaries (page faults) to cost more than the arithmetic.
    """
    total = parts[0].copy()
    err = small.copy()
    s = np.empty_like(total)
    bb = np.empty_like(total)
    tmp = np.empty_like(total)
    for p in parts[1:]:
        np.add(total, p, out=s)
        np.subtract(s, total, out=bb)
        np.subtract(s, bb, out=tmp)
        np.subtract(total, tmp, out=tmp)  # a - (s - bb)
        err += tmp
        np.subtract(p, bb, out=tmp)  # b - bb
        err += tmp
        total, s = s, total
    total += err
    return total


def normalised_wasserstein(ref: NumericReference, distance: FloatArray) -> FloatArray:
    """W1 / std(reference) per feature, std with ddof=0 (the reference's own distribution).

    Unit-free: a shift of the whole window by one reference standard deviation scores 1.
    A constant (or empty) reference column has no scale: its W1 is returned as it is (0 for
    a window equal to the constant), never inf or NaN.

    >>> import numpy as np
    >>> from stream_monitor.detectors.numeric import NumericReference
    >>> ref = NumericReference.prepare([np.arange(10.0)])
    >>> normalised_wasserstein(ref, np.array([2.0])).round(6).tolist()
    [0.696311]
    """
    scale = np.where(ref.std > 0, ref.std, 1.0)
    return np.asarray(distance / scale, dtype=np.float64)
