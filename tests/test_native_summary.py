"""The native summaries of a window's numbers equal numpy's and scipy's, bit for bit: the
regression errors (`detectors.performance.regression_errors`), the linear percentiles
(`np.percentile`) and the prediction histogram's Jensen-Shannon distance
(`detectors.histogram`); bad arguments raise, naming them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from stream_monitor.detectors.histogram import bin_counts, js_distance, smoothed
from stream_monitor.detectors.performance import regression_errors as numpy_errors
from stream_monitor.kernels import (
    histogram_js,
    linear_percentiles,
    numeric_quality,
    regression_errors,
)

SIZES = [0, 1, 2, 7, 8, 9, 127, 128, 129, 255, 256, 1000, 1001, 4099, 20_000]


def _values(rng: np.random.Generator, n: int, decimals: int, spread: float) -> np.ndarray:
    """Values of mixed magnitudes (sums are order-sensitive), rounded for ties."""
    x = rng.standard_normal(n) * 10.0 ** rng.uniform(-spread, spread, n)
    return np.round(x, decimals) if decimals >= 0 else x


def _spoil(rng: np.random.Generator, x: np.ndarray, share: float) -> np.ndarray:
    """NaN, +inf and -inf in a share of the places."""
    x = x.copy()
    bad = rng.random(x.size) < share
    x[bad] = rng.choice([np.nan, np.inf, -np.inf], size=int(bad.sum()))
    return x


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from(SIZES),
    st.sampled_from([-1, 0, 3]),
    st.sampled_from([0.0, 4.0]),
    st.sampled_from([0.0, 0.05, 1.0]),
)
def test_regression_errors_equal_numpys(
    seed: int, n: int, decimals: int, spread: float, missing: float
) -> None:
    rng = np.random.default_rng(seed)
    prediction = _spoil(rng, _values(rng, n, decimals, spread), missing)
    actual = _spoil(rng, _values(rng, n, decimals, spread), missing)
    labeled, mae, rmse = regression_errors(prediction, actual)
    with np.errstate(invalid="ignore"):  # inf - inf: not labelled, as NaN is
        want = numpy_errors(prediction, actual)
    assert labeled == want.labeled
    if labeled == 0:
        assert math.isnan(mae) and math.isnan(rmse)
    else:
        assert (mae, rmse) == (want.mae, want.rmse)
        with np.errstate(invalid="ignore"):
            err = prediction - actual
        err = err[np.isfinite(err)]
        assert mae == float(np.mean(np.abs(err)))  # the expression itself, not our copy


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from(SIZES),
    st.sampled_from([-1, 0, 2]),
    st.sampled_from([0.0, 0.1, 1.0]),
    st.lists(st.floats(0.0, 100.0), min_size=1, max_size=6),
)
def test_percentiles_equal_np_percentile(
    seed: int, n: int, decimals: int, missing: float, percents: list[float]
) -> None:
    rng = np.random.default_rng(seed)
    latency = np.abs(_spoil(rng, _values(rng, n, decimals, 2.0), missing))
    got = linear_percentiles(latency, [50.0, 95.0, 99.0, *percents])
    finite = latency[np.isfinite(latency)]
    if finite.size == 0:
        assert got == []
    else:
        assert got == np.percentile(finite, [50.0, 95.0, 99.0, *percents]).tolist()


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from([1, 2, 5, 20, 64]),
    st.sampled_from([0, 1, 10, 1000, 5000]),
    st.sampled_from([0.0, 0.2, 1.0]),
)
def test_histogram_js_equals_the_numpy_functions(
    seed: int, bins: int, n: int, missing: float
) -> None:
    rng = np.random.default_rng(seed)
    reference = smoothed(rng.integers(0, 50, size=bins) * rng.integers(0, 2, size=bins))
    index = rng.integers(0, bins, size=n).astype(np.int16)
    index[rng.random(n) < missing] = -1
    binned, js = histogram_js(index, reference)
    counts = bin_counts(index, bins)
    assert binned == int(counts.sum())
    want = js_distance(reference, smoothed(counts))
    assert js == want
    assert js == pytest.approx(jensenshannon(reference, smoothed(counts)), abs=1e-12)


def test_bad_arguments_raise_naming_them() -> None:
    with pytest.raises(TypeError, match="prediction: expected a 1-d float64 array"):
        regression_errors(np.zeros(3, dtype=np.float32), np.zeros(3))
    with pytest.raises(ValueError, match="differ in length: 3 and 2"):
        regression_errors(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match=r"percents must lie in \[0, 100\], got 101"):
        linear_percentiles(np.zeros(3), [101.0])
    with pytest.raises(ValueError, match="bin index 4 is past the reference's 4 bins"):
        histogram_js(np.array([0, 4], dtype=np.int16), np.full(4, 0.25))
    with pytest.raises(TypeError, match="bin_index: expected a 1-d int16 array"):
        histogram_js(np.array([0, 1]), np.full(4, 0.25))


def test_window_views_that_are_not_contiguous_are_read_too() -> None:
    x = np.arange(20.0)
    assert regression_errors(x[::2], x[1::2]) == (10, 1.0, 1.0)
    assert linear_percentiles(x[::-1], [50.0]) == [9.5]


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 25),
    st.sampled_from([0, 1, 7, 1000]),
    st.tuples(*[st.sampled_from([0.0, 0.01, 0.1, 0.5, 1.0])] * 3),
)
def test_numeric_quality_equals_the_numpy_shares(
    seed: int, features: int, count: int, limits: tuple[float, float, float]
) -> None:
    """The shares over their limits and each measure's largest, as numpy forms them."""
    rng = np.random.default_rng(seed)
    missing = rng.integers(0, count + 1, size=features)
    nonfinite = np.minimum(rng.integers(0, count + 1, size=features), count - missing)
    outside = rng.integers(0, count - missing - nonfinite + 1)
    above, tops = numeric_quality(missing, nonfinite, outside, count, limits)
    n = max(count, 1)
    finite = count - missing - nonfinite
    shares = [missing / n, nonfinite / n, outside / np.maximum(finite, 1)]
    want = [
        (int(j), m, float(share[j]))
        for m, share in enumerate(shares)
        for j in np.flatnonzero(share > limits[m])
    ]
    assert above == want
    assert list(tops) == [float(s.max()) if s.size else -math.inf for s in shares]
