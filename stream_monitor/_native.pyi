"""Types of the compiled extension (native/, Rust): the package's native kernels."""

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
    # (model, is fast) of each model with a valid record, the first seen first (a slow
    # model's records may still be dead letters for the Python: an RFC 3339 timestamp that
    # does not parse)
    order: list[tuple[str, bool]]
    slow_positions: list[int]  # the valid records of slow models (the Python decodes them), sorted
    undecided_positions: list[int]  # records serde_json and orjson may read differently, sorted
    fast: dict[str, NativeModel]

def decode_predictions(
    values: list[bytes | None],
    keys: list[bytes | None],
    timestamps: list[float | None],
    schemas: dict[str, tuple[str, ...]],
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
    type and ValueError for lists of different lengths, naming the argument."""
