"""An input-drift threshold chosen from the reference for a budget of false alarms.

A fixed threshold on the largest per-feature KS statistic has a per-check false-alarm
probability that depends on the window size, the reference size, the number of features and
their dependence; with a check every 100 events even a small one fires sooner or later on a
stream that never changes. Here the threshold is derived from the budget instead: "one false
alarm per `events_per_false_alarm` stationary events" (see docs/calibration.md).

1. Budget -> per-check tail probability p = check_every / events_per_false_alarm. An alert
   is a healthy -> unhealthy transition, and every transition is a check above the
   threshold, so the expected number of alerts is at most the expected number of checks
   above it, (events / check_every) * p = events / events_per_false_alarm. Overlapping
   windows make the checks above the threshold come in clusters of which only the first
   alerts, so the rule is conservative, never optimistic.
2. The null distribution of the monitor's statistic, from the reference alone, with the
   compared part HELD OUT: the reference is split at random into a pseudo-reference of
   n - m events and a pseudo-window of m = window_size events, and the pseudo-window is
   checked against the prepared pseudo-reference with the monitor's own code. Comparing
   reference chunks with a reference that contains them instead shrinks every difference
   by the factor 1 - m/n and gives thresholds that are too low.
3. Sizes. Per feature sqrt(n m / (n + m)) * D tends to sup|B| over a Brownian bridge, the
   Kolmogorov distribution, whatever the ratio n/m; jointly over features the limit is one
   Gaussian process whose covariance depends on the data's copula only (the weighted
   difference of two independent empirical processes, weights squared summing to one).
   So a pseudo statistic times sqrt(n_eff(pseudo) / n_eff(deployed)) is, to first order, a
   draw of the statistic the deployed check (window vs the full reference) computes.
4. Tail. p is often ~1e-4, beyond what a thousand resamples can estimate. Each feature's
   draws fit w_j in P(D_j <= t) = K(t sqrt(n_eff_j))^w_j (K the Kolmogorov CDF) by maximum
   likelihood on their top `tail_fraction` (w_j ~ 1 for continuous data, < 1 where ties
   make the tail lighter), and the maximum is bounded as if the features were independent:
   P(max <= t) >= prod_j P(D_j <= t). In the limit the per-feature statistics are sup-norms
   of jointly Gaussian processes and {sup|B_j| <= t} are symmetric convex sets, so the
   Gaussian correlation inequality (Royen 2014; Sidak 1967 for finitely many coordinates)
   makes this hold for every dependence between features. The threshold solves
   1 - prod_j K(t sqrt(n_eff_j))^w_j = p; F_eff = sum_j w_j. Because the KS tail falls like
   exp(-2 t^2), counting correlated features as independent costs little: the threshold
   rises by about ln(F / F_eff(true)) / (4 t) in units of sqrt(n_eff) * D.
   `dependence="fitted"` fits one w on the maxima instead (F_eff = w F, an "effective
   number of independent features"). It is tighter, but it measures F_eff at
   the cut, and for correlated features F_eff keeps growing further out: at p = 1e-3 with
   20 features equicorrelated at 0.9 it gave twice the targeted rate (docs/calibration.md).
   When p >= tail_fraction the resampled maxima's own quantile is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq
from scipy.stats import kstwobign

from stream_monitor.detectors.ks import MISSING_KEY, ks_keys

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Dependence = Literal["bound", "fitted"]

DEFAULT_RESAMPLES = 1000
DEFAULT_TAIL_FRACTION = 0.1
QUANTILE_LEVELS = (0.5, 0.9, 0.95, 0.99)
METHOD_EMPIRICAL = "held-out resampling, empirical quantile"
METHOD_BOUND = "held-out resampling, Kolmogorov tail per feature, independence bound"
METHOD_FITTED = "held-out resampling, Kolmogorov tail with F_eff fitted on the maxima"
_LOW = np.int64(0xFFFFFFFF)


@dataclass(frozen=True, slots=True)
class Calibration:
    """A calibrated input-drift threshold and what it rests on."""

    threshold: float  # on the largest per-feature KS statistic (alert when above)
    check_probability: float  # per-check false-alarm probability targeted
    method: str  # METHOD_BOUND, METHOD_FITTED or METHOD_EMPIRICAL
    resamples: int
    null_quantiles: tuple[tuple[float, float], ...]  # (level, resampled max-KS quantile)
    effective_features: float  # F_eff of the tail model used (NaN: empirical quantile)
    maxima_features: float  # F_eff fitted on the maxima: what the dependence suggests
    features_checked: int  # features with a value in the reference
    window_size: int
    check_every: int
    events_per_false_alarm: float
    reference_events: int


def per_check_probability(check_every: int, events_per_false_alarm: float) -> float:
    """Tail probability per check so that alerts (transitions) stay within the budget.

    Every alert is a check above the threshold, so bounding the expected number of such
    checks bounds the alerts; overlapping windows only make the bound looser.

    >>> per_check_probability(check_every=100, events_per_false_alarm=1e6)
    0.0001
    """
    if check_every <= 0:
        raise ValueError("check_every must be positive")
    if not events_per_false_alarm > check_every:
        raise ValueError("events_per_false_alarm must exceed check_every (one check at least)")
    return check_every / events_per_false_alarm


def effective_sizes(ref_sizes: npt.ArrayLike, window_sizes: npt.ArrayLike) -> FloatArray:
    """n m / (n + m) per feature: the size that scales a two-sample KS statistic; 0 if empty.

    >>> effective_sizes([10_000, 0], [1_000, 1_000]).round(2).tolist()
    [909.09, 0.0]
    """
    n = np.asarray(ref_sizes, dtype=np.float64)
    m = np.asarray(window_sizes, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((n > 0) & (m > 0), n * m / (n + m), 0.0)


def deployed_effective_sizes(ref_sizes: npt.ArrayLike, events: int, window_size: int) -> FloatArray:
    """n_eff of the deployed check per feature: full reference vs a window of `window_size`.

    A feature missing in part of the reference is expected missing in the same share of the
    window, so its window size is window_size * n_j / events.
    """
    n = np.asarray(ref_sizes, dtype=np.float64)
    return effective_sizes(n, window_size * n / max(events, 1))


def held_out_keys(window_keys: IntArray) -> IntArray:
    """Keys of a window against the reference with the window's own events taken out.

    For a reference value v: #{pseudo-ref <= v} = #{ref <= v} - #{window <= v}, likewise
    for <. Distinct values have distinct keys (each is itself in the reference), so after
    sorting a column the window's own counts are where v's run of equal keys ends (<=) and
    starts (<). Missing keys sort last and count for nothing.
    """
    ordered = np.sort(window_keys, axis=0)
    k = ordered.shape[0]
    row = np.broadcast_to(np.arange(k, dtype=np.int64)[:, None], ordered.shape)
    differs = ordered[1:] != ordered[:-1]
    starts = np.ones(ordered.shape, dtype=np.bool_)
    starts[1:] = differs
    ends = np.ones(ordered.shape, dtype=np.bool_)
    ends[:-1] = differs
    below = np.maximum.accumulate(np.where(starts, row, 0), axis=0)  # #{window < v}
    last = np.minimum.accumulate(np.where(ends, row, k - 1)[::-1], axis=0)[::-1]
    right = (ordered >> 32) - (last + 1)
    left = (ordered & _LOW) - below
    return ks_keys(right, left, ordered == MISSING_KEY)


def _log_kolmogorov_cdf(t: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore"):
        return np.asarray(np.log(kstwobign.cdf(t)), dtype=np.float64)


def _log_model_cdf(t: float, n_eff: FloatArray, weights: FloatArray) -> float:
    """log P(max <= t) = sum_j w_j log K(t sqrt(n_eff_j)) under the tail model."""
    used = weights > 0
    logs = _log_kolmogorov_cdf(t * np.sqrt(n_eff[used]))
    return float((weights[used] * logs).sum())


def _censored_rate(draws: FloatArray, log_cdf: FloatArray, tail_fraction: float) -> float:
    """Maximum-likelihood w in P(X <= t) = G(t)^w from the top `tail_fraction` of the draws.

    Under the model -w log G(X) is a unit exponential, so -log G(X) is exponential with
    rate w; the draws below the cut are right-censored there. `log_cdf` is log G at each
    draw (sorted with the draws). Draws stuck at zero say nothing about the tail: w = 1
    (the Kolmogorov law itself, an upper bound) if any draw is positive, else 0.
    """
    k = max(1, math.ceil(tail_fraction * draws.size))
    cut = draws.size - k
    if draws[cut] <= 0.0:
        return 1.0 if draws[-1] > 0.0 else 0.0
    total = float(-log_cdf[cut:].sum()) - cut * float(log_cdf[cut])
    return k / total if total > 0 and math.isfinite(total) else 1.0


def tail_weights(
    null_statistics: npt.ArrayLike,
    n_eff: npt.ArrayLike,
    tail_fraction: float = DEFAULT_TAIL_FRACTION,
    dependence: Dependence = "bound",
) -> FloatArray:
    """Weights w_j of the tail model P(max <= t) = prod_j K(t sqrt(n_eff_j))^w_j, (F,).

    "bound": each feature's own draws fit its w_j (w_j < 1 where ties make its tail
    lighter than Kolmogorov's), and features are multiplied as if independent, an upper
    bound on the tail of the maximum whatever their dependence (module docstring).
    "fitted": one w for all, fitted on the maxima, so F_eff = w F also measures the
    dependence, but at the level of the cut, where it is smaller than further out.
    """
    stats = np.asarray(null_statistics, dtype=np.float64)
    sizes = np.asarray(n_eff, dtype=np.float64)
    checked = sizes > 0
    weights = np.zeros(sizes.shape)
    if dependence == "bound":
        for j in np.flatnonzero(checked):
            draws = np.sort(stats[:, j])
            logs = _log_kolmogorov_cdf(draws * np.sqrt(sizes[j]))
            weights[j] = _censored_rate(draws, logs, tail_fraction)
        return weights
    maxima = np.sort(stats[:, checked].max(axis=1))
    logs = _log_kolmogorov_cdf(maxima[:, None] * np.sqrt(sizes[checked])[None, :]).sum(axis=1)
    weights[checked] = _censored_rate(maxima, logs, tail_fraction)
    return weights


def tail_threshold(
    null_statistics: npt.ArrayLike,
    n_eff: npt.ArrayLike,
    probability: float,
    tail_fraction: float = DEFAULT_TAIL_FRACTION,
    dependence: Dependence = "bound",
) -> tuple[float, float]:
    """The threshold t with P(max over features > t) = probability, and F_eff (NaN if none).

    `null_statistics` are (draws, F) per-feature statistics in deployed units and `n_eff`
    the deployed effective sizes (0 = feature not checked). With probability >=
    tail_fraction the draws' own quantile is the answer; below, the tail model of
    `tail_weights` extrapolates, and F_eff is the sum of its weights.
    """
    stats = np.asarray(null_statistics, dtype=np.float64)
    sizes = np.asarray(n_eff, dtype=np.float64)
    if stats.ndim != 2 or stats.shape[0] == 0 or stats.shape[1] != sizes.size:
        raise ValueError("null_statistics must be (draws, F) with F = len(n_eff)")
    if not (sizes > 0).any():
        raise ValueError("no checked feature")
    if not 0.0 < probability < 1.0:
        raise ValueError("probability must be in (0, 1)")
    maxima = stats[:, sizes > 0].max(axis=1)
    empirical = float(np.quantile(maxima, 1.0 - probability))
    if probability >= tail_fraction:
        return empirical, math.nan
    weights = tail_weights(stats, sizes, tail_fraction, dependence)
    f_eff = float(weights.sum())
    target = math.log1p(-probability)

    def excess(t: float) -> float:
        return _log_model_cdf(t, sizes, weights) - target

    low = float(np.quantile(maxima, 1.0 - tail_fraction))
    if low <= 0.0 or excess(low) >= 0.0:  # a model at odds with the draws: trust the draws
        return empirical, f_eff
    if excess(1.0) <= 0.0:
        return 1.0, f_eff
    return float(brentq(excess, low, 1.0, xtol=1e-10)), f_eff


def tail_probability(
    null_statistics: npt.ArrayLike,
    n_eff: npt.ArrayLike,
    threshold: float,
    tail_fraction: float = DEFAULT_TAIL_FRACTION,
    dependence: Dependence = "bound",
) -> float:
    """Per-check false-alarm probability of a given threshold: the inverse of tail_threshold.

    E.g. what a fixed threshold gives: events per false alarm ~ check_every / probability.
    Within the draws' range (below their 1 - tail_fraction quantile) the share of draws
    above; beyond it the tail model.
    """
    stats = np.asarray(null_statistics, dtype=np.float64)
    sizes = np.asarray(n_eff, dtype=np.float64)
    maxima = stats[:, sizes > 0].max(axis=1)
    if threshold < float(np.quantile(maxima, 1.0 - tail_fraction)):
        return float(np.mean(maxima > threshold))
    weights = tail_weights(stats, sizes, tail_fraction, dependence)
    return -math.expm1(_log_model_cdf(threshold, sizes, weights))
