"""Reference samples per model: loaded and validated once, prepared for cheap checks.

Preparing means sorting every feature column once (so an event's reference CDF values are
one binary search when it enters the window), fixing the prediction histogram's bins and
sorting the numeric predictions (for their KS test). A check never re-reads or re-sorts the
reference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from stream_monitor.arrays import FloatArray, IntArray
from stream_monitor.detectors.categorical import CategoricalReference
from stream_monitor.detectors.histogram import smoothed
from stream_monitor.detectors.ks import key_bits
from stream_monitor.detectors.numeric import NumericReference
from stream_monitor.kernels import ReferenceColumns
from stream_monitor.reference.projection import ResidualProjection
from stream_monitor.reference.summary import ReferenceSummary, slim_numeric

MIN_REFERENCE_EVENTS = 100


class InvalidReference(Exception):
    """A reference that cannot be used; the message says which file, line and why."""


@dataclass(slots=True)
class PreparedReference:
    """One model's reference, prepared: sorted numeric columns and prediction bins."""

    model: str
    feature_names: tuple[str, ...]
    sorted_columns: list[FloatArray]  # per feature: finite values, ascending (empty if summary)
    sizes: IntArray  # (F,) finite values per feature
    prediction_edges: FloatArray | None  # (bins + 1,) or None without numeric predictions
    prediction_counts: IntArray | None  # (bins,)
    events: int
    notes: list[str] = field(default_factory=list)
    categorical: CategoricalReference | None = None  # string and bool features
    rows: FloatArray | None = None  # the numeric rows, kept only until calibrated
    classes: CategoricalReference | None = None  # predictions that are class labels
    _numeric: NumericReference | None = None  # bins and sums for PSI, JS, Wasserstein, CvM
    # finite numeric predictions, ascending: the KS test of the window's predictions
    sorted_predictions: FloatArray = field(default_factory=lambda: np.empty(0))
    summary: ReferenceSummary | None = None  # compact mode: knots instead of sorted_columns
    # the sorted columns end to end (sorted_columns are views into it) and where each starts
    flat_columns: FloatArray = field(default_factory=lambda: np.empty(0))
    column_starts: IntArray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    _key_bits: int = -1
    _columns: ReferenceColumns | None = None
    _smoothed_predictions: FloatArray | None = None
    # the multivariate chart's subspace and reference residuals (None: fewer than two
    # numeric features or too few complete rows)
    projection: ResidualProjection | None = None
    # the content hash of the events it was prepared from (reference/published.py): alerts
    # and the changelog name the reference they were judged against by it
    reference_id: str | None = None

    def columns(self) -> ReferenceColumns:
        """The sorted columns as the native look-ups read them (built on first use; the
        exact reference only: a compact one has no columns, see `cdf_counts`)."""
        if self._columns is None:
            if self.summary is not None:
                raise InvalidReference(f"{self.model}: a compact reference has no columns")
            self._columns = ReferenceColumns(self.flat_columns, self.column_starts)
        return self._columns

    def smoothed_prediction_counts(self) -> FloatArray:
        """The prediction histogram as the Jensen-Shannon check compares it
        (`detectors.histogram.smoothed`), made once; the reference has numeric predictions."""
        if self._smoothed_predictions is None:
            assert self.prediction_counts is not None
            self._smoothed_predictions = smoothed(self.prediction_counts)
        return self._smoothed_predictions

    @property
    def key_bits(self) -> int:
        """Bits per count in this reference's KS keys (see detectors.ks.key_bits)."""
        if self._key_bits < 0:
            self._key_bits = key_bits(self.sizes)
        return self._key_bits

    def numeric(self) -> NumericReference:
        """The numeric features prepared for the tests beyond KS (built on first use)."""
        if self._numeric is None:
            if self.summary is not None:
                raise InvalidReference(f"{self.model}: a compact reference was made without bins")
            self._numeric = NumericReference.prepare(self.sorted_columns)
        return self._numeric

    def compacted(self, points: int, with_bins: bool = False) -> PreparedReference:
        """This reference with its numeric columns replaced by at most `points` knots each
        (see reference_summary); PSI/JS bins, when wanted, are taken from the whole columns
        first, so they are the exact mode's."""
        if self.summary is not None:
            return self
        numeric = slim_numeric(self.numeric()) if with_bins else None
        return dataclasses.replace(
            self,
            sorted_columns=[np.empty(0) for _ in self.sorted_columns],
            flat_columns=np.empty(0),
            column_starts=np.zeros(len(self.sorted_columns) + 1, dtype=np.int64),
            summary=ReferenceSummary.build(self.sorted_columns, points),
            _numeric=numeric,
        )

    @classmethod
    def from_arrays(
        cls,
        model: str,
        feature_names: Sequence[str],
        features: FloatArray,
        predictions: FloatArray,
        bins: int,
    ) -> PreparedReference:
        """Prepare from an (n, F) feature matrix (NaN = missing) and n predictions."""
        n = features.shape[0]
        finite = [features[:, j][np.isfinite(features[:, j])] for j in range(len(feature_names))]
        starts = np.zeros(len(finite) + 1, dtype=np.int64)
        np.cumsum([c.size for c in finite], out=starts[1:])
        flat = np.empty(int(starts[-1]))
        columns: list[FloatArray] = []
        notes: list[str] = []
        for j, name in enumerate(feature_names):
            col = flat[starts[j] : starts[j + 1]]
            col[:] = np.sort(finite[j])
            columns.append(col)
            if col.size == 0:
                notes.append(f"feature {name!r} has no numeric value in the reference: not checked")
            elif col[0] == col[-1]:
                notes.append(
                    f"feature {name!r} is constant ({col[0]:g}) in the reference: "
                    "any other value in the window counts as drift"
                )
            if 0 < col.size < n:
                notes.append(
                    f"feature {name!r} is missing in {n - col.size} of {n} reference events"
                )
        if n < MIN_REFERENCE_EVENTS:
            notes.append(f"only {n} reference events: drift statistics will be coarse")
        edges, counts = prediction_histogram(predictions, bins)
        if edges is None:
            notes.append("no numeric predictions in the reference: prediction drift not checked")
        return cls(
            model=model,
            feature_names=tuple(feature_names),
            sorted_columns=columns,
            flat_columns=flat,
            column_starts=starts,
            sizes=np.diff(starts),
            prediction_edges=edges,
            prediction_counts=counts,
            events=n,
            notes=notes,
            sorted_predictions=np.sort(predictions[np.isfinite(predictions)]),
            projection=ResidualProjection.fit(features),
        )

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def cdf_counts(self, values: FloatArray) -> tuple[IntArray, IntArray]:
        """Reference counts `#{r <= x}` and `#{r < x}` per value, shape (k, F).

        These are the right and left limits of the reference ECDF at each value (times n):
        all a KS check needs from the reference, looked up once per event. A compact
        reference estimates them (within `summary.max_error`, see reference_summary).
        """
        if self.summary is not None:
            return self.summary.cdf_counts(values)
        by_feature = np.ascontiguousarray(values.T)  # (F, k): each search reads a contiguous row
        right = np.empty(by_feature.shape, dtype=np.int64)
        for j, col in enumerate(self.sorted_columns):
            right[j] = col.searchsorted(by_feature[j], side="right")
        left = right
        if self.flat_columns.size:
            # #{r < x} differs from #{r <= x} only where x is a reference value: there the
            # largest r <= x equals x. One look-up over all features finds those.
            last = np.maximum(right + (self.column_starts[:-1, None] - 1), 0)
            tied = (right > 0) & (self.flat_columns[last] == by_feature)
            if tied.any():
                left = right.copy()
                for j in np.flatnonzero(tied.any(axis=1)).tolist():
                    hit = tied[j]
                    left[j, hit] = self.sorted_columns[j].searchsorted(
                        by_feature[j, hit], side="left"
                    )
        return right.T, left.T

    def prediction_bin(self, predictions: FloatArray) -> npt.NDArray[np.int16]:
        """Bin index of each prediction; out-of-range values fall in the outer bins, NaN -> -1."""
        if self.prediction_edges is None:
            return np.full(predictions.shape, -1, dtype=np.int16)
        inner = self.prediction_edges[1:-1]
        idx = np.searchsorted(inner, predictions, side="right").astype(np.int16)
        idx[~np.isfinite(predictions)] = -1
        return idx

    def nbytes(self) -> int:
        total = sum(c.nbytes for c in self.sorted_columns) + self.sizes.nbytes
        total += self.sorted_predictions.nbytes
        if self.summary is not None:
            total += self.summary.nbytes
        if self.prediction_edges is not None and self.prediction_counts is not None:
            total += self.prediction_edges.nbytes + self.prediction_counts.nbytes
        return total


def prediction_histogram(
    predictions: FloatArray, bins: int
) -> tuple[FloatArray | None, IntArray | None]:
    """Equal-width bins over the reference predictions' range, as numpy.histogram makes them."""
    finite = predictions[np.isfinite(predictions)]
    if finite.size == 0:
        return None, None
    counts, edges = np.histogram(finite, bins=bins)
    return edges.astype(np.float64), counts.astype(np.int64)
