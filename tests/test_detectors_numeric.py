"""Numeric drift statistics against scipy and written closed forms (1e-12 relative or exact).

Every sample is random over many seeds: continuous data, integer supports shared by both
samples (heavy ties), constant columns in the reference, the window or both, tiny windows
and NaN in both. scipy is given each feature's finite values only.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, getcontext

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import cramervonmises_2samp, rankdata, wasserstein_distance

from stream_monitor.detectors.cvm import cramer_von_mises
from stream_monitor.detectors.numeric import (
    CVM_EXACT_MAX_N,
    PSI_EPSILON,
    NumericReference,
    Scores,
    bin_index,
    js_distance,
    js_from_counts,
    psi,
    psi_from_counts,
    window_bin_counts,
)
from stream_monitor.detectors.ranks import (
    normalised_wasserstein,
    sort_window,
    wasserstein,
)
from stream_monitor.reference.prepared import PreparedReference

F = 6


def _finite(col: np.ndarray) -> np.ndarray:
    return np.asarray(col[np.isfinite(col)])


def _prepared(ref: np.ndarray, bins: int = 10) -> NumericReference:
    names = [f"f{j}" for j in range(ref.shape[1])]
    prepared = PreparedReference.from_arrays("m", names, ref, np.zeros(ref.shape[0]), 20)
    return NumericReference.prepare(prepared.sorted_columns, bins)


def _samples(seed: int, n_win: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reference (m, F) and window (n, F) with ties, constant columns and NaN in both."""
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 1500))
    n = int(rng.integers(1, 300)) if n_win is None else n_win
    if seed % 2:  # integer supports shared by both samples: heavy ties
        ref = rng.integers(0, 5, (m, F)).astype(float)
        win = rng.integers(0, 7, (n, F)).astype(float)
    else:
        ref = rng.normal(size=(m, F))
        win = rng.normal(rng.uniform(-0.5, 0.5), rng.uniform(0.7, 1.5), size=(n, F))
        win[: n // 3, 0] = ref[0, 0]  # ties across the samples
    ref[:, 3] = 2.0  # constant in the reference
    win[:, 4] = 1.0  # constant in the window
    ref[:, 5] = 7.0  # constant in both, the same value half the time
    win[:, 5] = 7.0 if seed % 4 < 2 else 8.0
    ref[rng.random(ref.shape) < 0.1] = np.nan
    win[rng.random(win.shape) < 0.15] = np.nan
    return ref, win


def _pairs(ref: np.ndarray, win: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    return [(j, _finite(ref[:, j]), _finite(win[:, j])) for j in range(ref.shape[1])]


def _assert_not_checked(scores: Scores, j: int) -> None:
    assert scores.statistic[j] == 0.0
    assert scores.sizes[j] == 0
    if scores.pvalue is not None:
        assert np.isnan(scores.pvalue[j])


# --- Wasserstein ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_wasserstein_equals_scipy(seed: int) -> None:
    ref, win = _samples(seed)
    prepared = _prepared(ref)
    raw = wasserstein(prepared, sort_window(prepared, win))
    scaled = normalised_wasserstein(prepared, raw.statistic)
    for j, r, w in _pairs(ref, win):
        if r.size == 0 or w.size == 0:
            _assert_not_checked(raw, j)
            continue
        expected = wasserstein_distance(r, w)
        assert raw.statistic[j] == pytest.approx(expected, rel=1e-12, abs=1e-300)
        assert raw.sizes[j] == w.size
        std = np.std(r)
        expected_scaled = expected / std if std > 0 else expected
        assert scaled[j] == pytest.approx(expected_scaled, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("offset", [0.0, 1e6, -3e9, 1e12])
@pytest.mark.parametrize("seed", range(4))
def test_wasserstein_keeps_its_digits_with_an_offset(offset: float, seed: int) -> None:
    """Prefix sums cancel; the double-double sums must not lose digits to a large offset."""
    rng = np.random.default_rng(1000 + seed)
    scale = [1e-3, 1.0, 10.0, 0.1][seed]
    ref = offset + scale * rng.normal(size=(5000, 2))
    win = offset + scale * rng.normal(0.01, 1.0, size=(1000, 2))
    win[:, 1] = ref[rng.integers(0, 5000, 1000), 1]  # a bootstrap: exact ties everywhere
    prepared = _prepared(ref)
    raw = wasserstein(prepared, sort_window(prepared, win))
    for j, r, w in _pairs(ref, win):
        assert raw.statistic[j] == pytest.approx(wasserstein_distance(r, w), rel=1e-12)


def test_wasserstein_closed_forms() -> None:
    # Point masses: W1 = |a - b|; a window equal to the reference: 0.
    prepared = _prepared(np.array([[0.0, 1.0], [0.0, 2.0], [0.0, 3.0]]))
    raw = wasserstein(prepared, sort_window(prepared, np.array([[2.5, 1.0], [2.5, 2.0]])))
    assert raw.statistic[0] == 2.5
    # {1,2,3} vs {1,2}: F differs by 1/6 on [1,2) and by 1/3 on [2,3): 1/6 + 1/3 = 1/2.
    assert raw.statistic[1] == pytest.approx(0.5, rel=1e-15)
    same = wasserstein(prepared, sort_window(prepared, np.array([[0.0, 1.0], [0.0, 2.0]])))
    assert same.statistic[0] == 0.0
    # A constant reference has no scale: the normalised distance is the raw one.
    assert normalised_wasserstein(prepared, raw.statistic)[0] == 2.5
    assert normalised_wasserstein(prepared, raw.statistic)[1] == pytest.approx(
        0.5 / np.std([1.0, 2.0, 3.0]), rel=1e-15
    )


# --- Cramér-von Mises ------------------------------------------------------------------------


def _cvm_midrank(r: np.ndarray, w: np.ndarray) -> float:
    """Anderson's rank formula as scipy writes it, for sizes scipy refuses (a single value)."""
    nx, ny = r.size, w.size
    ranks = rankdata(np.concatenate([np.sort(r), np.sort(w)]))
    u = nx * np.sum((ranks[:nx] - np.arange(1, nx + 1)) ** 2) + ny * np.sum(
        (ranks[nx:] - np.arange(1, ny + 1)) ** 2
    )
    k, big_n = nx * ny, nx + ny
    return float(u / (k * big_n) - (4 * k - 1) / (6 * big_n))


def _cvm_ecdf(r: np.ndarray, w: np.ndarray) -> float:
    """(m n / N^2) sum over the pooled values of (F_ref - F_win)^2, right-continuous ECDFs."""
    r, w = np.sort(r), np.sort(w)
    z = np.concatenate([r, w])
    diff = np.searchsorted(r, z, side="right") / r.size - np.searchsorted(w, z, "right") / w.size
    return float(r.size * w.size / z.size**2 * np.sum(diff**2))


def _scipy_asymptotic_pvalue(stat: float, nx: int, ny: int) -> float:
    # scipy's own p-value function, private: its public entry refuses a single value.
    from scipy._lib._array_api import array_namespace
    from scipy.stats._hypotests import _pval_cvm_2samp_asymptotic

    t = np.asarray(stat)
    k, big_n = nx * ny, nx + ny
    return float(_pval_cvm_2samp_asymptotic(t, big_n, nx, ny, k, xp=array_namespace(t)))


@pytest.mark.parametrize("seed", range(40))
def test_cramer_von_mises_equals_scipy_bit_for_bit(seed: int) -> None:
    ref, win = _samples(seed)
    prepared = _prepared(ref)
    result = cramer_von_mises(prepared, sort_window(prepared, win))
    assert result.pvalue is not None
    for j, r, w in _pairs(ref, win):
        if r.size == 0 or w.size == 0:
            _assert_not_checked(result, j)
            continue
        assert result.sizes[j] == w.size
        if r.size < 2 or w.size < 2:  # scipy needs two values per sample
            assert result.statistic[j] == pytest.approx(_cvm_midrank(r, w), rel=1e-12)
            if r.size + w.size > 2:
                expected_p = _scipy_asymptotic_pvalue(result.statistic[j], r.size, w.size)
                assert result.pvalue[j] == pytest.approx(expected_p, rel=1e-12)
            else:
                assert result.pvalue[j] == 1.0
            continue
        asymptotic = cramervonmises_2samp(r, w, method="asymptotic")
        assert result.statistic[j] == asymptotic.statistic  # bit for bit, ties included
        assert result.pvalue[j] == pytest.approx(asymptotic.pvalue, rel=1e-12, abs=1e-300)
        if max(r.size, w.size) > CVM_EXACT_MAX_N:  # scipy's default is the asymptotic one
            assert result.pvalue[j] == pytest.approx(
                cramervonmises_2samp(r, w).pvalue, rel=1e-12, abs=1e-300
            )


@pytest.mark.parametrize("seed", range(30))
def test_cramer_von_mises_ecdf_form(seed: int) -> None:
    ref, win = _samples(seed)
    prepared = _prepared(ref)
    result = cramer_von_mises(prepared, sort_window(prepared, win), ties="ecdf")
    assert result.pvalue is not None
    for j, r, w in _pairs(ref, win):
        if r.size == 0 or w.size == 0:
            _assert_not_checked(result, j)
            continue
        expected = _cvm_ecdf(r, w)
        assert result.statistic[j] == pytest.approx(expected, rel=1e-12, abs=1e-300)
        assert 0.0 <= result.pvalue[j] <= 1.0
        if len(np.unique(np.concatenate([r, w]))) == r.size + w.size and min(r.size, w.size) > 1:
            # Without ties it is scipy's statistic (scipy's own cancellation: ~1e-13).
            assert result.statistic[j] == pytest.approx(
                cramervonmises_2samp(r, w).statistic, rel=1e-10
            )


def test_scipy_midrank_statistic_is_not_the_criterion_under_ties() -> None:
    """Identical samples: the ECDF criterion is 0, scipy's midrank formula is not."""
    ref = np.full((50, 1), 3.0)
    prepared = _prepared(ref)
    win = sort_window(prepared, np.full((10, 1), 3.0))
    midrank = cramer_von_mises(prepared, win)
    assert midrank.statistic[0] == cramervonmises_2samp(ref[:, 0], np.full(10, 3.0)).statistic
    assert midrank.statistic[0] == pytest.approx(16.0, abs=0.01)
    ecdf = cramer_von_mises(prepared, win, ties="ecdf")
    assert ecdf.statistic[0] == 0.0
    assert ecdf.pvalue is not None and ecdf.pvalue[0] == 1.0


def test_cramer_von_mises_small_samples_use_the_asymptotic_pvalue() -> None:
    """Where scipy's default is exact (both sizes <= 20) the p-value is the asymptotic one."""
    rng = np.random.default_rng(5)
    ref = rng.normal(size=(12, 1))
    win = rng.normal(0.5, 1.0, size=(9, 1))
    prepared = _prepared(ref)
    result = cramer_von_mises(prepared, sort_window(prepared, win))
    assert result.pvalue is not None
    asymptotic = cramervonmises_2samp(ref[:, 0], win[:, 0], method="asymptotic")
    assert result.statistic[0] == asymptotic.statistic
    assert result.pvalue[0] == pytest.approx(asymptotic.pvalue, rel=1e-12)
    exact = cramervonmises_2samp(ref[:, 0], win[:, 0]).pvalue
    assert result.pvalue[0] == pytest.approx(exact, abs=0.05)  # close, not equal


def test_cramer_von_mises_single_values() -> None:
    prepared = _prepared(np.array([[1.0, 1.0]]))
    result = cramer_von_mises(prepared, sort_window(prepared, np.array([[2.0, 1.0]])))
    assert result.pvalue is not None
    assert result.statistic.tolist() == [0.25, 0.0]  # distinct: 1/4; tied: 0
    assert result.pvalue.tolist() == [1.0, 1.0]


# --- PSI and Jensen-Shannon on the reference's bins -------------------------------------------


def _full_edges(prepared: NumericReference, j: int) -> np.ndarray:
    inner = prepared.edges[:, j]
    return np.concatenate([[-np.inf], inner[np.isfinite(inner)], [np.inf]])


def _psi_direct(ref_counts: np.ndarray, win_counts: np.ndarray) -> float:
    r = np.clip(ref_counts / ref_counts.sum(), PSI_EPSILON, None)
    w = np.clip(win_counts / win_counts.sum(), PSI_EPSILON, None)
    return float(np.sum((w - r) * np.log(w / r)))


@pytest.mark.parametrize("bins", [2, 5, 10, 20])
@pytest.mark.parametrize("seed", range(12))
def test_psi_and_js_equal_histogram_computations(seed: int, bins: int) -> None:
    ref, win = _samples(seed)
    prepared = _prepared(ref, bins)
    counts = window_bin_counts(prepared, bin_index(prepared, win))
    psi_scores = psi(prepared, counts)
    js_scores = js_distance(prepared, counts)
    for j, r, w in _pairs(ref, win):
        if r.size == 0 or w.size == 0:
            _assert_not_checked(psi_scores, j)
            _assert_not_checked(js_scores, j)
            continue
        edges = _full_edges(prepared, j)
        assert np.all(np.diff(edges) > 0)
        ref_hist, _ = np.histogram(r, bins=edges)
        win_hist, _ = np.histogram(w, bins=edges)
        used = prepared.n_bins[j]
        assert ref_hist.tolist() == prepared.bin_counts[:used, j].tolist()
        assert win_hist.tolist() == counts[:used, j].tolist()
        assert counts[used:, j].sum() == 0
        assert psi_scores.statistic[j] == pytest.approx(
            _psi_direct(ref_hist, win_hist), rel=1e-12, abs=1e-300
        )
        assert_js_matches(float(js_scores.statistic[j]), ref_hist, win_hist)
        assert psi_scores.sizes[j] == js_scores.sizes[j] == w.size


def test_psi_hand_computed_cases() -> None:
    prepared = _prepared(np.arange(1.0, 11.0)[:, None], bins=2)  # one inner edge at 5.5
    assert prepared.edges[:, 0].tolist() == [5.5]
    assert prepared.bin_counts[:, 0].tolist() == [5, 5]

    def psi_of(values: list[float]) -> float:
        window = np.array(values)[:, None]
        return float(
            psi(prepared, window_bin_counts(prepared, bin_index(prepared, window))).statistic[0]
        )

    # (0.75 - 0.5) ln(0.75 / 0.5) + (0.25 - 0.5) ln(0.25 / 0.5) = ln(3) / 4
    assert psi_of([1.0, 2.0, 3.0, 7.0]) == pytest.approx(np.log(3) / 4, rel=1e-14)
    # An empty window bin is floored at 1e-4; an edge value falls in the bin above it.
    expected = 0.5 * np.log(2.0) + (1e-4 - 0.5) * np.log(1e-4 / 0.5)
    assert psi_of([1.0, 2.0, 3.0]) == pytest.approx(expected, rel=1e-14)
    assert psi_of([5.5, 6.0]) == pytest.approx(expected, rel=1e-14)
    assert psi_of([1.0, 10.0]) == 0.0
    # Values far outside the reference's range still count, in the outer bins.
    assert psi_of([-1e9, 1e9]) == 0.0


def test_psi_constant_reference_has_three_bins() -> None:
    prepared = _prepared(np.full((100, 1), 3.0))
    assert prepared.n_bins[0] == 3
    assert prepared.bin_counts[:3, 0].tolist() == [0, 100, 0]
    window = np.array([[3.0], [3.0], [4.0]])
    counts = window_bin_counts(prepared, bin_index(prepared, window))
    assert counts[:3, 0].tolist() == [0, 2, 1]
    w, r = np.array([1e-4, 2 / 3, 1 / 3]), np.array([1e-4, 1.0, 1e-4])
    expected = float(np.sum((w - r) * np.log(w / r)))
    assert psi(prepared, counts).statistic[0] == pytest.approx(expected, rel=1e-14)
    same = window_bin_counts(prepared, bin_index(prepared, np.full((5, 1), 3.0)))
    assert psi(prepared, same).statistic[0] == 0.0
    assert js_distance(prepared, same).statistic[0] == 0.0


def test_ties_at_the_top_keep_the_maximum_apart_from_values_above_it() -> None:
    ref = np.concatenate([np.arange(50.0), np.full(50, 60.0)])[:, None]
    prepared = _prepared(ref)
    edges = _full_edges(prepared, 0)
    assert edges[-2] == np.nextafter(60.0, np.inf)
    idx = bin_index(prepared, np.array([[60.0], [61.0], [np.nan]]))[:, 0]
    assert idx[0] != idx[1] and idx[2] == -1


def _js_decimal(p: Sequence[int], q: Sequence[int]) -> float:
    """The Jensen-Shannon distance of two count tables, to 50 digits."""
    getcontext().prec = 50
    sp, sq = sum(int(a) for a in p), sum(int(b) for b in q)
    total = Decimal(0)
    for a, b in zip(p, q, strict=True):
        pa, qb = Decimal(int(a)) / sp, Decimal(int(b)) / sq
        mid = (pa + qb) / 2
        total += (pa * (pa / mid).ln() if a else 0) + (qb * (qb / mid).ln() if b else 0)
    return float((total / 2).sqrt())


def assert_js_matches(ours: float, ref_counts: np.ndarray, win_counts: np.ndarray) -> None:
    """The closed form to 1e-14; scipy to 1e-12 plus scipy's own rounding error.

    scipy sums p ln(p/a) + q ln(q/a) with ln(p/a) rounded to ~eps absolute: its divergence
    S = sum(...) is off by ~eps (sum p + sum q) = 2 eps, its distance sqrt(S/2) by that
    over 4 JS: ~1e-10 relative at JS ~ 0.003, where the terms cancel to O((p - q)^2).
    """
    exact = _js_decimal(ref_counts.tolist(), win_counts.tolist())
    assert ours == pytest.approx(exact, rel=1e-14, abs=1e-300)
    scipy_error = 4 * 2 * np.finfo(float).eps / (4 * max(exact, 1e-300))
    assert abs(ours - jensenshannon(ref_counts, win_counts)) <= 1e-12 * exact + scipy_error


@pytest.mark.parametrize(
    ("p", "q"),
    [
        ([10**9, 1], [10**9, 2]),
        ([10**6 + 1, 10**6], [10**6, 10**6 + 1]),
        ([1000, 2000, 3000], [1001, 1999, 3000]),
        ([3, 5, 7, 0], [3, 5, 7, 1]),
        ([5, 0, 0], [0, 0, 7]),
    ],
)
def test_js_is_exact_where_scipy_loses_digits(p: list[int], q: list[int]) -> None:
    """Near-equal tables: scipy's two logarithms cancel (up to 3e-7 relative error here)."""
    exact = _js_decimal(p, q)
    ours = float(js_from_counts(np.array(p), np.array(q)))
    assert ours == pytest.approx(exact, rel=1e-15)
    assert jensenshannon(p, q) == pytest.approx(exact, rel=1e-6)


def test_psi_from_counts_closed_form_on_near_equal_tables() -> None:
    ref, win = np.array([10**6, 10**6 + 2]), np.array([10**6 + 1, 10**6 + 1])
    getcontext().prec = 50
    total = Decimal(0)
    for a, b in zip(ref, win, strict=True):
        r, w = Decimal(int(a)) / int(ref.sum()), Decimal(int(b)) / int(win.sum())
        total += (w - r) * (w / r).ln()
    assert float(psi_from_counts(ref, win)) == pytest.approx(float(total), rel=1e-14)


# --- shapes, tiny windows, missing values, a shift -------------------------------------------


@pytest.mark.parametrize("n_win", [1, 2, 5])
@pytest.mark.parametrize("seed", range(10))
def test_tiny_windows(seed: int, n_win: int) -> None:
    ref, win = _samples(seed, n_win)
    prepared = _prepared(ref)
    window = sort_window(prepared, win)
    w1 = wasserstein(prepared, window)
    cvm = cramer_von_mises(prepared, window)
    counts = window_bin_counts(prepared, bin_index(prepared, win))
    scores = [w1, cvm, psi(prepared, counts), js_distance(prepared, counts)]
    assert cvm.pvalue is not None
    for j, r, w in _pairs(ref, win):
        if r.size == 0 or w.size == 0:
            for s in scores:
                _assert_not_checked(s, j)
            continue
        for s in scores:
            assert np.isfinite(s.statistic[j]) and s.sizes[j] == w.size
        assert 0.0 <= cvm.pvalue[j] <= 1.0
        assert w1.statistic[j] == pytest.approx(wasserstein_distance(r, w), rel=1e-12)
        assert cvm.statistic[j] == pytest.approx(_cvm_midrank(r, w), rel=1e-12)


def test_features_without_values_are_not_checked() -> None:
    ref = np.array([[1.0, np.nan, 1.0], [2.0, np.nan, 3.0], [3.0, np.nan, 5.0]])
    win = np.array([[1.5, 1.0, np.nan], [np.inf, 2.0, np.nan]])  # inf counts as missing
    prepared = _prepared(ref)
    window = sort_window(prepared, win)
    counts = window_bin_counts(prepared, bin_index(prepared, win))
    for s in (
        wasserstein(prepared, window),
        cramer_von_mises(prepared, window),
        cramer_von_mises(prepared, window, ties="ecdf"),
        psi(prepared, counts),
        js_distance(prepared, counts),
    ):
        assert s.sizes.tolist() == [1, 0, 0]
        _assert_not_checked(s, 1)
        _assert_not_checked(s, 2)
        assert np.isfinite(s.statistic[0])
    empty = sort_window(prepared, np.empty((0, 3)))
    assert wasserstein(prepared, empty).sizes.tolist() == [0, 0, 0]
    assert cramer_von_mises(prepared, empty).sizes.tolist() == [0, 0, 0]


def test_sort_window_with_stored_reference_counts_is_the_same() -> None:
    ref, win = _samples(3)
    names = [f"f{j}" for j in range(F)]
    prepared_ref = PreparedReference.from_arrays("m", names, ref, np.zeros(ref.shape[0]), 20)
    prepared = NumericReference.prepare(prepared_ref.sorted_columns)
    right, _ = prepared_ref.cdf_counts(win)
    searched = sort_window(prepared, win)
    stored = sort_window(prepared, win, right)
    for name in ("values", "sizes", "below", "upto"):
        np.testing.assert_array_equal(getattr(searched, name), getattr(stored, name))
    for j, r, w in _pairs(ref, win):
        k = w.size
        expected = np.searchsorted(np.sort(r), np.sort(w), "left")
        assert searched.below[:k, j].tolist() == expected.tolist()


def test_every_score_grows_with_a_mean_shift() -> None:
    rng = np.random.default_rng(11)
    ref = rng.normal(size=(5000, 3))
    ref[:, 2] = np.round(ref[:, 2])  # a discrete feature too
    prepared = _prepared(ref)
    base = rng.normal(size=(1000, 3))
    base[:, 2] = np.round(base[:, 2])
    rows: list[list[float]] = []
    pvalues: list[list[float]] = []
    for step, shift in enumerate((0.0, 0.25, 0.5, 1.0, 2.0)):
        win = base + shift
        win[:, 2] = base[:, 2] + step  # the discrete feature moves by whole units
        window = sort_window(prepared, win)
        counts = window_bin_counts(prepared, bin_index(prepared, win))
        w1 = wasserstein(prepared, window).statistic
        cvm = cramer_von_mises(prepared, window)
        ecdf = cramer_von_mises(prepared, window, ties="ecdf")
        assert cvm.pvalue is not None and ecdf.pvalue is not None
        rows.append(
            [
                *psi(prepared, counts).statistic,
                *js_distance(prepared, counts).statistic,
                *w1,
                *normalised_wasserstein(prepared, w1),
                *cvm.statistic,
                *ecdf.statistic,
            ]
        )
        pvalues.append([*cvm.pvalue, *ecdf.pvalue])
    table = np.array(rows)
    assert np.all(np.diff(table, axis=0) > 0)  # every statistic strictly grows
    p = np.array(pvalues)
    # No drift: no test rejects, except scipy's midrank CvM on the discrete feature (ties).
    assert p[0, [0, 1, 3, 4, 5]].min() > 0.01 and p[0, 2] < 1e-6
    # Drift: every p-value is at scipy's floor (its series stops at terms < 1e-7, so
    # p-values under ~1e-7 are not monotone in the statistic).
    assert p[2:].max() < 1e-6
    # The normalised distance reads in reference standard deviations.
    assert table[-1, 9:11] == pytest.approx(2.0 / np.std(ref[:, :2], axis=0), rel=0.1)


def test_prepare_is_deterministic_and_validates_bins() -> None:
    ref, _ = _samples(0)
    a = _prepared(ref)
    b = NumericReference.prepare([np.sort(_finite(ref[:, j])) for j in range(F)])
    for name in ("sorted_values", "offsets", "sizes", "edges", "bin_counts", "tie_term"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    with pytest.raises(ValueError, match="bins"):
        NumericReference.prepare([np.arange(3.0)], bins=1)
    none = NumericReference.prepare([])
    assert none.n_features == 0
    assert wasserstein(none, sort_window(none, np.empty((4, 0)))).statistic.size == 0
