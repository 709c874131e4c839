"""Compact references: q quantile points per numeric feature instead of its sorted column.

With `reference_summary: q`, each numeric column of m sorted values is replaced by at most
q knots, each with its exact counts `#{r <= v}` and `#{r < v}`. The knots are every distinct
value when there are at most q of them (the summary is then exact), else the values at
ranks round(t (m - 1) / (q - 1)), t = 0..q-1 (minimum and maximum included), deduplicated.
`cdf_counts` answers on the original scale (0..m), so the KS keys, the KS sizes and
p-values (which use m), the out-of-range share and the PSI/JS bins work unchanged:

- a value equal to a knot, below the minimum or above the maximum gets its exact counts;
- a value strictly between two neighbouring knots v < x < w has both true counts in [a, b],
  a = #{r <= v}, b = #{r < w}; it gets c = (a + b) // 2 for both, off by at most
  e = ceil((b - a) / 2).

The KS bound: both estimated counts are non-decreasing in x (a <= c <= b), so sorting the
window's keys still orders its values, and `ks_statistic` computes
max_i max((i + 1)/n - R'(x_i)/m, L'(x_i)/m - i/n), the exact statistic's formula with every
count moved by at most e. A maximum of terms each moved by at most e/m moves by at most e/m:
|KS_summary - KS_exact| <= e/m, with e the largest gap error of the feature (`max_error`).
b - a counts reference values strictly between two chosen ranks, at most
ceil((m - 1)/(q - 1)) - 1, so e/m < 1/(2(q - 1)) + 1/(2m). Ties merge knots and can only
shrink gaps; missing values keep their own key; an empty column answers 0 everywhere.
The bound is attained: a one-value window at the top of the widest gap moves by e/m.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stream_monitor.detectors.numeric import NumericReference

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
CountArray = npt.NDArray[np.int32] | npt.NDArray[np.int64]

# Blocks up to this many (value, knot) comparisons are looked up in one broadcast comparison
# for all features (few events of a model per batch); bigger ones per feature, binary search.
BROADCAST_MAX = 1 << 16
EXACT_ONLY_TESTS = frozenset({"wasserstein", "cvm"})  # they read the whole sorted column


def bound(sizes: npt.NDArray[np.integer], points: int) -> float:
    """The a-priori KS bound 1/(2(q - 1)) + 1/(2m) of the largest column (module docstring)."""
    q = max(points, 2)
    m = int(np.max(sizes, initial=0))
    return 0.0 if m <= q else 1 / (2 * (q - 1)) + 1 / (2 * m)


@dataclass(frozen=True, slots=True)
class ReferenceSummary:
    """Knots of every numeric feature, row j = feature j, padded to K columns."""

    knots: FloatArray  # (F, K) ascending distinct values, padded with +inf
    upto: CountArray  # (F, K) #{r <= knot}, padded with m
    below: CountArray  # (F, K) #{r < knot}, padded with m
    between: CountArray  # (F, K + 1) count given to values in gap i (before knot i); m after
    n_knots: IntArray  # (F,) knots in use per feature
    sizes: IntArray  # (F,) finite reference values per feature (m)
    max_error: IntArray  # (F,) largest count error of any value: the KS bound is this / m

    @classmethod
    def build(cls, sorted_columns: Sequence[FloatArray], points: int) -> ReferenceSummary:
        """Summarise ascending finite columns with at most `points` knots each (>= 2)."""
        q = max(points, 2)
        f = len(sorted_columns)
        sizes = np.array([c.size for c in sorted_columns], dtype=np.int64)
        chosen = [_knots(c, q) for c in sorted_columns]
        k = max((v.size for v in chosen), default=0) or 1
        ctype = np.int32 if int(sizes.max(initial=0)) < 2**31 - 1 else np.int64
        knots = np.full((f, k), np.inf)
        pad = sizes[:, None].astype(ctype)
        upto = np.broadcast_to(pad, (f, k)).copy()
        below = upto.copy()
        between = np.broadcast_to(pad, (f, k + 1)).copy()
        max_error = np.zeros(f, dtype=np.int64)
        for j, (col, v) in enumerate(zip(sorted_columns, chosen, strict=True)):
            u = np.searchsorted(col, v, side="right")
            b = np.searchsorted(col, v, side="left")
            knots[j, : v.size] = v
            upto[j, : v.size] = u
            below[j, : v.size] = b
            between[j, 0] = 0
            between[j, 1 : v.size] = (u[:-1] + b[1:]) // 2
            if v.size > 1:
                max_error[j] = int(np.max(b[1:] - between[j, 1 : v.size]))
        n_knots = np.array([v.size for v in chosen], dtype=np.int64)
        return cls(knots, upto, below, between, n_knots, sizes, max_error)

    @property
    def ks_bound(self) -> FloatArray:
        """(F,) largest difference to the exact KS statistic per feature, in KS units."""
        return np.asarray(self.max_error / np.maximum(self.sizes, 1), dtype=np.float64)

    @property
    def nbytes(self) -> int:
        arrays = (self.knots, self.upto, self.below, self.between, self.n_knots, self.max_error)
        return sum(a.nbytes for a in arrays) + self.sizes.nbytes

    def cdf_counts(self, values: FloatArray) -> tuple[IntArray, IntArray]:
        """Estimated `#{r <= x}` and `#{r < x}` per value, shape (k, F), within max_error.

        NaN and +inf get (m, m) and -inf (0, 0), as binary search in the full column gives.
        """
        n, f = values.shape
        k = self.knots.shape[1]
        if n * f * k <= BROADCAST_MAX:
            with np.errstate(invalid="ignore"):
                pos = (values[:, :, None] > self.knots[None, :, :]).sum(axis=2)
        else:
            pos = np.empty((n, f), dtype=np.intp)
            for j in range(f):
                row = self.knots[j, : self.n_knots[j]]
                pos[:, j] = np.searchsorted(row, values[:, j], side="left")
        nan = np.isnan(values)
        if nan.any():
            pos = np.where(nan, self.n_knots[None, :], pos)
        feature = np.arange(f)
        at = feature * k + np.minimum(pos, k - 1)
        exact = self.knots.ravel()[at] == values
        gap = self.between.ravel()[feature * (k + 1) + pos]
        right = np.where(exact, self.upto.ravel()[at], gap).astype(np.int64)
        left = np.where(exact, self.below.ravel()[at], gap).astype(np.int64)
        return right, left


def _knots(col: FloatArray, q: int) -> FloatArray:
    """Every distinct value if at most q, else the values at q evenly spaced ranks."""
    if col.size == 0:
        return col
    distinct = col[np.flatnonzero(np.diff(col, prepend=-np.inf))]
    if distinct.size <= q:
        return distinct
    ranks = np.rint(np.arange(q) * ((col.size - 1) / (q - 1))).astype(np.int64)
    return np.unique(col[ranks])


def slim_numeric(numeric: NumericReference) -> NumericReference:
    """The PSI/JS part of a NumericReference (bins, counts, sizes, std), without the sorted
    values and prefix sums that only Wasserstein and Cramér-von Mises read."""
    f = numeric.n_features
    none = np.empty(0)
    no_counts = np.zeros(0, dtype=np.int64)
    return dataclasses.replace(
        numeric,
        sorted_values=none,
        offsets=np.zeros(f + 1, dtype=np.int64),
        tie_start=no_counts,
        prefix_hi=none,
        prefix_lo=none,
        rank_sum=no_counts,
        rank_sq_sum=no_counts,
    )
