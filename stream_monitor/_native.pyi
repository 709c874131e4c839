"""Types of the compiled extension (native/, Rust): the package's native kernels."""

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

def ks_statistic(
    keys: npt.NDArray[np.int64] | npt.NDArray[np.int32],
    ref_sizes: npt.NDArray[np.int64],
    bits: int = 32,
    window_sizes: npt.NDArray[np.int64] | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """KS statistic per feature of an (n, F) window of packed keys and the sizes used, bit
    for bit `stream_monitor.detectors.ks.ks_statistic` (radix sort and one exact scan, the
    GIL released). Raises TypeError for a wrong dtype or shape, ValueError for keys, sizes
    or `bits` that do not fit together, naming the argument."""

def ks_statistic_sorted(
    sorted_keys: npt.NDArray[np.int64] | npt.NDArray[np.int32],
    ref_sizes: npt.NDArray[np.int64],
    bits: int = 32,
    window_sizes: npt.NDArray[np.int64] | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """`ks_statistic` of keys already sorted ascending along the rows (`np.sort(keys,
    axis=0)`: numpy's SIMD sort of the keys, then one exact scan per feature). Keys that are
    not ascending, or `window_sizes` that are not the counts of keys that are not missing,
    raise ValueError naming the argument."""

def ks_scipy_default(
    stat: npt.NDArray[np.float64],
    ref_sizes: npt.NDArray[np.int64],
    sizes: npt.NDArray[np.int64],
) -> npt.NDArray[np.float64]:
    """`detectors.ks.as_scipy_default` to the last bit: each statistic snapped to the nearest
    multiple of 1/lcm(n, m) (ties to even) where both sizes are at most 10 000. Raises
    TypeError / ValueError naming the argument."""

def reference_keys(
    flat: npt.NDArray[np.float64],
    column_starts: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    bits: int = 32,
) -> npt.NDArray[np.int64] | npt.NDArray[np.int32]:
    """The KS key of every value of a (k, F) block against the reference's sorted columns
    laid end to end (`flat`, cut by the F + 1 `column_starts`): `detectors.ks.ks_keys` of
    `PreparedReference.cdf_counts`; int64 keys for bits 32, int32 below; the missing key
    where a value is not finite. Raises TypeError / ValueError naming the argument."""

def bin_index(
    edges: npt.NDArray[np.float64], values: npt.NDArray[np.float64]
) -> npt.NDArray[np.int16]:
    """The bin of every value of a (k, F) block among each feature's inner edges ((E, F),
    ascending, padded with +inf): `detectors.numeric.bin_index`; -1 where not finite."""

def ks_sorted_statistic(
    sorted_reference: npt.NDArray[np.float64], sorted_sample: npt.NDArray[np.float64]
) -> float:
    """The KS statistic of a sorted finite sample against a sorted finite reference:
    `detectors.ks.ks_sorted_statistic` to the last bit. ValueError when either is not
    ascending and finite."""

def regression_errors(
    prediction: npt.NDArray[np.float64], actual: npt.NDArray[np.float64]
) -> tuple[int, float, float]:
    """`detectors.performance.regression_errors` to the last bit: (labeled, mae, rmse) of
    the events whose prediction minus actual is finite, NaN for none."""

def linear_percentiles(values: npt.NDArray[np.float64], percents: list[float]) -> list[float]:
    """`np.percentile` (linear method) of the finite values to the last bit; [] for none.
    ValueError for a percent outside [0, 100]."""

def histogram_js(
    bin_index: npt.NDArray[np.int16], reference_smoothed: npt.NDArray[np.float64]
) -> tuple[int, float]:
    """(values binned, Jensen-Shannon distance of the reference's smoothed histogram and
    the window's), to the last bit of `detectors.histogram`'s functions. ValueError for a bin
    index past the reference's bins."""

def numeric_quality(
    missing: npt.NDArray[np.int64],
    nonfinite: npt.NDArray[np.int64],
    outside: npt.NDArray[np.int64],
    count: int,
    limits: tuple[float, float, float],
) -> tuple[list[tuple[int, int, float]], list[float]]:
    """Missing and non-finite shares per event, out-of-range shares per finite value, from
    a window's tallies: ((feature, measure, share) over the measure's limit, each measure's
    largest share, -inf for no feature). Measures: missing, non-finite, out of range."""

class ReferenceColumns:
    """A reference's sorted columns (the array held, not copied) with a sparse index of
    every 32nd value per column, built once: the per-event look-ups through it stay in the
    cache when many models' references do not."""

    def __init__(
        self, flat: npt.NDArray[np.float64], column_starts: npt.NDArray[np.int64]
    ) -> None: ...
    def keys(
        self, values: npt.NDArray[np.float64], bits: int = 32
    ) -> npt.NDArray[np.int64] | npt.NDArray[np.int32]:
        """`reference_keys` of a (k, F) block against these columns: the same keys."""

class Adwin:
    """ADWIN on a stream of errors: bit for bit `detectors.adwin.ADWIN`, the same API and
    the same `state()`, without a Python call per value."""

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
    ) -> None: ...
    @property
    def delta(self) -> float: ...
    @property
    def clock(self) -> int: ...
    @property
    def max_buckets(self) -> int: ...
    @property
    def min_window_length(self) -> int: ...
    @property
    def drift_detected(self) -> bool: ...
    @property
    def n(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def estimation(self) -> float: ...
    @property
    def variance(self) -> float: ...
    def reset(self) -> None: ...
    def buckets(self) -> list[tuple[int, float, float]]: ...
    def update(self, x: float) -> bool: ...
    def update_many(self, values: npt.NDArray[np.float64] | Sequence[float]) -> bool: ...
    def state(self) -> dict[str, Any]: ...
    @staticmethod
    def from_state(state: dict[str, Any]) -> Adwin: ...

class NativeModel:
    """A fast model's valid events of one batch as columns, in batch order."""

    positions: npt.NDArray[np.int64]  # the events' positions in the batch
    features: npt.NDArray[np.float64]  # (events, F) C order, the schema's columns; NaN: missing
    prediction: npt.NDArray[np.float64]
    actual: npt.NDArray[np.float64]  # NaN when absent or null
    latency_ms: npt.NDArray[np.float64]  # NaN when absent or null
    timestamp: npt.NDArray[np.float64]  # the event's, else the record's, else NaN
    error: npt.NDArray[np.float64]  # |prediction - actual| (as numpy forms it), NaN: no actual
    event_ids: list[str | None]  # a non-empty string, an int as its decimal text, else None
    versions: list[str | None]

class NativeDecoded:
    """A batch of prediction records read by `decode_predictions`."""

    dead: list[tuple[int, str, str, str]]  # (position, reason, detail, model or ""), in order
    slow_positions: list[int]  # the valid records of slow models (the Python decodes them), sorted
    undecided_positions: list[int]  # records serde_json and orjson may read differently, sorted
    fast: dict[str, NativeModel]
    staged: int  # models whose fast events the fleet holds for `WindowFleet.ingest`
    # (model, position of its first valid record) of the models neither in the schemas nor
    # in the fleet, first seen first
    unknown: list[tuple[str, int]]

def decode_predictions(
    values: list[bytes | None],
    keys: list[bytes | None],
    timestamps: list[float | None],
    schemas: dict[str, tuple[str, ...]],
    fleet: WindowFleet | None = None,
    split_versions: bool = False,
) -> NativeDecoded:
    """Prediction records validated exactly as `decode.predictions.decode_batch` validates
    them (the same checks in the same order, reason codes and details; a `not_json` detail
    has serde_json's message), parsed with the GIL released. A valid record is fast when its
    model is in `schemas` (model -> numeric feature names) and its prediction, actual,
    timestamp and schema features are numbers (or missing; a bool feature is 1.0/0.0); a
    model with one record that is not is slow, all of its records left to the Python; so are
    the undecided records (nesting deeper than serde_json's 128 levels; an integer `-0`,
    which serde_json reads as the float -0.0, in a text whose -0.0 validation reads). Only
    the schemas of the batch's models are read. Raises TypeError for arguments of the wrong
    type and ValueError for lists of different lengths, naming the argument. With `fleet`,
    the fast events of its enrolled models (read by their enrolled schemas) are staged in it
    and not in `fast`. With `split_versions`, a record with a non-empty `model_version` is
    routed by `model@version` (as `decode_batch(..., split_versions=True)`)."""

class WindowFleet:
    """The models whose windows the native core writes: `decode_predictions` stages their
    fast events, `ingest` appends them to the windows' own arrays (KS keys, bins and
    tallies as the Python computes them) up to each model's next due check, `resume_many` goes
    on after it. The window's head and count and the model's event count, cadence, version
    and partition are read from the Python objects and written back at each stop."""

    def __init__(self, latency_bounds: list[float], threads: int | None = None) -> None: ...
    @property
    def threads(self) -> int: ...
    @property
    def side_by_side(self) -> int: ...
    @property
    def schemas(self) -> int: ...
    def enroll(
        self,
        name: str,
        model: Any,
        window: Any,
        schema: list[str],
        features: npt.NDArray[np.float64],
        scalars: npt.NDArray[np.float64],
        ks_key: npt.NDArray[np.int64] | npt.NDArray[np.int32],
        prediction_bin: npt.NDArray[np.int16],
        numeric_bin: npt.NDArray[np.int16],
        tallies: npt.NDArray[np.int64],
        reference: ReferenceColumns | None,
        sizes: list[int],
        bits: int,
        prediction_edges: list[float] | None,
        feature_edges: list[list[float]] | None,
        charts: SequentialCharts | None = None,
    ) -> None: ...
    def drop(self, name: str) -> None: ...
    def clear(self) -> None: ...
    def __contains__(self, name: str) -> bool: ...
    def __len__(self) -> int: ...
    def staged(self, name: str) -> bool: ...
    def unstage(self, name: str) -> list[int]: ...
    def ingest(
        self,
        topics: list[str],
        partitions: list[int],
        ok_counts: dict[str, int],
        windows: dict[str, tuple[int, bool]],
    ) -> tuple[
        list[tuple[int, str, int, bool]],
        tuple[list[str], npt.NDArray[np.int64], npt.NDArray[np.float64]],
    ]: ...
    def resume_many(
        self, names: list[str], windows: dict[str, tuple[int, bool]]
    ) -> list[tuple[int, bool] | None]: ...

class NormalScores:
    """The normal score Phi^-1((R + 1/2) / (m + 1)) of each rank R in 0..m of a reference of
    m values (ascending, finite), shared by every model and feature of that size."""

    def __init__(self, table: npt.NDArray[np.float64]) -> None: ...
    def __len__(self) -> int: ...

class ResidualSubspace:
    """A reference's PCA subspace (mean, scale, (k, F) orthonormal components) and its
    held-out rows' squared reconstruction errors, ascending: the multivariate chart's
    reference, shared by the charts judged against it. The getters return copies."""

    def __init__(
        self,
        mean: npt.NDArray[np.float64],
        scale: npt.NDArray[np.float64],
        components: npt.NDArray[np.float64],
        sorted_errors: npt.NDArray[np.float64],
    ) -> None: ...
    def errors(self, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...
    @property
    def size(self) -> int: ...
    @property
    def mean(self) -> npt.NDArray[np.float64]: ...
    @property
    def scale(self) -> npt.NDArray[np.float64]: ...
    @property
    def components(self) -> npt.NDArray[np.float64]: ...
    @property
    def sorted_errors(self) -> npt.NDArray[np.float64]: ...

class SequentialCharts:
    """One model's CUSUM charts on the normal scores of its features' reference ranks (up,
    down and scale per feature), fed each event's KS keys; transitions (firing at the event
    a chart crosses its threshold, resolved when every fired chart is back) wait until taken."""

    def __init__(
        self,
        name: str,
        k: float,
        c: float,
        thresholds: list[list[float]],
        scores: list[NormalScores],
        events_seen: int = 0,
        projection: ResidualSubspace | None = None,
    ) -> None: ...
    def update(
        self,
        keys: npt.NDArray[np.int64] | npt.NDArray[np.int32],
        bits: int,
        first_event: int,
        timestamps: npt.NDArray[np.float64],
        positions: npt.NDArray[np.int64],
        features: npt.NDArray[np.float64] | None = None,
    ) -> int: ...
    @property
    def pending(self) -> bool: ...
    @property
    def firing(self) -> bool: ...
    def evidence(self) -> float: ...
    def take_pending(
        self,
    ) -> list[
        tuple[
            str, int, int, float, str | None, list[tuple[int, int, float, float, int, float, int]]
        ]
    ]: ...
    def values(self) -> npt.NDArray[np.float64]: ...
    def state(self) -> dict[str, Any]: ...
    def restore(self, state: dict[str, Any]) -> None: ...

def projection_errors(
    mean: npt.NDArray[np.float64],
    scale: npt.NDArray[np.float64],
    components: npt.NDArray[np.float64],
    rows: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """The squared reconstruction error of each (n, F) row in the subspace of `components`
    ((k, F), orthonormal rows) after standardising by `mean` and `scale`; NaN for a row with
    a value that is not finite."""
