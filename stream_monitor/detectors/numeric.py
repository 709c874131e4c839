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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

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

        Example: ten values in two bins, split at their median.

        >>> import numpy as np
        >>> ref = NumericReference.prepare([np.arange(10.0)], bins=2)
        >>> ref.edges.ravel().tolist(), ref.bin_counts.ravel().tolist(), ref.std.round(4).tolist()
        ([4.5], [5, 5], [2.8723])
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


def _two_sum(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    """s = fl(a + b) and the exact error a + b - s (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


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

    >>> import numpy as np
    >>> ref = NumericReference.prepare([np.arange(10.0)], bins=2)
    >>> bin_index(ref, np.array([[0.5], [7.0], [np.nan]])).ravel().tolist()
    [0, 1, -1]
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

    >>> import numpy as np
    >>> psi_from_counts(np.array([5, 5]), np.array([1, 3])).round(6).tolist()
    0.274653
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

    >>> import numpy as np
    >>> from scipy.spatial.distance import jensenshannon
    >>> js = js_from_counts(np.array([5, 5]), np.array([1, 3]))
    >>> bool(np.isclose(js, jensenshannon([5, 5], [1, 3]), rtol=1e-12, atol=0))
    True
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
    """Population Stability Index per feature (see `psi_from_counts`) on the reference's bins.

    >>> import numpy as np
    >>> ref = NumericReference.prepare([np.arange(10.0)], bins=2)
    >>> counts = window_bin_counts(ref, bin_index(ref, np.array([[0.5], [7.0], [8.0], [9.5]])))
    >>> scores = psi(ref, counts)
    >>> scores.statistic.round(6).tolist(), scores.sizes.tolist()
    ([0.274653], [4])
    """
    return _usable(
        psi_from_counts(ref.bin_counts, win_counts), ref, win_counts.sum(axis=0).astype(np.int64)
    )


def js_distance(ref: NumericReference, win_counts: IntArray) -> Scores:
    """Jensen-Shannon distance per feature on the PSI bins (see `js_from_counts`).

    >>> import numpy as np
    >>> ref = NumericReference.prepare([np.arange(10.0)], bins=2)
    >>> counts = window_bin_counts(ref, bin_index(ref, np.array([[0.5], [7.0], [8.0], [9.5]])))
    >>> js_distance(ref, counts).statistic.round(6).tolist()
    [0.183908]
    """
    return _usable(
        js_from_counts(ref.bin_counts, win_counts), ref, win_counts.sum(axis=0).astype(np.int64)
    )


# --- the sorted window: Wasserstein distance and Cramér-von Mises ----------------------------
