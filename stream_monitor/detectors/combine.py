"""Per-feature drift results into one model decision, with the rule that made it.

One statistic per feature answers "did this feature move"; an alert needs one answer per
model, and the rule behind it matters as much as the answer. The rules here:

* `max_statistic`: the seed rule, drift when the largest statistic exceeds a threshold
  (strictly, as the seed compares `stat > threshold`).
* `drifted_share`: drift when at least a configured share of the tested features drifted,
  so that one noisy feature out of fifty does not page anyone.
* `corrected_pvalues`: per-feature p-values corrected for testing many features at once,
  Bonferroni (family-wise error) or Benjamini-Hochberg (false discovery rate); a feature
  drifts when its adjusted p-value is at most alpha.
* `effect_size_gate`: drift only where a feature is significant after correction AND its
  effect size (e.g. PSI, a normalised Wasserstein distance) reaches a minimum AND its
  sample is large enough: on big windows tiny, harmless shifts are all significant.

A NaN statistic or p-value marks a feature that was not tested: it never drifts, it does
not count in a share, and it is left out of the number of tests m (its adjusted p-value is
NaN). `score` is never NaN, so an alert always carries a number: with nothing tested a
rule reports the value that means "no evidence" (statistic 0, share 0, p-value 1, effect 0).

`rule` is short, for the alert: the rule's name when it decided drift; otherwise "none",
"not_tested" when no feature was tested, and, for the gate, the first gate no feature
passed ("small_sample", "not_significant", "small_effect").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Correction = Literal["bonferroni", "bh"]

NONE = "none"
NOT_TESTED = "not_tested"
SMALL_SAMPLE = "small_sample"
NOT_SIGNIFICANT = "not_significant"
SMALL_EFFECT = "small_effect"


@dataclass(frozen=True, slots=True)
class Decision:
    decision: bool  # drift for the model
    score: float  # what was compared with `threshold` (never NaN)
    threshold: float
    rule: str  # which rule fired, or why none did (see the module docstring)
    drifted: BoolArray  # per feature


def _floats(values: npt.ArrayLike) -> FloatArray:
    return np.asarray(values, dtype=np.float64).ravel()


def max_statistic(statistics: npt.ArrayLike, threshold: float) -> Decision:
    """The seed rule: drift when the largest per-feature statistic exceeds `threshold`.

    >>> import numpy as np
    >>> decision = max_statistic([0.02, 0.15, np.nan], threshold=0.1)
    >>> decision.decision, decision.score, decision.rule, decision.drifted.tolist()
    (True, 0.15, 'max_statistic', [False, True, False])
    """
    stat = _floats(statistics)
    tested = ~np.isnan(stat)
    drifted = tested & (stat > threshold)
    if not tested.any():
        return Decision(False, 0.0, threshold, NOT_TESTED, drifted)
    score = float(stat[tested].max())
    decision = score > threshold
    return Decision(decision, score, threshold, "max_statistic" if decision else NONE, drifted)


def drifted_share(
    drifted: npt.ArrayLike, min_share: float, tested: npt.ArrayLike | None = None
) -> Decision:
    """Drift when the drifted features make up at least `min_share` of the tested ones.

    >>> decision = drifted_share([True, False, False, True], min_share=0.5)
    >>> decision.decision, decision.score
    (True, 0.5)
    """
    if not 0.0 < min_share <= 1.0:
        raise ValueError("min_share must be in (0, 1]")
    flags = np.asarray(drifted, dtype=np.bool_).ravel()
    mask = np.ones_like(flags) if tested is None else np.asarray(tested, np.bool_).ravel()
    if mask.shape != flags.shape:
        raise ValueError(f"{flags.size} drift flags but {mask.size} tested flags")
    flags = flags & mask
    n_tested = int(mask.sum())
    if n_tested == 0:
        return Decision(False, 0.0, min_share, NOT_TESTED, flags)
    share = int(flags.sum()) / n_tested
    decision = share >= min_share
    return Decision(decision, share, min_share, "drifted_share" if decision else NONE, flags)


def _pvalues(pvalues: npt.ArrayLike) -> FloatArray:
    p = _floats(pvalues)
    if np.any((p < 0.0) | (p > 1.0)):  # NaN compares False: allowed, it means "not tested"
        raise ValueError("p-values must lie in [0, 1] (or be NaN for a feature not tested)")
    return p


def bonferroni(pvalues: npt.ArrayLike) -> FloatArray:
    """min(1, p * m), m the number of non-NaN p-values; NaN stays NaN.

    >>> import numpy as np
    >>> bonferroni([0.01, 0.04, np.nan]).tolist()
    [0.02, 0.08, nan]
    """
    p = _pvalues(pvalues)
    m = int(np.count_nonzero(~np.isnan(p)))
    return np.minimum(1.0, p * m)


def benjamini_hochberg(pvalues: npt.ArrayLike) -> FloatArray:
    """Benjamini-Hochberg adjusted p-values over the non-NaN ones; NaN stays NaN.

    With p_(1) <= ... <= p_(m) sorted, adjusted p_(i) = min over j >= i of m p_(j) / j,
    capped at 1, computed as `scipy.stats.false_discovery_control(p, method="bh")` does.
    A feature whose adjusted value is at most q is rejected by the BH step-up procedure at
    false discovery rate q.

    >>> import numpy as np
    >>> from scipy.stats import false_discovery_control
    >>> p = [0.01, 0.04, 0.03]
    >>> benjamini_hochberg(p).tolist()
    [0.03, 0.04, 0.04]
    >>> bool(np.allclose(benjamini_hochberg(p), false_discovery_control(p)))
    True
    """
    p = _pvalues(pvalues)
    out = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = tested.size
    if m == 0:
        return out
    order = np.argsort(p[tested], kind="stable")
    ranked = p[tested][order] * (m / np.arange(1, m + 1))
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out[tested[order]] = np.clip(ranked, 0.0, 1.0)
    return out


def adjust(pvalues: npt.ArrayLike, method: Correction) -> FloatArray:
    """Adjusted p-values by `method` ("bonferroni" or "bh")."""
    if method == "bonferroni":
        return bonferroni(pvalues)
    if method == "bh":
        return benjamini_hochberg(pvalues)
    raise ValueError(f"unknown correction {method!r}")


def corrected_pvalues(
    pvalues: npt.ArrayLike, alpha: float = 0.05, method: Correction = "bh"
) -> Decision:
    """Drift when some feature's corrected p-value is at most `alpha`; score: the smallest.

    >>> decision = corrected_pvalues([0.001, 0.2, 0.5], alpha=0.05, method="bh")
    >>> decision.decision, decision.score, decision.rule
    (True, 0.003, 'bh')
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    adjusted = adjust(pvalues, method)
    tested = ~np.isnan(adjusted)
    drifted = tested & (adjusted <= alpha)
    if not tested.any():
        return Decision(False, 1.0, alpha, NOT_TESTED, drifted)
    score = float(adjusted[tested].min())
    decision = bool(drifted.any())
    return Decision(decision, score, alpha, method if decision else NONE, drifted)


def effect_size_gate(
    pvalues: npt.ArrayLike,
    effect: npt.ArrayLike,
    sample_size: npt.ArrayLike,
    min_effect: float,
    min_samples: int,
    alpha: float = 0.05,
    method: Correction = "bh",
) -> Decision:
    """Drift where a feature is significant, its effect >= `min_effect` and its n >= `min_samples`.

    Score: the largest effect among the features that pass the sample and significance gates
    (0.0 when none does), against `min_effect`. A NaN effect never passes.

    Example: both features are significant, only the first moved by more than `min_effect`.

    >>> decision = effect_size_gate([0.001, 0.001], [0.3, 0.05], [500, 500], 0.1, 100)
    >>> decision.drifted.tolist(), decision.score, decision.rule
    ([True, False], 0.3, 'bh+effect')
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    adjusted = adjust(pvalues, method)
    size = _floats(sample_size)
    big = _floats(effect)
    if not adjusted.shape == size.shape == big.shape:
        raise ValueError("p-values, effects and sample sizes need one value per feature")
    tested = ~np.isnan(adjusted)
    enough = tested & (size >= min_samples)
    significant = enough & (adjusted <= alpha)
    drifted = significant & (big >= min_effect)  # NaN effect compares False
    if not tested.any():
        return Decision(False, 0.0, min_effect, NOT_TESTED, drifted)
    effects = big[significant & ~np.isnan(big)]
    score = float(effects.max()) if effects.size else 0.0
    if drifted.any():
        rule = f"{method}+effect"
    elif not enough.any():
        rule = SMALL_SAMPLE
    elif not significant.any():
        rule = NOT_SIGNIFICANT
    else:
        rule = SMALL_EFFECT
    return Decision(bool(drifted.any()), score, min_effect, rule, drifted)
