"""Numeric drift statistics against a reference prepared once: PSI, JS, Wasserstein, CvM.

`NumericReference.prepare` does all the work that depends on the reference alone, once:
the sorted columns laid end to end, each feature's quantile bins and reference counts, its
standard deviation and its tie term. A check sorts the window (n values per feature, never
the reference) and looks each window value up in the reference with a binary search.

Conventions shared by every statistic here:

- values that are not finite (NaN = missing, and +-inf) are left out per feature, as scipy
  would be given the finite values only;
- a feature with no value in the window or none in the reference is not checked: statistic
  0.0, window size 0, p-value NaN (NaN means "no test", as `ks_pvalue` reports it);
- a feature with at least one value on both sides gets a finite statistic and p-value.

Each statistic equals its scipy counterpart (or the closed form in its docstring) to
rounding; `tests/test_detectors_numeric.py` checks it to 1e-12 relative.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
from scipy.special import gammaln, kv

if TYPE_CHECKING:  # only a type here: reference.py may import this module without a cycle
    from stream_monitor.reference import PreparedReference

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BinArray = npt.NDArray[np.int16]

DEFAULT_BINS = 10
PSI_EPSILON = 1e-4  # floor of a bin's proportion in PSI, so an empty bin costs a finite amount
CVM_EXACT_MAX_N = 20  # scipy's 'auto' uses the exact CvM p-value when both sizes are <= this


@dataclass(frozen=True, slots=True)
class Scores:
    """One statistic per feature, shape (F,), with the window sizes it was computed on.

    `sizes[j] == 0` marks a feature that was not checked (statistic 0.0, p-value NaN).
    `pvalue` is None for distances, which have no test.
    """

    statistic: FloatArray
    sizes: IntArray
    pvalue: FloatArray | None = None


@dataclass(frozen=True, slots=True)
class NumericReference:
    """The reference's numeric features, prepared once for every statistic of this module."""

    sorted_values: FloatArray  # every feature's finite values, ascending, feature after feature
    offsets: IntArray  # (F + 1,): feature j is sorted_values[offsets[j]:offsets[j + 1]]
    sizes: IntArray  # (F,) finite values per feature
    std: FloatArray  # (F,) population standard deviation (ddof=0); 0 if constant or empty
    edges: FloatArray  # (E, F) inner bin edges per feature, ascending, padded with +inf
    bin_counts: IntArray  # (E + 1, F) reference values per bin, padded with 0
    n_bins: IntArray  # (F,) bins in use per feature (the others are padding)
    tie_term: IntArray  # (F,) sum of t(t^2 - 1)/3 over the reference's tie groups (CvM)
    tie_start: IntArray  # like sorted_values: index in its column where its tie group starts
    prefix_hi: FloatArray  # (sum(sizes) + F,) per feature S_0..S_m, S_t = sum of its first t
    prefix_lo: FloatArray  # values, in double-double: S_t = prefix_hi + prefix_lo (Wasserstein)
    rank_sum: IntArray  # laid out as prefix_hi: prefix sums of R(x_i) = #{ref <= x_i} ...
    rank_sq_sum: IntArray  # ... and of R(x_i)^2 (CvM with ties="ecdf")

    @property
    def n_features(self) -> int:
        return int(self.sizes.size)

    def column(self, j: int) -> FloatArray:
        """Feature j's sorted finite reference values."""
        return self.sorted_values[self.offsets[j] : self.offsets[j + 1]]

    @classmethod
    def from_prepared(
        cls, prepared: PreparedReference, bins: int = DEFAULT_BINS
    ) -> NumericReference:
        """Prepare from a `PreparedReference` (its columns are sorted already)."""
        return cls.prepare(prepared.sorted_columns, bins)

    @classmethod
    def prepare(
        cls, sorted_columns: Sequence[FloatArray], bins: int = DEFAULT_BINS
    ) -> NumericReference:
        """Prepare from one ascending array of finite values per feature.

        Bins (for PSI and JS): inner edges at the reference's quantiles k/bins, k = 1..bins-1
        (`np.quantile`, linear interpolation), deduplicated, with outer edges at -inf and +inf
        so window values outside the reference's range are counted in the outer bins. Bins
        are [e_k, e_k+1): a value equal to an edge falls in the bin above it. When the
        reference's maximum is itself an edge (ties at the top, a constant column), the next
        float above it is added as an edge, so "at the maximum" and "above it" stay apart: a
        constant column c gets three bins, (-inf, c), {c}, (c, +inf).
        """
        if bins < 2:
            raise ValueError(f"bins must be at least 2, got {bins}")
        f = len(sorted_columns)
        sizes = np.array([c.size for c in sorted_columns], dtype=np.int64)
        offsets = np.zeros(f + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        values = (
            np.concatenate(sorted_columns).astype(np.float64, copy=False)
            if f
            else np.empty(0, dtype=np.float64)
        )
        # Preparation runs once per reference: a plain loop over features is fine here.
        inner = [_inner_edges(c, bins) for c in sorted_columns]
        n_edges = max((e.size for e in inner), default=0)
        edges = np.full((n_edges, f), np.inf)
        counts = np.zeros((n_edges + 1, f), dtype=np.int64)
        std = np.zeros(f)
        tie_term = np.zeros(f, dtype=np.int64)
        tie_start: list[IntArray] = []
        prefix_hi: list[FloatArray] = []
        prefix_lo: list[FloatArray] = []
        rank_sum: list[IntArray] = []
        rank_sq_sum: list[IntArray] = []
        for j, (col, e) in enumerate(zip(sorted_columns, inner, strict=True)):
            edges[: e.size, j] = e
            below = np.searchsorted(col, e, side="left")  # values in the bins under each edge
            counts[: e.size + 1, j] = np.diff(below, prepend=0, append=col.size)
            starts = np.flatnonzero(np.diff(col, prepend=np.nan) != 0)
            sizes_t = np.diff(starts, append=col.size).astype(np.int64)
            tie_start.append(np.repeat(starts.astype(np.int64), sizes_t))
            tie_term[j] = int(np.sum(sizes_t * (sizes_t * sizes_t - 1) // 3))
            ends = np.repeat(starts.astype(np.int64) + sizes_t, sizes_t)
            rank_sum.append(np.concatenate(([0], np.cumsum(ends))).astype(np.int64))
            rank_sq_sum.append(np.concatenate(([0], np.cumsum(ends * ends))).astype(np.int64))
            hi, lo = _prefix_sums(np.asarray(col, dtype=np.float64))
            prefix_hi.append(hi)
            prefix_lo.append(lo)
            if col.size:
                std[j] = float(np.std(col))
        return cls(
            sorted_values=values,
            offsets=offsets,
            sizes=sizes,
            std=std,
            edges=edges,
            bin_counts=counts,
            n_bins=np.array([e.size + 1 for e in inner], dtype=np.int64),
            tie_term=tie_term,
            tie_start=np.concatenate(tie_start) if f else np.empty(0, dtype=np.int64),
            prefix_hi=np.concatenate(prefix_hi) if f else np.empty(0),
            prefix_lo=np.concatenate(prefix_lo) if f else np.empty(0),
            rank_sum=np.concatenate(rank_sum) if f else np.zeros(0, dtype=np.int64),
            rank_sq_sum=np.concatenate(rank_sq_sum) if f else np.zeros(0, dtype=np.int64),
        )


def _inner_edges(col: FloatArray, bins: int) -> FloatArray:
    if col.size == 0:
        return np.empty(0)
    edges = np.unique(np.quantile(col, np.arange(1, bins) / bins))
    top = col[-1]
    if edges[-1] == top:
        edges = np.append(edges, np.nextafter(top, np.inf))
    return np.asarray(edges, dtype=np.float64)


def _prefix_sums(col: FloatArray) -> tuple[FloatArray, FloatArray]:
    """S_0..S_m of a column in double-double: np.cumsum plus the exact error of each step."""
    total = np.cumsum(col)
    prev = np.concatenate(([0.0], total[:-1]))
    _, err = _two_sum(prev, col)  # cumsum adds in sequence: total[i] == fl(prev[i] + col[i])
    return np.concatenate(([0.0], total)), np.concatenate(([0.0], np.cumsum(err)))


# --- bins: Population Stability Index and Jensen-Shannon distance ---------------------------


def bin_index(ref: NumericReference, values: FloatArray) -> BinArray:
    """Bin of each value, shape (k, F), on the reference's bins; -1 where not finite.

    Meant to run once per event as it enters the window (like the KS counts); the (k, E, F)
    comparison against the padded edges is vectorised over features (+inf padding never
    counts).
    """
    finite = np.isfinite(values)
    safe = np.where(finite, values, -np.inf)
    idx: BinArray = (safe[:, None, :] >= ref.edges[None, :, :]).sum(axis=1).astype(np.int16)
    idx[~finite] = -1
    return idx


def window_bin_counts(ref: NumericReference, bins: BinArray) -> IntArray:
    """Window counts per bin, shape (E + 1, F), from the (n, F) bin indices (-1 = missing)."""
    n_rows, f = ref.bin_counts.shape
    valid = bins >= 0
    flat = bins.astype(np.int64) * f + np.arange(f, dtype=np.int64)[None, :]
    return np.bincount(flat[valid], minlength=n_rows * f).reshape(n_rows, f).astype(np.int64)


def psi_from_counts(ref_counts: IntArray, win_counts: IntArray) -> FloatArray:
    """PSI of count tables with bins along axis 0 (shape (B,) or (B, F)); 0 where a side is empty.

    PSI = sum_b (w_b - r_b) ln(w_b / r_b), with r_b = max(ref_b / m, eps) and
    w_b = max(win_b / n, eps), eps = PSI_EPSILON = 1e-4, m and n the table totals. The
    floored proportions are not renormalised. Every term is >= 0, so PSI >= 0, and it is 0
    exactly when the floored proportions agree. Zero-count padding bins add 0.
    w_b - r_b is formed from the counts, (win_b m - ref_b n) / (m n), and the log as
    log1p((w_b - r_b) / r_b), so close proportions lose no digits.
    """
    m = np.maximum(ref_counts.sum(axis=0), 1).astype(np.float64)
    n = np.maximum(win_counts.sum(axis=0), 1).astype(np.float64)
    r = np.maximum(ref_counts / m, PSI_EPSILON)
    w = np.maximum(win_counts / n, PSI_EPSILON)
    exact = (win_counts * m - ref_counts * n) / (m * n)  # integers below 2^53: exact numerator
    floored = (r == PSI_EPSILON) | (w == PSI_EPSILON)
    diff = np.where(floored, w - r, exact)
    terms = diff * np.log1p(diff / r)
    empty = (ref_counts.sum(axis=0) == 0) | (win_counts.sum(axis=0) == 0)
    return np.asarray(np.where(empty, 0.0, terms.sum(axis=0)), dtype=np.float64)


def js_from_counts(ref_counts: IntArray, win_counts: IntArray) -> FloatArray:
    """Jensen-Shannon distance of count tables with bins along axis 0; 0 where a side is empty.

    As `scipy.spatial.distance.jensenshannon(ref, win)` with the natural log:
    sqrt((KL(p||a) + KL(q||a)) / 2), a = (p + q)/2, p and q the proportions; in [0, sqrt(ln 2)].
    No floor is needed: a > 0 wherever p or q is. Per bin, p ln(p/a) + q ln(q/a) = a h(t) with
    t = (p - q)/(p + q) = (ref n - win m)/(ref n + win m), formed from the counts, and
    h(t) = 2t atanh(t) + log1p(-t^2), used for |t| < 1/2: scipy's two logarithms cancel to
    O(t^2) when p ~ q and lose digits there (up to ~1e-10 relative on near-equal tables).
    Each bin's term is >= 0, so the sum has no cancellation either.
    """
    m = np.maximum(ref_counts.sum(axis=0), 1).astype(np.float64)
    n = np.maximum(win_counts.sum(axis=0), 1).astype(np.float64)
    rn = ref_counts * n  # integers below 2^53: exact
    wm = win_counts * m
    both = rn + wm
    a = both / (2.0 * m * n)
    occupied = both > 0
    t = np.where(occupied, (rn - wm) / np.where(occupied, both, 1.0), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        near = 2.0 * t * np.arctanh(t) + np.log1p(-t * t)
        far = _xlogx_over(ref_counts / m, a) + _xlogx_over(win_counts / n, a)
    terms = np.where(np.abs(t) < 0.5, a * near, far)
    div = np.maximum(terms.sum(axis=0), 0.0)
    empty = (ref_counts.sum(axis=0) == 0) | (win_counts.sum(axis=0) == 0)
    return np.asarray(np.where(empty, 0.0, np.sqrt(div / 2.0)), dtype=np.float64)


def _xlogx_over(x: FloatArray, a: FloatArray) -> FloatArray:
    """x ln(x / a), 0 where x == 0 (scipy's rel_entr for x, a >= 0, a > 0 where x > 0)."""
    pos = x > 0
    return np.where(pos, x * np.log(np.where(pos, x, 1.0) / np.where(pos, a, 1.0)), 0.0)


def _usable(statistic: FloatArray, ref: NumericReference, sizes: IntArray) -> Scores:
    ok = (sizes > 0) & (ref.sizes > 0)
    return Scores(np.where(ok, statistic, 0.0), np.where(ok, sizes, 0).astype(np.int64))


def psi(ref: NumericReference, win_counts: IntArray) -> Scores:
    """Population Stability Index per feature (see `psi_from_counts`) on the reference's bins."""
    return _usable(
        psi_from_counts(ref.bin_counts, win_counts), ref, win_counts.sum(axis=0).astype(np.int64)
    )


def js_distance(ref: NumericReference, win_counts: IntArray) -> Scores:
    """Jensen-Shannon distance per feature on the PSI bins (see `js_from_counts`)."""
    return _usable(
        js_from_counts(ref.bin_counts, win_counts), ref, win_counts.sum(axis=0).astype(np.int64)
    )


# --- the sorted window: Wasserstein distance and Cramér-von Mises ----------------------------


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


def _two_sum(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    """s = fl(a + b) and the exact error a + b - s (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


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
