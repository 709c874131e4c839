"""Tests on the window's sorted values: Wasserstein distance and Cramér-von Mises.

Both integrate the gap between the two ECDFs, so both need the window in order and each
window value's place in the reference (`#{ref <= x}`, already known per event for KS); the
reference side comes prepared once in `NumericReference` (prefix sums, tie structure).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.special import gammaln, kv

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
    """
    scale = np.where(ref.std > 0, ref.std, 1.0)
    return np.asarray(distance / scale, dtype=np.float64)


def cramer_von_mises(
    ref: NumericReference, win: SortedWindow, ties: Literal["midrank", "ecdf"] = "midrank"
) -> Scores:
    """Two-sample Cramér-von Mises statistic T and p-value per feature.

    ties="midrank" (default) is `scipy.stats.cramervonmises_2samp(ref, win)`, statistic bit
    for bit: T = U / (m n N) - (4 m n - 1) / (6 N), N = m + n, with (Anderson 1962, eq. 9-10)
    U = m sum_i (r_i - i)^2 + n sum_j (s_j - j)^2, r and s the pooled midranks of the sorted
    reference and window. That rank formula assumes no ties: with ties it is not the CvM
    criterion, and grows with the tie sizes even between identical samples (a constant
    reference against the same constant window gives T = 16 for m = 50, n = 10; integer data
    drawn from one distribution gets p ~ 1e-9). Prefer ties="ecdf" for discrete features.

    ties="ecdf" is the criterion itself, T = (m n / N^2) sum_z (F_ref(z) - F_win(z))^2 over
    the N pooled values (right-continuous ECDFs), which the rank formula equals when there
    are no ties, and is 0 between identical samples.

    Both are computed exactly in integers from the window alone (the reference's tie
    structure and prefix sums are prepared). For the midrank form, 2(r_i - i) = D_i + C_i,
    D_i from the reference's own ties, C_i = #{window < x_i} + #{window <= x_i}; D sums to 0
    over each tie group while C is constant on it, so sum (D + C)^2 = sum D^2 + sum C^2, with
    sum D^2 = sum t(t^2 - 1)/3 prepared, and C constant between window values (the window's
    side alike). 4U is an integer, so T is the very float scipy computes.

    The p-value is scipy's asymptotic one for the statistic (Anderson's normalisation and the
    limiting distribution, with scipy's series and truncation, so equal to rounding); with
    ties it is approximate (conservative, Conover 1971). For both sizes <= CVM_EXACT_MAX_N
    scipy's default would use the exact distribution, which enumerates lattice paths; the
    asymptotic value is used instead. scipy needs two values per sample; the formulas hold
    from one, and where both samples hold a single value the p-value is 1.
    """
    f = ref.n_features
    n = win.values.shape[0]
    m = ref.sizes
    nw = win.sizes
    if f == 0 or n == 0:
        return Scores(np.zeros(f), np.zeros(f, dtype=np.int64), np.full(f, np.nan))
    rank = np.arange(n, dtype=np.int64)[:, None]
    valid = rank < nw[None, :]
    vals = win.values
    differs = np.ones((n + 1, f), dtype=bool)
    differs[1:-1] = vals[1:] != vals[:-1]  # NaN padding differs from everything
    first = differs[:-1] & valid
    last = differs[1:] & valid  # rows that end a tie group of the window
    group_start = np.maximum.accumulate(np.where(first, rank, 0), axis=0)  # #{window < y}
    upto_w = rank + 1  # #{window <= y}, read at a group's last row
    t = upto_w - group_start  # the group's size
    # #{ref < next window value}: where the reference values above this group end.
    next_below = np.empty_like(win.below)
    next_below[:-1] = win.below[1:]
    next_below[-1] = 0
    next_below = np.where(np.roll(valid, -1, axis=0) & (rank < n - 1), next_below, m[None, :])
    ok = (m > 0) & (nw > 0)
    if ties == "midrank":
        c_eq = group_start + upto_w  # C on reference values equal to y
        c_gap = 2 * upto_w  # C on reference values between y and the next window value
        ref_side = np.where(
            last,
            (win.upto - win.below) * c_eq * c_eq + (next_below - win.upto) * c_gap * c_gap,
            0,
        ).sum(axis=0)
        g = win.below + win.upto
        win_side = np.where(valid, g * g, 0).sum(axis=0)
        win_ties = np.where(last, t * (t * t - 1) // 3, 0).sum(axis=0)
        u = m * ((ref.tie_term + ref_side) / 4.0) + nw * ((win_ties + win_side) / 4.0)
        k_safe = np.where(ok, m * nw, 1)
        n_safe = np.where(ok, m + nw, 1)
        stat = u / (k_safe * n_safe) - (4 * k_safe - 1) / (6 * n_safe)
    elif ties == "ecdf":
        stat = _cvm_ecdf(ref, win, last, upto_w, t, next_below)
    else:
        raise ValueError(f"ties must be 'midrank' or 'ecdf', not {ties!r}")
    stat = np.where(ok, stat, 0.0)
    pvalue = np.where(ok, _cvm_pvalue(stat, m, nw), np.nan)
    return Scores(stat, np.where(ok, nw, 0).astype(np.int64), pvalue)


def _cvm_ecdf(
    ref: NumericReference,
    win: SortedWindow,
    last: npt.NDArray[np.bool_],
    upto_w: IntArray,
    t: IntArray,
    next_below: IntArray,
) -> FloatArray:
    """(m n / N^2) sum_z (F_ref - F_win)^2 = sum_z (n R(z) - m W(z))^2 / (m n N^2).

    R, W count values <= z. A window group contributes t (n R - m W)^2. The reference values
    with W = w form index ranges [p, q) between window values; with e_i = Rend_i - p (Rend_i
    = R(x_i), prepared as prefix sums P1, P2 of Rend and Rend^2) and d = n p - m w,
    sum (n Rend_i - m w)^2 = n^2 sum e^2 + 2 n d sum e + (q - p) d^2, where sum e and sum e^2
    are exact int64 and the three terms barely cancel (e spans the whole range).
    """
    f = ref.n_features
    m = ref.sizes[None, :]
    n = np.maximum(win.sizes, 1)[None, :]
    sbase = ref.offsets[None, :-1] + np.arange(f)[None, :]

    def range_sum(p: IntArray, q: IntArray, w: IntArray) -> FloatArray:
        lo_i, hi_i = sbase + p, sbase + q  # clipped: rows past a column are masked later
        length = q - p
        d1 = np.take(ref.rank_sum, hi_i, mode="clip") - np.take(ref.rank_sum, lo_i, mode="clip")
        d2 = np.take(ref.rank_sq_sum, hi_i, mode="clip") - np.take(
            ref.rank_sq_sum, lo_i, mode="clip"
        )
        s1 = d1 - p * length
        s2 = d2 - 2 * p * d1 + p * p * length
        d = (n * p - m * w).astype(np.float64)
        nf = n.astype(np.float64)
        return np.asarray(nf * nf * s2 + 2.0 * nf * d * s1 + length * d * d, dtype=np.float64)

    zero = np.zeros((1, f), dtype=np.int64)
    first_below = np.where(win.sizes > 0, win.below[0], ref.sizes)[None, :]
    head = range_sum(zero, first_below, zero)[0]
    group = t * (n * win.upto - m * upto_w).astype(np.float64) ** 2
    ranges = range_sum(win.below, next_below, upto_w)
    total = head + np.where(last, group + ranges, 0.0).sum(axis=0)
    big_n = np.maximum(ref.sizes + win.sizes, 1).astype(np.float64)
    return np.asarray(total / (np.maximum(ref.sizes, 1) * n[0] * big_n * big_n), np.float64)


def _cvm_pvalue(stat: FloatArray, m: IntArray, n: IntArray) -> FloatArray:
    """scipy's `_pval_cvm_2samp_asymptotic`, vectorised over features, operation for operation.

    The size-only constants are formed per feature with Python integers exactly as scipy
    forms them (its (N+1)(4kN - ...)/(45 N^2 4k) is a correctly rounded quotient of integers
    beyond 2^53, which int64 -> float64 arrays would round differently); a loop over ~20
    features of scalar arithmetic. Where p is small it is 1 - cdf, so matching scipy needs
    the same bits of tn.
    """
    f = stat.size
    et = np.zeros(f)
    scale = np.ones(f)
    degenerate = np.zeros(f, dtype=bool)
    for j in range(f):
        nx, ny = int(m[j]), int(n[j])
        if nx == 0 or ny == 0:
            continue
        k, big_n = nx * ny, nx + ny
        et[j] = (1 + 1 / big_n) / 6
        vt_num = (big_n + 1) * (4 * k * big_n - 3 * (nx**2 + ny**2) - 2 * k)
        vt = vt_num / (45 * big_n**2 * 4 * k)
        if vt > 0:
            scale[j] = math.sqrt(45 * vt)
        else:  # one value in each sample: T is determined by whether they tie
            degenerate[j] = True
    tn = 1 / 6 + (stat - et) / scale
    tail = (tn >= 0.003) & ~degenerate  # below 0.003 scipy returns 1 directly
    p = np.ones(f)
    p[tail] = np.clip(1.0 - _cdf_cvm_inf(tn[tail]), 0.0, None)
    return p


def _cdf_cvm_inf(x: FloatArray) -> FloatArray:
    """Limiting CDF of the CvM statistic: scipy's series, same terms and stopping rule.

    Csörgő and Faraway (1996), eq. 1.2; terms are added per element until one is < 1e-7.
    """
    total = np.zeros_like(x)
    active = np.ones(x.shape, dtype=bool)
    k = 0
    while active.any():
        xa = x[active]
        u = math.exp(gammaln(k + 0.5) - gammaln(k + 1)) / (np.pi**1.5 * np.sqrt(xa))
        y = 4 * k + 1
        q = y**2 / (16 * xa)
        b = np.asarray(kv(0.25, q), dtype=np.float64)
        z = u * math.sqrt(y) * np.exp(-q) * b
        total[active] = total[active] + z
        active[active] = np.abs(z) >= 1e-7
        k += 1
    return total
