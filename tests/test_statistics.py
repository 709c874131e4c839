"""Window statistics against scipy: KS (bit for bit, ties and missing values), JS, errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from stream_monitor.detectors.histogram import bin_counts, js_distance, smoothed
from stream_monitor.detectors.ks import (
    as_scipy_default,
    as_scipy_default_one,
    ks_keys,
    ks_pvalue,
    ks_statistic,
)
from stream_monitor.detectors.performance import (
    latency_percentiles,
    linear_percentiles,
    regression_errors,
)
from stream_monitor.reference.prepared import PreparedReference


def _prepared(ref: np.ndarray) -> PreparedReference:
    names = [f"f{j}" for j in range(ref.shape[1])]
    return PreparedReference.from_arrays("m", names, ref, np.zeros(ref.shape[0]), 20)


def _window_ks(
    ref: np.ndarray, win: np.ndarray
) -> tuple[np.ndarray, np.ndarray, PreparedReference]:
    prepared = _prepared(ref)
    right, left = prepared.cdf_counts(win)
    stat, sizes = ks_statistic(ks_keys(right, left, np.isnan(win)), prepared.sizes)
    # the window's own keys: 32-bit when the reference allows, stored feature by feature
    bits = prepared.key_bits
    keys = np.asfortranarray(ks_keys(right, left, np.isnan(win), bits))
    stat_w, sizes_w = ks_statistic(keys, prepared.sizes, bits)
    assert np.array_equal(stat_w, stat) and np.array_equal(sizes_w, sizes)
    return stat, sizes, prepared


@pytest.mark.parametrize("seed", range(40))
def test_ks_statistic_equals_scipy_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_ref, n_win, f = int(rng.integers(1, 400)), int(rng.integers(1, 150)), 6
    if seed % 2:  # heavy ties: small integer supports, shared between samples
        ref = rng.integers(0, 5, (n_ref, f)).astype(float)
        win = rng.integers(0, 7, (n_win, f)).astype(float)
    else:
        ref = rng.normal(size=(n_ref, f))
        win = rng.normal(0.2, 1.3, size=(n_win, f))
        win[: n_win // 3, 0] = ref[0, 0]  # ties across the samples
    win[rng.random(win.shape) < 0.15] = np.nan  # missing values are left out, as scipy needs
    ref[rng.random(ref.shape) < 0.1] = np.nan
    stat, sizes, prepared = _window_ks(ref, win)
    pvalues = ks_pvalue(stat, prepared.sizes, sizes)
    default = as_scipy_default(stat, prepared.sizes, sizes)
    for j in range(f):
        w = win[:, j][~np.isnan(win[:, j])]
        r = ref[:, j][~np.isnan(ref[:, j])]
        if w.size == 0 or r.size == 0:
            assert stat[j] == 0.0 and sizes[j] == 0
            continue
        asymp = ks_2samp(r, w, method="asymp")
        assert stat[j] == asymp.statistic  # bit for bit
        assert default[j] == ks_2samp(r, w).statistic  # bit for bit, default method
        assert sizes[j] == w.size
        assert pvalues[j] == pytest.approx(asymp.pvalue, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("seed", range(3))
def test_ks_statistic_equals_scipy_above_its_exact_size_limit(seed: int) -> None:
    """References over 10 000 values: scipy's default switches to asymptotic and no snapping."""
    rng = np.random.default_rng(100 + seed)
    ref = np.round(rng.normal(size=(12_000, 4)), 2)  # rounded: many ties
    win = np.round(rng.normal(0.1, 1.0, size=(1000, 4)), 2)
    stat, sizes, prepared = _window_ks(ref, win)
    default = as_scipy_default(stat, prepared.sizes, sizes)
    for j in range(4):
        assert default[j] == stat[j] == ks_2samp(ref[:, j], win[:, j]).statistic


@pytest.mark.parametrize(("n_ref", "n_win"), [(40_000, 500), (40_000, 60_000)])
def test_ks_statistic_equals_scipy_with_wide_counts(n_ref: int, n_win: int) -> None:
    """Counts past 15 bits (64-bit keys in the sort) and n m past 2^31 (64-bit arithmetic)."""
    rng = np.random.default_rng(n_win)
    ref = np.round(rng.normal(size=(n_ref, 2)), 2)
    win = np.round(rng.normal(0.05, 1.0, size=(n_win, 2)), 2)
    win[:7, 1] = np.nan
    stat, sizes, _ = _window_ks(ref, win)
    for j in range(2):
        w = win[:, j][~np.isnan(win[:, j])]
        assert stat[j] == ks_2samp(ref[:, j], w, method="asymp").statistic
        assert sizes[j] == w.size


def test_ks_detects_a_shift_and_not_a_copy() -> None:
    rng = np.random.default_rng(7)
    ref = rng.normal(size=(5000, 3))
    same, _, _ = _window_ks(ref, rng.normal(size=(1000, 3)))
    shifted, _, _ = _window_ks(ref, rng.normal(1.0, 1.0, size=(1000, 3)))
    assert same.max() < 0.1
    assert shifted.min() > 0.3


def test_ks_constant_reference_column() -> None:
    ref = np.ones((100, 1))
    win = np.array([[1.0], [1.0], [2.0], [0.5]])
    stat, _, _ = _window_ks(ref, win)
    assert stat[0] == ks_2samp(ref[:, 0], win[:, 0]).statistic


@pytest.mark.parametrize("seed", range(10))
def test_js_distance_equals_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref_pred = rng.normal(size=2000)
    win_pred = rng.normal(rng.uniform(-1, 1), rng.uniform(0.5, 2), size=500)
    prepared = PreparedReference.from_arrays("m", [], np.empty((2000, 0)), ref_pred, 20)
    assert prepared.prediction_edges is not None and prepared.prediction_counts is not None
    counts = bin_counts(prepared.prediction_bin(win_pred), 20)
    # The window on the reference's bins; values outside the range count in the outer bins.
    clipped = np.clip(win_pred, prepared.prediction_edges[0], prepared.prediction_edges[-1])
    expected_counts, _ = np.histogram(clipped, bins=prepared.prediction_edges)
    assert counts.tolist() == expected_counts.tolist()
    p = smoothed(prepared.prediction_counts)
    q = smoothed(counts)
    assert js_distance(p, q) == pytest.approx(jensenshannon(p, q), rel=1e-12)
    # The original design's density histograms give the same distance up to the smoothing.
    dens_ref, edges = np.histogram(ref_pred, bins=20, density=True)
    dens_win, _ = np.histogram(clipped, bins=edges, density=True)
    assert js_distance(p, q) == pytest.approx(
        jensenshannon(dens_ref + 1e-10, dens_win + 1e-10), abs=1e-6
    )


def test_js_identical_is_zero_and_disjoint_is_maximal() -> None:
    a = np.array([10, 0, 0, 0])
    b = np.array([0, 0, 0, 10])
    assert js_distance(smoothed(a), smoothed(a)) == 0.0
    assert js_distance(smoothed(a), smoothed(b)) == pytest.approx(np.sqrt(np.log(2)), rel=1e-6)


def test_regression_errors_and_latency_percentiles() -> None:
    rng = np.random.default_rng(3)
    pred = rng.normal(size=300)
    actual = pred + rng.normal(size=300)
    actual[::7] = np.nan  # unlabeled events are left out
    errors = regression_errors(pred, actual)
    mask = ~np.isnan(actual)
    diff = pred[mask] - actual[mask]
    assert errors.labeled == mask.sum()
    assert errors.mae == pytest.approx(np.mean(np.abs(diff)), rel=1e-12)
    assert errors.rmse == pytest.approx(np.sqrt(np.mean(diff**2)), rel=1e-12)
    lat = rng.lognormal(3, 0.5, 500)
    q = latency_percentiles(lat)
    assert q["p50"] == pytest.approx(np.percentile(lat, 50))
    assert q["p99"] == pytest.approx(np.percentile(lat, 99))


@pytest.mark.parametrize("seed", range(6))
def test_linear_percentiles_equal_numpy_to_the_last_bit(seed: int) -> None:
    """The latency check's percentiles are numpy's default (linear) percentiles, computed
    from the sorted window in scalar arithmetic: equal bit for bit, ties, one value, and
    the ends (0 and 100) included."""
    rng = np.random.default_rng(seed)
    for n in (1, 2, 3, 10, 999, 1000, int(rng.integers(4, 3000))):
        x = rng.lognormal(3, 1, n) if seed % 2 else np.round(rng.normal(50, 10, n))
        percents = (0.0, 50.0, 95.0, 99.0, 100.0, *rng.uniform(0, 100, 20).round(4).tolist())
        ours = linear_percentiles(np.sort(x), percents)
        assert np.array_equal(np.array(ours), np.percentile(x, percents))
    lat = np.concatenate([rng.lognormal(3, 0.5, 500), [np.nan, np.inf]])
    q = latency_percentiles(lat)  # non-finite latencies are left out
    assert [q["p50"], q["p95"], q["p99"]] == np.percentile(lat[:500], (50, 95, 99)).tolist()


def test_one_statistic_is_snapped_as_the_array_version_snaps_it() -> None:
    """`as_scipy_default_one` (Python arithmetic) equals `as_scipy_default` (numpy) to the
    last bit, on both sides of the exact method's size limit, and equals ks_2samp."""
    rng = np.random.default_rng(11)
    for _ in range(2000):
        m = int(rng.choice([1, 3, 50, 999, 5000, 10_000, 10_001, 40_000]))
        n = int(rng.choice([1, 2, 7, 100, 1000, 10_000, 12_000]))
        d = int(rng.integers(0, m * n + 1))
        raw = d / (m * n) + float(rng.choice([0.0, 1e-16, -1e-16]))
        want = as_scipy_default(np.array([raw]), np.array([m]), np.array([n]))[0]
        assert as_scipy_default_one(raw, m, n) == want, (raw, m, n)
    reference = np.round(rng.normal(size=900), 1)
    sample = np.round(rng.normal(0.3, 1, size=400), 1)
    raw = ks_statistic(  # the window kernel's statistic of the same samples
        *(_keys_of(np.sort(reference), sample)), 32
    )[0][0]
    assert as_scipy_default_one(raw, 900, 400) == ks_2samp(reference, sample).statistic
    assert np.isnan(as_scipy_default_one(float("nan"), 5, 3))


def _keys_of(reference: np.ndarray, sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    right = np.searchsorted(reference, sample, side="right")[:, None]
    left = np.searchsorted(reference, sample, side="left")[:, None]
    keys = ks_keys(right, left, np.zeros(right.shape, dtype=bool), 32)
    return keys, np.array([reference.size], dtype=np.int64)
