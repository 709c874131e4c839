"""Thresholds of the sequential charts from a false-alarm budget, with no simulation.

The charts (`_native.SequentialCharts`, docs/detectors.md) run on normal scores z, close to
N(0, 1) when nothing drifts. A one-sided mean chart S = max(0, S + z - k) alarms when S > h;
its average run length under no drift follows Siegmund's approximation (Siegmund 1985,
ch. X) for increments N(mu, sigma^2) with mu = -k:

    ARL = (exp(-2 mu b) + 2 mu b - 1) / (2 mu^2),   b = h / sigma + 2 * 0.583

(0.583 the expected overshoot, in units of sigma). A reference of m values is itself a
sample: given it, the scores of live values have mean d ~ N(0, 1/(m + 2)) and variance
1 + e, e ~ N(0, 2/(m + 2)), and a chart alarms more often on average over references than
on the ideal one (3.65 times the budget at m = 1 000 without this). So the rate is averaged
over d and e by Gauss-Hermite quadrature before h is solved for.

The scale chart Q = max(0, Q + z^2 - c) has chi-squared increments, for which Siegmund's
formula is poor; its run length comes from the Markov chain of Brook and Evans (1972): the
interval [0, h] cut into cells, the chain's transition matrix from the increments' CDF,
and the run length from one linear solve. c = 2 ln s / (1 - s^-2) makes the chart the
likelihood-ratio CUSUM for a standard deviation multiplied by s (Page 1954).

The budget (false alarms per event per model) is split: two thirds over the 2F mean charts,
one third over the F scale charts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.optimize import brentq
from scipy.special import erf, ndtri

OVERSHOOT = 0.583  # Siegmund's expected overshoot of a Gaussian random walk, in sigmas
# mean charts: tuned to a shift of 2k = 0.4 standard deviations, between a single feature's
# 0.5 sd and smaller shifts spread over several features (docs/detectors.md, measured)
DEFAULT_K = 0.2
DEFAULT_SCALE = 1.5  # scale chart: tuned to a standard deviation 1.5 times the reference's
SCALE_SHARE = 1.0 / 3.0  # of the budget, for the scale charts
_MEAN_NODES = 40
_SCALE_NODES = 12
_CELLS = 300  # the threshold within 0.15 of 1 200 cells (the chi-squared density at 0 makes
# the chain converge unevenly: 55.09 at 1 200 cells, 54.96 at 300, 55.45 at 200), 15x faster


def siegmund_arl(
    drift: float | np.ndarray, h: float, sigma: float | np.ndarray = 1.0
) -> np.ndarray:
    """Average run length of S = max(0, S + X), X ~ N(drift, sigma^2), alarm at S > h."""
    mu = np.asarray(drift, dtype=float) / sigma
    b = h / np.asarray(sigma, dtype=float) + 2 * OVERSHOOT
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        arl = (np.exp(-2 * mu * b) + 2 * mu * b - 1) / (2 * mu * mu)
    return np.where(np.abs(mu) < 1e-9, b * b, arl)


def mean_chart_rate(h: float, k: float, m: int | None) -> float:
    """False alarms per event of one mean chart, averaged over references of m values
    (None: scores exactly N(0, 1))."""
    if m is None:
        return float(1.0 / siegmund_arl(-k, h))
    x, w = hermegauss(_MEAN_NODES)
    w = w / w.sum()
    shift = math.sqrt(1.0 / (m + 2)) * x[:, None]
    sigma = np.sqrt(np.maximum(1.0 + math.sqrt(2.0 / (m + 2)) * x[None, :], 1e-6))
    rate = 1.0 / siegmund_arl(shift - k, h, sigma)
    return float((w[:, None] * w[None, :] * rate).sum())


def markov_arl(cdf: Callable[[np.ndarray], np.ndarray], h: float, cells: int = _CELLS) -> float:
    """Brook-Evans run length of S = max(0, S + Y) from S = 0 to S > h; `cdf` is Y's CDF."""
    width = h / cells
    states = np.r_[0.0, (np.arange(cells) + 0.5) * width]
    edges = np.arange(cells + 1) * width
    below = cdf(edges[None, :] - states[:, None])  # P(S' <= edge) from each state
    moves = np.empty((cells + 1, cells + 1))
    moves[:, 0] = below[:, 0]
    moves[:, 1:] = np.diff(below, axis=1)
    arl = np.linalg.solve(np.eye(cells + 1) - moves, np.ones(cells + 1))
    return float(arl[0])


def scale_increment_cdf(c: float, variance: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    """CDF of Y = z^2 - c for z ~ N(0, variance)."""

    def cdf(y: np.ndarray) -> np.ndarray:
        # chi-squared with one degree of freedom: P(z^2 <= x) = erf(sqrt(x / 2))
        return np.asarray(erf(np.sqrt(np.maximum(y + c, 0.0) / (2.0 * variance))))

    return cdf


def scale_chart_rate(h: float, c: float, m: int | None) -> float:
    """False alarms per event of one scale chart, averaged over references of m values."""
    if m is None:
        return 1.0 / markov_arl(scale_increment_cdf(c), h)
    x, w = hermegauss(_SCALE_NODES)
    w = w / w.sum()
    spread = math.sqrt(2.0 / (m + 2))
    rates = [
        wi / markov_arl(scale_increment_cdf(c, max(1.0 + spread * xi, 1e-6)), h)
        for xi, wi in zip(x, w, strict=True)
    ]
    return float(sum(rates))


def scale_constant(scale: float) -> float:
    """c of the scale chart tuned to a standard deviation `scale` times the reference's."""
    return 2.0 * math.log(scale) / (1.0 - scale**-2)


class ReferenceTooSmall(ValueError):
    """The reference's own sampling error alone would spend the false-alarm budget: some
    references of its size sit further from the truth than k, and charts against them
    drift towards any threshold. The model's input drift stays with the window test."""


# a design whose mean threshold exceeds this many times the ideal reference's is refused
MAX_THRESHOLD_FACTOR = 3.0


def _solve(rate_of: Callable[[float], float], rate: float, low: float) -> float:
    """The h at which a chart's false-alarm rate (falling in h) equals `rate`: the bracket
    doubles from `low` until it holds the answer."""
    high = 2.0 * low
    while rate_of(high) > rate:
        low, high = high, 2.0 * high
        if high > 1e4:
            raise ReferenceTooSmall(
                f"no threshold reaches a false-alarm rate of {rate:g} per event"
            )
    target = math.log(rate)
    return float(brentq(lambda h: math.log(rate_of(h)) - target, low, high, xtol=1e-4))


@lru_cache(maxsize=256)
def mean_threshold(rate: float, k: float, m: int | None) -> float:
    """h of one mean chart that alarms `rate` times per event under no drift."""
    return _solve(lambda h: mean_chart_rate(h, k, m), rate, 1.0)


@lru_cache(maxsize=256)
def scale_threshold(rate: float, c: float, m: int | None) -> float:
    """h of one scale chart that alarms `rate` times per event under no drift."""
    return _solve(lambda h: scale_chart_rate(h, c, m), rate, 4.0)


@lru_cache(maxsize=64)
def normal_scores(m: int) -> np.ndarray:
    """Phi^-1((R + 1/2) / (m + 1)) for every rank R in 0..m (read-only)."""
    table: np.ndarray = np.asarray(ndtri((np.arange(m + 1) + 0.5) / (m + 1)), dtype=np.float64)
    table.flags.writeable = False
    return table


@dataclass(frozen=True, slots=True)
class ChartDesign:
    """The charts' constants and each feature's (up, down, scale) thresholds."""

    k: float
    c: float
    thresholds: tuple[tuple[float, float, float], ...]
    false_alarm_events: float

    @classmethod
    def solve(
        cls,
        sizes: tuple[int, ...],
        false_alarm_events: float,
        k: float = DEFAULT_K,
        scale: float = DEFAULT_SCALE,
    ) -> ChartDesign:
        """Thresholds for features whose references hold `sizes` values, so that the model
        raises one false alarm per `false_alarm_events` events; `ReferenceTooSmall` when a
        size needs a threshold over `MAX_THRESHOLD_FACTOR` times an exact reference's."""
        if false_alarm_events <= 1:
            raise ValueError(f"false_alarm_events must exceed 1, got {false_alarm_events}")
        features = max(len(sizes), 1)
        budget = 1.0 / false_alarm_events
        mean_rate = budget * (1.0 - SCALE_SHARE) / (2 * features)
        scale_rate = budget * SCALE_SHARE / features
        c = scale_constant(scale)
        ideal = mean_threshold(mean_rate, k, None)
        rows = []
        for m in sizes:
            try:
                h = mean_threshold(mean_rate, k, int(m))
            except ReferenceTooSmall:
                h = math.inf
            if h > MAX_THRESHOLD_FACTOR * ideal:
                need = (
                    "no threshold could hold that budget"
                    if math.isinf(h)
                    else f"it would need a threshold {h / ideal:.3g} times an exact one's"
                )
                raise ReferenceTooSmall(
                    f"a reference of {m} values is too small for sequential detection at one "
                    f"false alarm per {false_alarm_events:g} events (its own sampling error: "
                    f"{need})"
                )
            rows.append((h, h, scale_threshold(scale_rate, c, int(m))))
        return cls(k, c, tuple(rows), false_alarm_events)
