"""Combining per-feature results: the seed rule, shares, corrected p-values, the effect gate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.stats import false_discovery_control

from stream_monitor.detectors.combine import (
    Decision,
    adjust,
    benjamini_hochberg,
    bonferroni,
    corrected_pvalues,
    drifted_share,
    effect_size_gate,
    max_statistic,
)

NAN = np.nan


def test_max_statistic_is_the_seed_rule() -> None:
    d = max_statistic([0.05, 0.1, 0.12, NAN], 0.1)
    assert d.decision and d.score == 0.12 and d.threshold == 0.1 and d.rule == "max_statistic"
    assert d.drifted.tolist() == [False, False, True, False]  # 0.1 is not above 0.1
    quiet = max_statistic([0.05, 0.1], 0.1)
    assert not quiet.decision and quiet.score == 0.1 and quiet.rule == "none"
    untested = max_statistic([NAN, NAN], 0.1)
    assert (untested.decision, untested.score, untested.rule) == (False, 0.0, "not_tested")
    assert max_statistic([], 0.1).rule == "not_tested"


def test_decision_is_frozen() -> None:
    d = max_statistic([0.2], 0.1)
    assert isinstance(d, Decision)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.decision = False  # type: ignore[misc]


def test_drifted_share() -> None:
    flags = [True, False, True, False, False]
    d = drifted_share(flags, 0.4)
    assert d.decision and d.score == 0.4 and d.rule == "drifted_share"  # share >= 0.4
    assert not drifted_share(flags, 0.5).decision
    # untested features count neither as drifted nor in the denominator
    d = drifted_share(flags, 0.5, tested=[True, True, True, True, False])
    assert d.decision and d.score == 0.5
    d = drifted_share(flags, 0.5, tested=[False, True, False, True, True])
    assert not d.decision and d.score == 0.0 and not d.drifted.any()
    assert drifted_share(flags, 0.5, tested=[False] * 5).rule == "not_tested"
    seed = max_statistic([0.3, 0.01, NAN, 0.2], 0.1)
    chained = drifted_share(seed.drifted, 0.6, tested=~np.isnan([0.3, 0.01, NAN, 0.2]))
    assert chained.decision and chained.score == pytest.approx(2 / 3)
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError):
            drifted_share(flags, bad)
    with pytest.raises(ValueError):
        drifted_share(flags, 0.5, tested=[True])


def _bh_step_up(p: np.ndarray, q: float) -> np.ndarray:
    """Benjamini & Hochberg (1995): reject the k smallest, k = max{i : p_(i) <= i q / m}."""
    tested = np.flatnonzero(~np.isnan(p))
    reject = np.zeros(p.size, dtype=bool)
    m = tested.size
    order = tested[np.argsort(p[tested])]
    k = 0
    for i, j in enumerate(order, start=1):
        if p[j] <= i * q / m:
            k = i
    reject[order[:k]] = True
    return reject


def _random_pvalues(seed: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    m = int(g.integers(1, 60))
    p = g.beta(0.3, 1.0, m)  # many small p-values, as under drift
    p[g.random(m) < 0.2] = g.choice([0.0, 1.0, 0.01, 0.5])  # ties, and both ends
    p[g.random(m) < 0.2] = NAN
    return p


@pytest.mark.parametrize("seed", range(40))
def test_corrections_against_scipy_and_definitions(seed: int) -> None:
    p = _random_pvalues(seed)
    tested = ~np.isnan(p)
    m = int(tested.sum())
    bh = benjamini_hochberg(p)
    bonf = bonferroni(p)
    assert np.array_equal(np.isnan(bh), ~tested) and np.array_equal(np.isnan(bonf), ~tested)
    if m:
        expected = false_discovery_control(p[tested], method="bh")
        np.testing.assert_allclose(bh[tested], expected, rtol=0, atol=1e-12)
        assert np.array_equal(bonf[tested], np.minimum(1.0, p[tested] * m))
    for q in (0.01, 0.05, 0.2):
        assert np.array_equal(tested & (bh <= q), _bh_step_up(p, q))
    assert np.array_equal(adjust(p, "bh"), bh, equal_nan=True)
    assert np.array_equal(adjust(p, "bonferroni"), bonf, equal_nan=True)


def test_corrections_by_hand() -> None:
    p = np.array([0.01, NAN, 0.04, 0.03, 0.20])  # m = 4
    assert bonferroni(p)[[0, 2, 3, 4]].tolist() == [0.04, 0.16, 0.12, 0.8]
    # sorted 0.01, 0.03, 0.04, 0.20 -> 4p/i = 0.04, 0.06, 0.0533, 0.20 -> step-up minimum
    np.testing.assert_allclose(
        benjamini_hochberg(p)[[0, 3, 2, 4]], [0.04, 0.16 / 3, 0.16 / 3, 0.2], atol=1e-15
    )
    assert np.isnan(benjamini_hochberg([NAN, NAN])).all()
    assert benjamini_hochberg([]).size == 0
    for bad in ([0.5, 1.5], [-0.1]):
        with pytest.raises(ValueError):
            benjamini_hochberg(bad)
    with pytest.raises(ValueError):
        adjust([0.5], "holm")  # type: ignore[arg-type]


def test_corrected_pvalues_decision() -> None:
    p = [0.01, NAN, 0.04, 0.03, 0.20]
    bh = corrected_pvalues(p, alpha=0.05, method="bh")
    assert bh.decision and bh.rule == "bh" and bh.threshold == 0.05
    assert bh.score == pytest.approx(0.04)
    assert bh.drifted.tolist() == [True, False, False, False, False]  # 0.0533 > 0.05
    loose = corrected_pvalues(p, alpha=0.06, method="bh")
    assert loose.drifted.tolist() == [True, False, True, True, False]
    bonf = corrected_pvalues(p, alpha=0.03, method="bonferroni")
    assert not bonf.decision and bonf.rule == "none" and bonf.score == pytest.approx(0.04)
    untested = corrected_pvalues([NAN], method="bonferroni")
    assert (untested.decision, untested.score, untested.rule) == (False, 1.0, "not_tested")
    with pytest.raises(ValueError):
        corrected_pvalues(p, alpha=0.0)


def test_effect_size_gate_reasons() -> None:
    p = [1e-6, 1e-6, 0.5, NAN]
    effect = [0.05, 0.3, 0.9, 0.9]
    n = [5_000, 5_000, 5_000, 5_000]
    d = effect_size_gate(p, effect, n, min_effect=0.1, min_samples=1_000)
    assert d.decision and d.rule == "bh+effect" and d.score == 0.3 and d.threshold == 0.1
    assert d.drifted.tolist() == [False, True, False, False]
    # significant everywhere it matters, but every effect is small
    small = effect_size_gate(p, [0.05, 0.08, 0.9, 0.9], n, min_effect=0.1, min_samples=1_000)
    assert (small.decision, small.rule, small.score) == (False, "small_effect", 0.08)
    # the large effect is not significant
    ns = effect_size_gate([0.5, 0.5, 0.5, NAN], effect, n, min_effect=0.1, min_samples=1_000)
    assert (ns.decision, ns.rule, ns.score) == (False, "not_significant", 0.0)
    # a significant large effect on too few events
    few = effect_size_gate(p, effect, [10, 10, 5_000, 5_000], min_effect=0.1, min_samples=1_000)
    assert few.rule == "not_significant" and not few.decision
    tiny = effect_size_gate(p, effect, [10, 10, 10, 10], min_effect=0.1, min_samples=1_000)
    assert (tiny.decision, tiny.rule) == (False, "small_sample")
    none = effect_size_gate([NAN, NAN], [1.0, 1.0], [9, 9], min_effect=0.1, min_samples=1)
    assert (none.decision, none.rule, none.score) == (False, "not_tested", 0.0)
    bonf = effect_size_gate(p, effect, n, 0.1, 1_000, method="bonferroni")
    assert bonf.rule == "bonferroni+effect"
    nan_effect = effect_size_gate(p, [NAN, NAN, 0.9, 0.9], n, 0.1, 1_000)
    assert (nan_effect.decision, nan_effect.rule, nan_effect.score) == (False, "small_effect", 0.0)
    with pytest.raises(ValueError):
        effect_size_gate(p, effect[:2], n, 0.1, 1_000)


@pytest.mark.parametrize("seed", range(20))
def test_effect_size_gate_is_the_conjunction(seed: int) -> None:
    g = np.random.default_rng(seed)
    p = _random_pvalues(seed)
    effect = g.uniform(0.0, 0.4, p.size)
    n = g.integers(0, 2_000, p.size)
    d = effect_size_gate(p, effect, n, min_effect=0.2, min_samples=500, alpha=0.1)
    significant = benjamini_hochberg(p) <= 0.1
    expected = significant & (effect >= 0.2) & (n >= 500)
    assert np.array_equal(d.drifted, expected)
    assert d.decision == bool(expected.any())
    assert np.isfinite(d.score)
