"""A model's events as arrays: feature rows, numbers, errors (per batch, cheap checks)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import itemgetter

import numpy as np

from stream_monitor.reference import FloatArray


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
