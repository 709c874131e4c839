"""Two-sample Cramér-von Mises on the sorted window (`ranks.sort_window`), vectorised.

The reference's tie structure comes prepared in `NumericReference`; the statistic is formed
exactly in integers from the window alone, and the p-value is scipy's asymptotic one.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.special import gammaln, kv

from stream_monitor.detectors.numeric import FloatArray, IntArray, NumericReference, Scores
from stream_monitor.detectors.ranks import SortedWindow


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

    Example, against scipy (its asymptotic p-value):

    >>> import numpy as np
    >>> from scipy.stats import cramervonmises_2samp
    >>> from stream_monitor.detectors.ranks import sort_window
    >>> ref = NumericReference.prepare([np.arange(10.0)])
    >>> window = np.array([[0.5], [7.0], [8.0], [9.5]])
    >>> ours = cramer_von_mises(ref, sort_window(ref, window))
    >>> theirs = cramervonmises_2samp(np.arange(10.0), window[:, 0], method="asymptotic")
    >>> bool(ours.statistic[0] == theirs.statistic), bool(np.isclose(ours.pvalue[0], theirs.pvalue))
    (True, True)
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
