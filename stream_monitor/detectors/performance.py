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
    """MAE and RMSE over the events that have both a numeric prediction and actual."""
    err = prediction - actual
    err = err[np.isfinite(err)]
    if err.size == 0:
        return Errors(0, math.nan, math.nan)
    abs_err = np.abs(err)
    return Errors(int(err.size), float(abs_err.mean()), float(np.sqrt(np.mean(err * err))))


def latency_percentiles(latency_ms: FloatArray) -> dict[str, float]:
    """p50/p95/p99 in ms (numpy's linear interpolation, as the original design used)."""
    values = latency_ms[np.isfinite(latency_ms)]
    if values.size == 0:
        return {}
    q = np.percentile(values, LATENCY_QUANTILES)
    return {f"p{int(k)}": float(v) for k, v in zip(LATENCY_QUANTILES, q, strict=True)}
