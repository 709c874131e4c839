"""A model's decoded events as arrays: feature rows, numbers, errors, in one place.

The per-batch step between decoding and the window: everything the engine appends to a
model's window comes from `event_arrays`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

from stream_monitor.arrays import FloatArray
from stream_monitor.decode.predictions import ModelEvents
from stream_monitor.sources.records import DeadLetter


def errors(
    predictions: Sequence[object], actuals: Sequence[object], pred: FloatArray, actual: FloatArray
) -> tuple[FloatArray, bool]:
    """Per event: |prediction - actual| for numbers, 1.0/0.0 for a wrong/right class label,
    NaN without a label. Also whether any prediction is a class label."""
    if not np.isnan(pred).any():
        return np.abs(pred - actual), False
    out = np.full(len(predictions), np.nan)
    classes = False
    for i, (p, a) in enumerate(zip(predictions, actuals, strict=True)):
        if isinstance(p, str):
            classes = True
            if isinstance(a, str):
                out[i] = float(p != a)
        elif a is not None and not isinstance(a, str):
            out[i] = abs(pred[i] - actual[i])
    return out, classes


def feature_rows(
    names: tuple[str, ...], features: list[dict[str, object]]
) -> list[Sequence[object]]:
    """Each event's values of the named features; an absent feature is None (missing)."""
    if not names:
        return [() for _ in features]
    pick = itemgetter(*names)
    rows: list[Sequence[object]] = []
    append = rows.append
    for f in features:
        try:
            append(pick(f))  # C-level look-up of every feature at once
        except KeyError:
            append([f.get(n) for n in names])
    if len(names) == 1:  # itemgetter of one name returns the value, not a tuple
        return [r if isinstance(r, list) else [r] for r in rows]
    return rows


def floats(values: Sequence[object]) -> FloatArray:
    """Numbers as float64; None and strings (class labels, checked elsewhere) as NaN."""
    try:
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        return np.array(
            [v if type(v) is float or type(v) is int else math.nan for v in values],
            dtype=np.float64,
        )


def feature_value(name: str, value: object) -> float:
    if value is None:
        return math.nan
    if type(value) is float or type(value) is int or type(value) is bool:
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"feature {name!r} must be a number, got string {value!r}") from None
    raise ValueError(f"feature {name!r} must be a number, got {type(value).__name__}")


@dataclass(slots=True)
class EventArrays:
    """One model's readable events of one batch as arrays, in arrival order.

    `kept` are the positions (in the model's `ModelEvents`) of the events whose feature values
    could be read; the others are in `dead_letters`. Predictions and actuals stay available
    as the decoded values too: class labels are strings.
    """

    kept: list[int]
    features: FloatArray  # (events, features), NaN where missing
    prediction: FloatArray  # NaN for a class label
    actual: FloatArray
    latency_ms: FloatArray
    timestamp: FloatArray
    error: FloatArray  # |prediction - actual|, or 1/0 for a wrong/right class label
    has_classes: bool  # some prediction is a class label
    predictions: Sequence[float | str]
    actuals: Sequence[float | str | None]
    dead_letters: list[DeadLetter]

    def __len__(self) -> int:
        return len(self.kept)

    def features_of(self, events: ModelEvents) -> list[dict[str, object]]:
        """The decoded feature objects of the kept events (categorical features read them)."""
        if len(self.kept) == len(events):
            return events.features
        return [events.features[i] for i in self.kept]


def event_arrays(names: tuple[str, ...], events: ModelEvents) -> EventArrays:
    """The arrays of a model's events; an event whose features cannot be read as numbers
    becomes a dead letter (bad_type) and is left out of every array."""
    rows = feature_rows(names, events.features)
    dead: list[DeadLetter] = []
    try:
        features = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
        kept = list(range(len(rows)))
    except (TypeError, ValueError):
        features, kept = _convert_slowly(names, rows, events, dead)
    every = len(kept) == len(rows)

    def pick(values: list[Any]) -> list[Any]:
        return values if every else [values[i] for i in kept]

    predictions, actuals = pick(events.predictions), pick(events.actuals)
    prediction, actual = floats(predictions), floats(actuals)
    error, has_classes = errors(predictions, actuals, prediction, actual)
    return EventArrays(
        kept,
        features,
        prediction,
        actual,
        floats(pick(events.latencies)),
        floats(pick(events.timestamps)),
        error,
        has_classes,
        predictions,
        actuals,
        dead,
    )


def _convert_slowly(
    names: tuple[str, ...],
    rows: list[Sequence[object]],
    events: ModelEvents,
    dead: list[DeadLetter],
) -> tuple[FloatArray, list[int]]:
    """Row by row, when some value is not a number: its event becomes a dead letter."""
    good_rows: list[list[float]] = []
    kept: list[int] = []
    for i, row in enumerate(rows):
        try:
            good_rows.append([feature_value(n, v) for n, v in zip(names, row, strict=True)])
        except ValueError as exc:
            dead.append(DeadLetter(events.index[i], "bad_type", str(exc)))
            continue
        kept.append(i)
    matrix = np.array(good_rows, dtype=np.float64).reshape(len(good_rows), len(names))
    return matrix, kept
