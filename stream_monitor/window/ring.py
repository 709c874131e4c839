"""The sliding window of one model: preallocated numpy ring buffers.

Rows are written in blocks, never per event. Besides the raw values the window keeps what
each event contributes to the checks, computed once when the event enters: its reference
ECDF counts per feature (for KS) and its prediction bin (for the histogram). Every
statistic computed on a window is order-free, so a check reads the buffers as they lie.

Counts that a check would otherwise recompute from every row (PSI/JS bin counts, missing,
non-finite and out-of-range values per feature) are kept as running tallies: a write of a
block adds the new rows and takes away the rows it overwrites, so a check reads them in
O(features). Writes of a few rows (many models, few events each per batch) would pay more
for the upkeep than a recount costs, so they only mark the tallies stale; the next read
recounts the window once.
The KS keys are stored feature by feature (Fortran order), the layout their sort wants.
The four per-event columns (prediction, actual, latency, timestamp) are the rows of one
(4, size) array and the tallies the rows of one (3 + bins, F) array: the native core
(`_native.WindowFleet`) writes a window through its arrays, one borrow per array per batch.

Each event's error is |prediction - actual| for numbers, so a numeric window derives it
when read instead of holding a fifth column (8 bytes per row). Only a window of class
labels, whose errors are 1/0 for a wrong/right label, stores them: from the block that
makes it one (`classes`), its earlier rows' errors are taken from their values.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from stream_monitor import kernels
from stream_monitor.arrays import FloatArray, IntArray
from stream_monitor.detectors.categorical import MISSING
from stream_monitor.detectors.ks import KeyArray, ks_keys, missing_key
from stream_monitor.detectors.numeric import window_bin_counts
from stream_monitor.reference.prepared import PreparedReference

INCREMENTAL_MIN_ROWS = 32  # smaller writes mark the tallies stale instead of updating them


class NativeBuffers(NamedTuple):
    features: FloatArray  # (size, F), C order
    scalars: FloatArray  # (4, size): prediction, actual, latency_ms, timestamp
    ks_key: KeyArray  # (size, F), Fortran order; (0, 0) without a reference
    prediction_bin: npt.NDArray[np.int16]  # (size,); (0,) without a reference
    numeric_bin: npt.NDArray[np.int16]  # (size, F), C order; (0, 0) without PSI/JS bins
    tallies: IntArray  # (3 + bins, F): NaN, +-inf, outside the reference, per bin


class ModelWindow:
    """The last `size` events of one model."""

    __slots__ = (
        "_bin_counts",
        "_errors",
        "_fresh",
        "_head",
        "_missing",
        "_nonfinite",
        "_outside",
        "_scalars",
        "_tallies",
        "actual",
        "categorical",
        "count",
        "features",
        "key_bits",
        "ks_key",
        "latency_ms",
        "numeric_bin",
        "prediction",
        "prediction_bin",
        "prediction_class",
        "reference",
        "size",
        "timestamp",
    )

    def __init__(
        self,
        size: int,
        reference: PreparedReference | None,
        n_features: int,
        with_bins: bool = False,
    ) -> None:
        self.size = size
        self.reference = reference
        self.count = 0
        self._head = 0  # next row to write
        self.features: FloatArray = np.full((size, n_features), np.nan)
        self._scalars: FloatArray = np.full((4, size), np.nan)  # the rows below
        self.prediction: FloatArray = self._scalars[0]
        self.actual: FloatArray = self._scalars[1]
        self.latency_ms: FloatArray = self._scalars[2]
        self.timestamp: FloatArray = self._scalars[3]
        # 1/0 per event for a wrong/right class label, NaN unlabeled: a window of class
        # labels only (a numeric window's errors are derived, see `error`)
        self._errors: FloatArray | None = None
        with_ref = reference is not None
        shape = (size, n_features) if with_ref else (0, 0)
        self.key_bits = 32 if reference is None else reference.key_bits
        key_type = np.int64 if self.key_bits == 32 else np.int32
        self.ks_key: KeyArray = np.zeros(shape, dtype=key_type, order="F")
        self.prediction_bin: npt.NDArray[np.int16] = np.full(size if with_ref else 0, -1, np.int16)
        # category codes of the categorical features (MISSING until written)
        n_cat = (
            0
            if reference is None or reference.categorical is None
            else (reference.categorical.n_features)
        )
        self.categorical: IntArray = np.full((size, n_cat), MISSING, dtype=np.int64)
        with_classes = reference is not None and reference.classes is not None
        self.prediction_class: IntArray = np.full(size if with_classes else 0, MISSING, np.int64)
        # per-feature bin of each numeric value, for PSI and JS (only when a model uses them)
        bins_shape = (size, n_features) if with_ref and with_bins else (0, 0)
        self.numeric_bin: npt.NDArray[np.int16] = np.full(bins_shape, -1, dtype=np.int16)
        # running tallies over the filled rows (see the module docstring)
        n_bins = 0
        if reference is not None and bins_shape[1]:
            n_bins = reference.numeric().bin_counts.shape[0]
        # rows: NaN, +-inf, beyond the reference's range, then one per bin
        self._tallies: IntArray = np.zeros((3 + n_bins, n_features), dtype=np.int64)
        self._missing: IntArray = self._tallies[0]  # NaN
        self._nonfinite: IntArray = self._tallies[1]  # +-inf
        self._outside: IntArray = self._tallies[2, : shape[1]]  # beyond ref range
        self._bin_counts: IntArray = self._tallies[3:, : bins_shape[1]]
        self._fresh = True  # the tallies match the filled rows

    def native_buffers(self) -> NativeBuffers:
        """The arrays the native core writes this window through (see the module docstring)."""
        return NativeBuffers(
            self.features,
            self._scalars,
            self.ks_key,
            self.prediction_bin,
            self.numeric_bin,
            self._tallies,
        )

    def reranked(self, reference: PreparedReference, with_bins: bool) -> ModelWindow:
        """The same rows, where they lay, looked up in another reference (a replaced one):
        KS keys, bins and tallies recomputed. For numeric windows (no category codes)."""
        window = ModelWindow(self.size, reference, self.n_features, with_bins)
        block = WindowBlock(
            self.features.copy(),
            self.prediction.copy(),
            self.actual.copy(),
            self.latency_ms.copy(),
            self.timestamp.copy(),
            reference,
            with_bins=with_bins,
            error=self.error.copy(),
        )
        window.load(block, self._head, self.count)
        return window

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    @property
    def classes(self) -> bool:
        """Whether predictions are class labels (errors are misclassifications)."""
        return self._errors is not None

    @classes.setter
    def classes(self, value: bool) -> None:
        if value and self._errors is None:  # the rows so far hold numbers: |p - a|
            self._errors = np.abs(self.prediction - self.actual)
        elif not value:
            self._errors = None

    @property
    def error(self) -> FloatArray:
        """Per event: |prediction - actual| for numbers, 1/0 for a wrong/right class label,
        NaN unlabeled. A numeric window's is computed on each read (a new array): write
        errors with `set_errors`."""
        if self._errors is not None:
            return self._errors
        return np.abs(self.prediction - self.actual)

    def set_errors(self, rows: npt.NDArray[np.intp] | slice, errors: FloatArray) -> None:
        """Errors of rows whose actuals were just written (late labels, a restored patch):
        kept by a window of class labels; a numeric window's follow from the actuals."""
        if self._errors is not None:
            self._errors[rows] = errors

    def nbytes(self) -> int:
        """The bytes of every array the window holds (the memory benchmark's yardstick)."""
        return sum(
            a.nbytes
            for a in (
                self.features,
                self._scalars,
                self.ks_key,
                self.prediction_bin,
                self.categorical,
                self.prediction_class,
                self.numeric_bin,
                self._tallies,
            )
        ) + (0 if self._errors is None else self._errors.nbytes)

    def append(self, block: WindowBlock, start: int, stop: int) -> None:
        """Write rows [start, stop) of a prepared block; the oldest rows are overwritten."""
        n = stop - start
        if n <= 0:
            return
        if n > self.size:  # only the newest `size` rows can remain
            start = stop - self.size
            n = self.size
        first = min(n, self.size - self._head)
        self._write(block, start, start + first, self._head)
        if first < n:
            self._write(block, start + first, stop, 0)
        self._head = (self._head + n) % self.size
        self.count = min(self.count + n, self.size)

    def _write(self, block: WindowBlock, start: int, stop: int, at: int) -> None:
        end = at + (stop - start)
        incremental = self._fresh and stop - start >= INCREMENTAL_MIN_ROWS
        if incremental and at < self.count:  # rows [at, count) are filled: they leave
            self._tally(slice(at, min(end, self.count)), -1)
        self.features[at:end] = block.features[start:stop]
        self.prediction[at:end] = block.prediction[start:stop]
        self.actual[at:end] = block.actual[start:stop]
        self.latency_ms[at:end] = block.latency_ms[start:stop]
        self.timestamp[at:end] = block.timestamp[start:stop]
        if self._errors is not None:
            self._errors[at:end] = block.error[start:stop]
        if self.reference is not None and block.ks_key is not None:
            assert block.prediction_bin is not None
            self.ks_key[at:end] = block.ks_key[start:stop]
            self.prediction_bin[at:end] = block.prediction_bin[start:stop]
        if self.prediction_class.size and block.prediction_class is not None:
            self.prediction_class[at:end] = block.prediction_class[start:stop]
        if self.categorical.shape[1] and block.categorical is not None:
            self.categorical[at:end] = block.categorical[start:stop]
        if self.numeric_bin.shape[1] and block.numeric_bin is not None:
            self.numeric_bin[at:end] = block.numeric_bin[start:stop]
        if incremental:
            self._tally(slice(at, end), 1)
        else:
            self._fresh = False

    # -- running tallies (see the module docstring) ---------------------------------------

    @property
    def bin_counts(self) -> IntArray:
        """(bins, F) window counts per PSI/JS bin of each numeric feature."""
        self._refresh()
        return self._bin_counts

    @property
    def missing_count(self) -> IntArray:
        """(F,) NaN values per numeric feature."""
        self._refresh()
        return self._missing

    @property
    def nonfinite_count(self) -> IntArray:
        """(F,) +-inf values per numeric feature."""
        self._refresh()
        return self._nonfinite

    @property
    def outside_count(self) -> IntArray:
        """(F,) finite values outside the reference's range, per numeric feature."""
        self._refresh()
        return self._outside

    def _refresh(self) -> None:
        if not self._fresh:
            self._clear_tallies()
            self._tally(slice(0, self.count), 1)
            self._fresh = True

    def _tally(self, rows: slice, sign: int) -> None:
        """Add (sign 1) or take away (sign -1) the tallies of some rows."""
        values = self.features[rows]
        self._missing += sign * np.isnan(values).sum(axis=0)
        self._nonfinite += sign * np.isinf(values).sum(axis=0)
        if self.reference is not None and self.ks_key.shape[1]:
            keys, bits = self.ks_key[rows], self.key_bits
            outside = (keys != missing_key(bits)) & (
                ((keys >> bits) == 0) | ((keys & ((1 << bits) - 1)) == self.reference.sizes)
            )
            self._outside += sign * outside.sum(axis=0)
        if self._bin_counts.shape[1]:
            assert self.reference is not None
            counts = window_bin_counts(self.reference.numeric(), self.numeric_bin[rows])
            self._bin_counts += sign * counts

    def _clear_tallies(self) -> None:
        self._tallies[...] = 0

    @property
    def head(self) -> int:
        """The next row to be written (the oldest row once the window is full)."""
        return self._head

    def newest_rows(self, k: int) -> npt.NDArray[np.intp]:
        """Positions of the newest k rows, oldest first."""
        k = min(k, self.count)
        return (np.arange(self._head - k, self._head) % self.size).astype(np.intp)

    def load(self, block: WindowBlock, head: int, count: int) -> None:
        """Take a whole ring as it lay (block rows = ring positions), e.g. from a snapshot."""
        self._write(block, 0, self.size, 0)
        self._head = head
        self.count = count
        self._fresh = False  # recounted on the next read

    def rows(self) -> slice:
        """The filled rows (all of them once the window is full), in no particular order."""
        return slice(0, self.count)

    def oldest_timestamp(self) -> float:
        return float(self.timestamp[self._head if self.count == self.size else 0])

    def newest_timestamp(self) -> float:
        return float(self.timestamp[(self._head - 1) % self.size]) if self.count else math.nan


class WindowBlock:
    """A batch's events of one model as arrays, with the per-event reference look-ups done."""

    __slots__ = (
        "actual",
        "categorical",
        "error",
        "features",
        "ks_key",
        "latency_ms",
        "numeric_bin",
        "prediction",
        "prediction_bin",
        "prediction_class",
        "timestamp",
    )

    def __init__(
        self,
        features: FloatArray,
        prediction: FloatArray,
        actual: FloatArray,
        latency_ms: FloatArray,
        timestamp: FloatArray,
        reference: PreparedReference | None,
        categorical: IntArray | None = None,
        with_bins: bool = False,
        error: FloatArray | None = None,
        prediction_class: IntArray | None = None,
    ) -> None:
        self.prediction_class = prediction_class
        self.features = features
        self.categorical = categorical
        self.error = np.abs(prediction - actual) if error is None else error
        self.prediction = prediction
        self.actual = actual
        self.latency_ms = latency_ms
        self.timestamp = timestamp
        self.ks_key: KeyArray | None = None
        self.prediction_bin: npt.NDArray[np.int16] | None = None
        self.numeric_bin: npt.NDArray[np.int16] | None = None
        if reference is not None:
            self.ks_key = _reference_keys(reference, features)
            self.prediction_bin = reference.prediction_bin(prediction)
            if with_bins:
                self.numeric_bin = kernels.bin_index(reference.numeric().edges, features)

    def __len__(self) -> int:
        return int(self.prediction.shape[0])


def _reference_keys(reference: PreparedReference, features: FloatArray) -> KeyArray:
    """Each value's KS key: looked up natively in the exact reference's sorted columns, or
    estimated by a compact reference's summary (`cdf_counts`)."""
    if reference.summary is None:
        return reference.columns().keys(features, reference.key_bits)
    right, left = reference.cdf_counts(features)
    return ks_keys(right, left, ~np.isfinite(features), reference.key_bits)
