"""Error and latency summaries of a window (regression errors; latency percentiles)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

LATENCY_QUANTILES = (50.0, 95.0, 99.0)


@dataclass(frozen=True, slots=True)
class Errors:
    labeled: int
    mae: float
    rmse: float


def regression_errors(prediction: FloatArray, actual: FloatArray) -> Errors:
    """MAE and RMSE over the events that have both a numeric prediction and actual.

    >>> import numpy as np
    >>> errors = regression_errors(np.array([1.0, 2.0, np.nan]), np.array([1.5, 4.0, 3.0]))
    >>> errors.labeled, errors.mae, round(errors.rmse, 6)
    (2, 1.25, 1.457738)
    """
    err = prediction - actual
    err = err[np.isfinite(err)]
    if err.size == 0:
        return Errors(0, math.nan, math.nan)
    abs_err = np.abs(err)
    return Errors(int(err.size), float(abs_err.mean()), float(np.sqrt(np.mean(err * err))))


def latency_percentiles(latency_ms: FloatArray) -> dict[str, float]:
    """p50/p95/p99 in ms (numpy's linear interpolation, as the original design used).

    >>> import numpy as np
    >>> latency = np.array([10.0, 20.0, 30.0, 40.0, np.nan])
    >>> ours = latency_percentiles(latency)
    >>> ours["p50"], ours["p95"]
    (25.0, 38.5)
    >>> list(ours.values()) == np.percentile(latency[:4], [50, 95, 99]).tolist()
    True
    """
    values = latency_ms[np.isfinite(latency_ms)]
    if values.size == 0:
        return {}
    q = linear_percentiles(np.sort(values), LATENCY_QUANTILES)
    return {f"p{int(k)}": float(v) for k, v in zip(LATENCY_QUANTILES, q, strict=True)}


def linear_percentiles(ordered: FloatArray, percents: tuple[float, ...]) -> list[float]:
    """`np.percentile(values, percents)` (its default, linear method) of sorted finite
    values, to the last bit: the same virtual index, neighbours and interpolation (numpy's
    `_lerp`, both branches), in scalar float arithmetic, which is IEEE double like numpy's;
    `np.percentile` costs ten times the sort on a 1000-event window."""
    n = ordered.size
    out: list[float] = []
    for percent in percents:
        virtual = (n - 1) * (float(percent) / 100)
        previous = math.floor(virtual)
        if virtual >= n - 1:
            out.append(float(ordered[n - 1]))
            continue
        below, above = float(ordered[previous]), float(ordered[previous + 1])
        gamma = virtual - previous
        diff = above - below
        out.append(above - diff * (1 - gamma) if gamma >= 0.5 else below + diff * gamma)
    return out
