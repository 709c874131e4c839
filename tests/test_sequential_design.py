"""The charts' thresholds: each run-length formula against an independent method (the
Markov chain, a simulation), and the design's rates against its budget."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import ndtri
from scipy.stats import norm

from stream_monitor.checks.sequential import design_size
from stream_monitor.detectors.sequential_design import (
    ChartDesign,
    markov_arl,
    mean_chart_rate,
    mean_threshold,
    normal_scores,
    scale_chart_rate,
    scale_constant,
    scale_increment_cdf,
    siegmund_arl,
)


@pytest.mark.parametrize("k,h", [(0.25, 8.0), (0.25, 15.0), (0.5, 5.0), (0.0, 6.0)])
def test_siegmund_agrees_with_the_markov_chain_for_gaussian_steps(k: float, h: float) -> None:
    chain = markov_arl(lambda y: norm.cdf(y, loc=-k), h, cells=800)
    approx = float(siegmund_arl(-k, h))
    assert approx == pytest.approx(chain, rel=0.03)


def test_siegmund_for_a_drift_towards_the_threshold_is_short() -> None:
    # a +0.5 sd shift against k = 0.25: mean step 0.25, so about (h + overshoot) / 0.25
    arl = float(siegmund_arl(0.25, 30.0))
    assert (30.0 + 0.583) / 0.25 - 10 < arl < (30.0 + 0.583) / 0.25 + 10


def test_the_markov_chain_matches_a_simulated_scale_chart() -> None:
    c, h = scale_constant(1.5), 12.0
    chain = markov_arl(scale_increment_cdf(c), h)
    rng = np.random.default_rng(7)
    runs, q, t = [], np.zeros(4000), np.zeros(4000, dtype=np.int64)
    alive = np.ones(4000, dtype=bool)
    while alive.any():
        z = rng.standard_normal(alive.sum())
        q[alive] = np.maximum(0.0, q[alive] + z * z - c)
        t[alive] += 1
        done = alive.copy()
        done[alive] = q[alive] > h
        runs.extend(t[done].tolist())
        alive &= ~done
    mean = float(np.mean(runs))
    sem = float(np.std(runs)) / math.sqrt(len(runs))
    assert abs(mean - chain) < 4 * sem + 0.01 * chain, (mean, chain, sem)


def test_scale_constant_is_the_likelihood_ratio_reference() -> None:
    # s = 1.5: 2 ln s / (1 - 1/s^2) (the issue's 1.4597)
    assert scale_constant(1.5) == pytest.approx(1.4597, abs=1e-4)


def test_a_small_reference_raises_the_rate_and_a_large_one_tends_to_the_ideal() -> None:
    ideal = mean_chart_rate(30.0, 0.25, None)
    small, large = mean_chart_rate(30.0, 0.25, 1000), mean_chart_rate(30.0, 0.25, 10**7)
    assert small > 2 * ideal
    assert large == pytest.approx(ideal, rel=0.02)
    assert scale_chart_rate(40.0, scale_constant(1.5), 1000) > scale_chart_rate(
        40.0, scale_constant(1.5), None
    )


def test_the_design_spends_the_budget_it_is_given() -> None:
    events = 1e6
    design = ChartDesign.solve((5000,) * 20, events)
    h, _, hq = design.thresholds[0]
    mean = mean_chart_rate(h, design.k, 5000)
    scale = scale_chart_rate(hq, design.c, 5000)
    total = 40 * mean + 20 * scale
    assert total == pytest.approx(1 / events, rel=1e-3)
    assert 20 * scale == pytest.approx(total / 3, rel=1e-3)


def test_the_design_agrees_with_the_issues_figures() -> None:
    # F = 20, m = 5000, one false alarm per 10^6 events: h = 31.20, h_q = 55.05 (computed
    # outside the project with 800 cells)
    h, _, hq = ChartDesign.solve((5000,) * 20, 1e6, k=0.25).thresholds[0]
    assert h == pytest.approx(31.20, abs=0.01)
    assert hq == pytest.approx(55.05, abs=0.15)  # the chain's cells: see _CELLS


def test_thresholds_grow_with_the_log_of_the_budget() -> None:
    # Siegmund: ARL ~ exp(2 k b) / (2 k^2), so 10x the events adds ln(10) / (2 k) to h
    step = math.log(10) / 0.5
    ideal = mean_threshold(1e-8, 0.25, None) - mean_threshold(1e-7, 0.25, None)
    assert ideal == pytest.approx(step, rel=0.02)
    # averaged over references, the score's spread adds a little more
    h6 = ChartDesign.solve((5000,) * 20, 1e6, k=0.25).thresholds[0][0]
    h7 = ChartDesign.solve((5000,) * 20, 1e7, k=0.25).thresholds[0][0]
    assert step < h7 - h6 < 1.15 * step


def test_a_budget_of_one_event_or_less_is_refused() -> None:
    with pytest.raises(ValueError, match="false_alarm_events"):
        ChartDesign.solve((100,), 1.0)


def test_normal_scores_are_the_normal_quantiles_of_the_ranks() -> None:
    table = normal_scores(999)
    assert table.shape == (1000,) and not table.flags.writeable
    assert np.array_equal(table, ndtri((np.arange(1000) + 0.5) / 1000))
    assert np.allclose(table, -table[::-1])


@pytest.mark.parametrize("m,want", [(5, 5), (99, 99), (100, 100), (4987, 4900), (12345, 12000)])
def test_design_sizes_round_down_to_two_digits(m: int, want: int) -> None:
    assert design_size(m) == want
