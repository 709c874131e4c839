"""The calibrated input-drift threshold: budget kept on a stationary stream, quick detection.

The stream checks run the monitor's rule without the engine: every event's reference counts
come from `PreparedReference.cdf_counts` once, and every 100 events the last 1000 events'
keys go through `ks_statistic` and `as_scipy_default`, as `checks.input_drift` does; an
alert is a healthy -> unhealthy transition, as in `alerts.FiringAlerts`.
"""

from __future__ import annotations

import dataclasses
import math
from functools import cache

import numpy as np
import numpy.typing as npt
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy.stats import kstwobign

from stream_monitor.checks.input_drift import input_drift
from stream_monitor.checks.plan import CheckPlan
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.detectors.calibration import (
    METHOD_BOUND,
    METHOD_EMPIRICAL,
    METHOD_FITTED,
    Calibration,
    deployed_effective_sizes,
    effective_sizes,
    held_out_keys,
    per_check_probability,
    tail_probability,
    tail_threshold,
)
from stream_monitor.detectors.ks import as_scipy_default, ks_keys, ks_statistic
from stream_monitor.reference.calibration import calibrate_max_ks_threshold, held_out_statistics
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.tools.synthetic import SyntheticModel
from stream_monitor.window.ring import ModelWindow, WindowBlock

FloatArray = npt.NDArray[np.float64]

WINDOW = 1000
EVERY = 100
BUDGET = 1_000_000  # events per false alarm
REFERENCE_EVENTS = 10_000
FEATURES = 20
STATIONARY_EVENTS = 1_000_000
# Expected alerts on 10^6 events are at most 1 (the per-check rule is a bound); allowing 3
# leaves room for Poisson noise: P(N >= 4) < 2 % for a Poisson mean of 1.
MAX_FALSE_ALARMS = 3
CHANGE_AT = 5_050  # first shifted event: not on a check boundary
SHIFT_SD = 0.5
DELAY_SEEDS = range(5)
MAX_DELAY = 1_000  # events from the change to the alert: one window (docs/calibration.md)
MAX_MEAN_DELAY = 700

MODEL = SyntheticModel("calibration", n_features=FEATURES)


@cache
def reference() -> FloatArray:
    return MODEL.arrays(0, REFERENCE_EVENTS, seed=10_000, drift=False)["features"]


@cache
def prepared() -> PreparedReference:
    x = reference()
    return PreparedReference.from_arrays("calibration", MODEL.feature_names, x, x[:, 0], 10)


@cache
def calibration() -> Calibration:
    return calibrate_max_ks_threshold(reference(), WINDOW, EVERY, BUDGET)


def window_statistics(keys: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]) -> FloatArray:
    """The monitor's input-drift score for each window of WINDOW keys ending before `ends`."""
    ref = prepared()
    f = ref.n_features
    windows = sliding_window_view(keys, WINDOW, axis=0)  # (starts, F, WINDOW), a view
    scores = []
    for i in range(0, ends.size, 50):  # 50 windows side by side as 50 * F columns
        batch = ends[i : i + 50]
        # contiguous columns (Fortran order) make the sort in ks_statistic cheaper
        columns = np.ascontiguousarray(windows[batch - WINDOW]).reshape(-1, WINDOW).T
        ref_sizes = np.tile(ref.sizes, batch.size)
        raw, sizes = ks_statistic(columns, ref_sizes)
        stat = as_scipy_default(raw, ref_sizes, sizes)
        scores.append(stat.reshape(batch.size, f).max(axis=1))
    return np.concatenate(scores)


def stream_scores(model: SyntheticModel, events: int, seed: int) -> FloatArray:
    """Scores of every check (each EVERY events once WINDOW events are in), built in blocks."""
    ref = prepared()
    block = 100_000
    carry = np.zeros((0, ref.n_features), dtype=np.int64)
    scores = []
    for start in range(0, events, block):
        x = model.arrays(start, min(block, events - start), seed)["features"]
        right, left = ref.cdf_counts(x)
        keys = np.concatenate([carry, ks_keys(right, left, ~np.isfinite(x))])
        first = start - carry.shape[0]  # event index of keys[0]
        seen = np.arange(start + EVERY, start + x.shape[0] + 1, EVERY)  # events seen at checks
        seen = seen[seen >= WINDOW]
        scores.append(window_statistics(keys, seen - first))
        carry = keys[-(WINDOW - 1) :]
    return np.concatenate(scores)


def check_events(count: int) -> npt.NDArray[np.int64]:
    """Events seen at each of `count` checks (the first one when the window is full)."""
    return WINDOW + EVERY * np.arange(count, dtype=np.int64)


def alerts(scores: FloatArray, threshold: float) -> npt.NDArray[np.intp]:
    """Indices of the checks that fire: healthy -> unhealthy transitions."""
    unhealthy = scores > threshold
    before = np.concatenate([[False], unhealthy[:-1]])
    return np.flatnonzero(unhealthy & ~before)


def test_window_scores_are_the_monitors() -> None:
    """The harness scores a window as `checks.input_drift` does (the default rule, KS)."""
    a = MODEL.arrays(0, 1500, seed=3)
    ref = prepared()
    window = ModelWindow(WINDOW, ref, FEATURES)
    times = np.arange(1500.0)
    block = WindowBlock(a["features"], a["prediction"], a["actual"], a["latency_ms"], times, ref)
    window.append(block, 0, 1500)
    plan = CheckPlan.build(DetectorSettings(window_size=WINDOW, check_every=EVERY), ref)
    result = input_drift(window, plan)
    keys = ks_keys(*ref.cdf_counts(a["features"]), ~np.isfinite(a["features"]))
    assert result.score == window_statistics(keys, np.array([1500]))[0]


def test_per_check_probability_bounds_transitions() -> None:
    assert per_check_probability(100, 1e6) == 1e-4
    assert per_check_probability(1, 10.0) == 0.1
    with pytest.raises(ValueError):
        per_check_probability(100, 100)
    with pytest.raises(ValueError):
        per_check_probability(0, 1e6)
    assert alerts(np.array([0.0, 2.0, 2.0, 0.0, 2.0]), 1.0).tolist() == [1, 4]
    assert effective_sizes([0, 10, 9000], [5, 10, 1000]).tolist() == [0.0, 5.0, 900.0]


def test_held_out_keys_are_those_of_the_prepared_pseudo_reference() -> None:
    rng = np.random.default_rng(7)
    names = ["a", "b", "c", "d"]
    for trial in range(40):
        n = int(rng.integers(40, 300))
        m = int(rng.integers(1, n // 2 + 1))
        x = rng.normal(size=(n, 4))
        x[:, 1] = rng.integers(0, 5, n)  # heavy ties
        x[:, 2] = np.round(x[:, 2], 1)
        if trial % 3 == 0:
            x[:, 3] = 0.0  # constant
        x[rng.random(x.shape) < 0.2] = np.nan
        if trial % 5 == 0:
            x[:, 0] = np.nan  # never seen
        nan = np.full(n, np.nan)
        full = PreparedReference.from_arrays("m", names, x, nan, 1)
        keys = ks_keys(*full.cdf_counts(x), ~np.isfinite(x))
        rows = rng.choice(n, m, replace=False)
        rest = np.setdiff1d(np.arange(n), rows)
        pseudo = PreparedReference.from_arrays("m", names, x[rest], nan[rest], 1)
        window = x[rows]
        expected = ks_keys(*pseudo.cdf_counts(window), ~np.isfinite(window))
        got = held_out_keys(keys[rows])
        assert np.array_equal(np.sort(got, axis=0), np.sort(expected, axis=0))
        pseudo_sizes = full.sizes - np.isfinite(window).sum(axis=0)
        assert np.array_equal(pseudo_sizes, pseudo.sizes)
        a, b = ks_statistic(got, pseudo_sizes), ks_statistic(expected, pseudo.sizes)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_rescaled_statistics_follow_the_kolmogorov_law_at_the_deployed_size() -> None:
    """sqrt(n_eff(deployed)) * rescaled statistic: the Kolmogorov law (continuous data)."""
    x = reference()[:4000]
    stats = held_out_statistics(x, WINDOW, 150, seed=3)
    n_eff = deployed_effective_sizes(np.full(FEATURES, 4000), 4000, WINDOW)
    assert n_eff[0] == pytest.approx(4000 * 1000 / 5000)
    scaled = (stats * np.sqrt(n_eff)).ravel()
    for level in (0.5, 0.9):
        assert np.quantile(scaled, level) == pytest.approx(kstwobign.ppf(level), rel=0.04)


def test_threshold_matches_independent_features() -> None:
    """The synthetic features are independent: F_eff near 20, threshold near Šidák's."""
    cal = calibration()
    assert cal.method == METHOD_BOUND and cal.resamples > 0
    assert cal.check_probability == EVERY / BUDGET
    assert cal.features_checked == FEATURES and cal.reference_events == REFERENCE_EVENTS
    assert 17 < cal.effective_features <= FEATURES  # sum of per-feature weights, each ~1
    assert 14 < cal.maxima_features < 28  # independent: the maxima say ~20 as well
    n_eff = REFERENCE_EVENTS * WINDOW / (REFERENCE_EVENTS + WINDOW)
    per_feature = -math.expm1(math.log1p(-cal.check_probability) / FEATURES)
    sidak = kstwobign.isf(per_feature) / math.sqrt(n_eff)
    assert cal.threshold == pytest.approx(sidak, rel=0.03)
    levels = [level for level, _ in cal.null_quantiles]
    values = [value for _, value in cal.null_quantiles]
    assert 0.5 in levels and 0.99 in levels and values == sorted(values)
    assert values[-1] < cal.threshold


def test_stationary_stream_stays_within_the_budget() -> None:
    """10^6 stationary events, 9 991 checks: at most MAX_FALSE_ALARMS alerts."""
    cal = calibration()
    scores = stream_scores(MODEL, STATIONARY_EVENTS, seed=1)
    assert scores.size == (STATIONARY_EVENTS - WINDOW) // EVERY + 1
    fired = alerts(scores, cal.threshold)
    assert fired.size <= MAX_FALSE_ALARMS, check_events(scores.size)[fired]
    # the uncalibrated default (0.1) is not the point here, but the scores must be sane
    assert 0.03 < float(np.median(scores)) < 0.06


def test_half_sd_shift_in_one_feature_alerts_within_the_bound() -> None:
    cal = calibration()
    drifting = SyntheticModel(
        "calibration",
        n_features=FEATURES,
        drift_start=CHANGE_AT,
        drift_shift=SHIFT_SD,
        drift_features=1,
    )
    delays = []
    for seed in DELAY_SEEDS:
        scores = stream_scores(drifting, CHANGE_AT + 3 * WINDOW, seed=100 + seed)
        seen = check_events(scores.size)
        fired = seen[alerts(scores, cal.threshold)]
        assert fired.size > 0 and fired[0] > CHANGE_AT, (seed, fired)  # none before the change
        delays.append(int(fired[0]) - CHANGE_AT)
    assert max(delays) <= MAX_DELAY and np.mean(delays) <= MAX_MEAN_DELAY, delays


def naive_statistics(x: FloatArray, resamples: int, seed: int) -> FloatArray:
    """What tools that learn from chunks of the reference do: chunks vs the WHOLE reference.

    A chunk's keys against the full reference are the keys its events get in the monitor.
    """
    full = PreparedReference.from_arrays("m", MODEL.feature_names, x, x[:, 0], 10)
    keys = ks_keys(*full.cdf_counts(x), ~np.isfinite(x))
    rng = np.random.default_rng(seed)
    stats = np.empty((resamples, x.shape[1]))
    for r in range(resamples):
        raw, sizes = ks_statistic(keys[rng.choice(x.shape[0], WINDOW, replace=False)], full.sizes)
        stats[r] = as_scipy_default(raw, full.sizes, sizes)
    return stats


def test_held_out_threshold_is_above_the_naive_one() -> None:
    """Chunks inside the reference pull it toward themselves: the naive null is too low.

    With the chunk inside, F_ref - F_chunk = (1 - m/n) (F_rest - F_chunk): every statistic
    shrinks by 1 - m/n = 0.8 here, while the held-out draws, rescaled to the full reference,
    keep the deployed check's scale (sqrt(800 / 833) = 0.98 of the pseudo statistic).
    """
    x = reference()[:5000]
    held_out = calibrate_max_ks_threshold(x, WINDOW, EVERY, BUDGET, resamples=300, seed=4)
    p = held_out.check_probability
    n_eff = deployed_effective_sizes(np.full(FEATURES, 5000), 5000, WINDOW)
    # the calibration is the held-out null's: same draws, same threshold
    held_out_stats = held_out_statistics(x, WINDOW, 300, seed=4)
    assert tail_threshold(held_out_stats, n_eff, p)[0] == held_out.threshold
    naive_stats = naive_statistics(x, resamples=300, seed=4)
    maxima = naive_stats.max(axis=1)
    for level, value in held_out.null_quantiles:
        if level <= 0.95:
            assert float(np.quantile(maxima, level)) == pytest.approx(0.8 * value, rel=0.06)
    naive = tail_threshold(naive_stats, n_eff, p)[0]
    assert naive < held_out.threshold
    # under the held-out null the naive threshold fires several times as often as budgeted
    assert tail_probability(held_out_stats, n_eff, naive) > 2 * p
    assert tail_probability(held_out_stats, n_eff, held_out.threshold) == pytest.approx(p)


def test_correlated_features_the_bound_keeps_the_rate() -> None:
    """Ten features equicorrelated at 0.9: the independence bound stays at or below p.

    The maxima's own fit sees fewer independent features (a lower threshold); the bound
    does not rely on that estimate. The rate is checked on held-out draws not used to fit.
    """
    rng = np.random.default_rng(9)
    n, m, f = 3000, 300, 10
    x = math.sqrt(0.9) * rng.standard_normal((n, 1)) + math.sqrt(0.1) * rng.standard_normal((n, f))
    stats = held_out_statistics(x, m, 3000, seed=2)
    n_eff = deployed_effective_sizes(np.full(f, n), n, m)
    fit, check = stats[:1000], stats[1000:].max(axis=1)
    p = 0.01
    bound, bound_features = tail_threshold(fit, n_eff, p, dependence="bound")
    fitted, fitted_features = tail_threshold(fit, n_eff, p, dependence="fitted")
    assert fitted_features < bound_features / 1.5 and fitted < bound
    assert np.mean(check > bound) <= p
    cal = calibrate_max_ks_threshold(x, m, 10, 1000, resamples=300, dependence="fitted")
    assert cal.method == METHOD_FITTED and cal.effective_features == cal.maxima_features


def test_deterministic_with_a_seed() -> None:
    x = reference()[:3000]
    one = calibrate_max_ks_threshold(x, 500, 50, 1e5, resamples=200, seed=11)
    two = calibrate_max_ks_threshold(x, 500, 50, 1e5, resamples=200, seed=11)
    other = calibrate_max_ks_threshold(x, 500, 50, 1e5, resamples=200, seed=12)
    assert one == two
    assert other != one and other.threshold == pytest.approx(one.threshold, rel=0.05)
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.threshold = 0.5  # type: ignore[misc]


def test_missing_values_and_the_empirical_quantile() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2000, 5))
    x[:, 0] = np.nan  # no value: not checked
    x[rng.random(2000) < 0.3, 1] = np.nan
    x[:, 2] = rng.integers(0, 3, 2000)  # three values only
    cal = calibrate_max_ks_threshold(x, 200, 20, 100, resamples=200)  # p = 0.2: empirical
    assert cal.method == METHOD_EMPIRICAL and math.isnan(cal.effective_features)
    assert cal.features_checked == 4
    assert dict(cal.null_quantiles)[0.5] < cal.threshold < dict(cal.null_quantiles)[0.9]
    tail = calibrate_max_ks_threshold(x, 200, 20, 1e5, resamples=200)
    assert tail.method == METHOD_BOUND and tail.threshold > cal.threshold
    with pytest.raises(ValueError, match="twice the window"):
        calibrate_max_ks_threshold(x, 1500, 20, 1e5)
