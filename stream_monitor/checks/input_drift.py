"""Input drift of one model: each feature's test on the window, then the model's decision.

Numeric features take `numeric_test` (KS by default), categorical ones `categorical_test`
(chi-squared by default), unless a feature names its own test. A feature drifts when its
score exceeds its threshold, or, for tests judged by p-value (Cramér-von Mises,
chi-squared), when its p-value is below it. The model's decision follows `drift_rule`:

- `max` (the original design's rule): drift when any feature drifts; the alert reports the
  feature furthest past its threshold (for all-KS models: the largest KS statistic);
- `share`: drift when at least `drift_share` of the tested features drift;
- `bonferroni` / `bh`: drift when a p-value corrected for the number of features tested is
  at most `drift_alpha` (features whose test has no p-value, the distances, do not take part);
- `gate`: drift where a feature is significant after correction (`gate_correction`, at
  `drift_alpha`) AND its effect (`gate_effect`: PSI, normalised Wasserstein or JS) reaches
  `gate_min_effect` AND it has `gate_min_samples` values: on big windows tiny, harmless
  shifts are all significant. A feature whose own test has no p-value is judged by the KS
  p-value (numeric) or the chi-squared one (categorical). `details.gate` names the gate that
  fired ("bh+effect") or the first one no feature passed ("small_sample", "not_significant",
  "small_effect").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stream_monitor.alerts.contract import Detail, FeatureResult
from stream_monitor.alerts.results import CheckResult
from stream_monitor.arrays import FloatArray, IntArray
from stream_monitor.checks.plan import CheckPlan, GatePlan
from stream_monitor.checks.verdicts import NO_REFERENCE, not_judged
from stream_monitor.config.options import PVALUE_TESTS
from stream_monitor.detectors import categorical as cat
from stream_monitor.detectors import cvm, ranks
from stream_monitor.detectors import numeric as num
from stream_monitor.detectors.combine import adjust, effect_size_gate
from stream_monitor.detectors.ks import ks_pvalue
from stream_monitor.kernels import (  # bit for bit detectors.ks's
    ks_scipy_default,
    window_ks_statistic,
)
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.window.ring import ModelWindow


class _Scores:
    """Per-feature results of one check, filled test by test."""

    def __init__(self, plan: CheckPlan) -> None:
        n = len(plan.feature_names)
        self.names = plan.feature_names
        self.test = [""] * n
        self.score = np.zeros(n)
        self.pvalue = np.full(n, np.nan)
        self.threshold = plan.thresholds
        self.by_p = plan.by_pvalue
        self.tested = np.zeros(n, dtype=bool)
        self.lazy_pvalues: Callable[[], None] | None = None  # p-values that cost more
        self.ks_only = False  # every feature's score a KS statistic: no p-value is judged

    @classmethod
    def of_ks(cls, plan: CheckPlan, statistic: FloatArray, sizes: np.ndarray) -> _Scores:
        """Every feature judged by KS: the statistics as they are, no test by test filling."""
        scores = cls(plan)
        scores.test = list(plan.feature_tests)
        scores.score = statistic
        scores.tested = sizes > 0
        scores.ks_only = True
        return scores

    def put(
        self,
        idx: IntArray,
        test: str,
        score: FloatArray,
        sizes: np.ndarray,
        pvalue: FloatArray | None,
    ) -> None:
        for j in idx.tolist():
            self.test[j] = test
        self.score[idx] = score
        self.tested[idx] = sizes > 0
        if pvalue is not None:
            self.pvalue[idx] = pvalue

    def drifted(self) -> np.ndarray:
        if self.ks_only:  # statistics in [0, 1] against positive thresholds
            return (self.score > self.threshold) & self.tested
        with np.errstate(invalid="ignore"):
            over = np.where(self.by_p, self.pvalue < self.threshold, self.score > self.threshold)
        return over & self.tested

    def margin(self) -> np.ndarray:
        """How far past its threshold each feature is (>1: drifted), for the max rule."""
        if self.ks_only:
            return np.where(self.tested, self.score / self.threshold, -np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(
                self.by_p,
                self.threshold / np.maximum(self.pvalue, 1e-300),
                self.score / self.threshold,
            )
        return np.where(self.tested & np.isfinite(ratio), ratio, -np.inf)


@dataclass(frozen=True, slots=True)
class _Evidence:
    """What the gate rule reads per feature (scores' order): p-value, effect, sample size."""

    pvalue: FloatArray  # uncorrected; NaN: not tested
    effect: FloatArray  # NaN: no such effect for this feature (categorical, Wasserstein)
    size: FloatArray  # the smaller of the feature's window and reference values


def input_drift(window: ModelWindow, plan: CheckPlan) -> CheckResult:
    """Every feature's test on the window, combined by the model's drift rule."""
    ref = window.reference
    if ref is None or not plan.feature_names:
        reason = NO_REFERENCE if ref is None else "no features in the reference"
        return not_judged("input_drift", "ks", plan.drift_threshold, reason)
    if window.count < plan.min_window:
        reason = f"window holds {window.count} of {plan.min_window} events needed"
        return not_judged("input_drift", "ks", plan.drift_threshold, reason)
    rows = window.rows()
    if plan.ks_only and plan.drift_rule in ("max", "share"):
        return _ks_only(window, plan, ref, rows)
    scores = _Scores(plan)
    f = ref.n_features
    eager_p = plan.eager_pvalues  # the rule reads p-values
    ks_raw = ks_sizes = None
    if "ks" in plan.numeric or eager_p:
        finite = window.count - window.missing_count - window.nonfinite_count  # running tallies
        keys = window.ks_key[rows]
        ks_raw, ks_sizes = window_ks_statistic(keys, ref.sizes, window.key_bits, finite)
    for test, idx in plan.numeric.items():
        if test == "ks":
            assert ks_raw is not None and ks_sizes is not None
            stat = ks_scipy_default(ks_raw, ref.sizes, ks_sizes)[idx]
            p = None
            if eager_p:
                p = ks_pvalue(ks_raw, ref.sizes, ks_sizes)[idx]
            else:  # only an alert or the status needs them: computed on demand

                def fill(
                    raw: FloatArray = ks_raw, sizes: np.ndarray = ks_sizes, at: IntArray = idx
                ) -> None:
                    scores.pvalue[at] = ks_pvalue(raw, ref.sizes, sizes)[at]

                scores.lazy_pvalues = fill
            scores.put(idx, "ks", stat, ks_sizes[idx], p)
        else:
            s = _numeric_scores(test, window, ref, rows)
            pv = None if s.pvalue is None else s.pvalue[idx]
            scores.put(idx, test, s.statistic[idx], s.sizes[idx], pv)
    counts = None
    if ref.categorical is not None and plan.categorical:
        counts = cat.category_counts(ref.categorical, window.categorical[rows])
        for test, idx in plan.categorical.items():
            if test == "chi2":
                chi = cat.chi_squared(ref.categorical, counts)
                stat, sizes, p = chi.statistic, chi.sizes, chi.pvalue
            else:
                s = (cat.psi if test == "psi" else cat.js_distance)(ref.categorical, counts)
                stat, sizes, p = s.statistic, s.sizes, None
            scores.put(f + idx, test, stat[idx], sizes[idx], None if p is None else p[idx])
    evidence = None
    if plan.gate is not None and ks_raw is not None and ks_sizes is not None:
        ks_p = ks_pvalue(ks_raw, ref.sizes, ks_sizes)
        evidence = _gate_evidence(window, ref, rows, plan.gate, scores, ks_p, ks_sizes, counts)
    return _result_with_scores(_decide(scores, plan, evidence), scores)


def _ks_only(
    window: ModelWindow, plan: CheckPlan, ref: PreparedReference, rows: slice
) -> CheckResult:
    """The default check's short path (every feature KS, a rule that reads no p-value): the
    same result as the general path with none of its test by test bookkeeping."""
    finite = window.count - window.missing_count - window.nonfinite_count  # running tallies
    raw, sizes = window_ks_statistic(window.ks_key[rows], ref.sizes, window.key_bits, finite)
    scores = _Scores.of_ks(plan, ks_scipy_default(raw, ref.sizes, sizes), sizes)

    def fill() -> None:  # only an alert or the status needs the p-values
        scores.pvalue = ks_pvalue(raw, ref.sizes, sizes)

    scores.lazy_pvalues = fill
    return _result_with_scores(_decide(scores, plan), scores)


def _gate_evidence(
    window: ModelWindow,
    ref: PreparedReference,
    rows: slice,
    gate: GatePlan,
    scores: _Scores,
    ks_p: FloatArray,
    ks_sizes: np.ndarray,
    counts: cat.CategoryCounts | None,
) -> _Evidence:
    """p-values, effects and sample sizes of every feature, for the gate rule.

    A feature keeps its own test's p-value (KS, Cramér-von Mises, chi-squared); a feature
    judged by a distance borrows the KS p-value (numeric) or the chi-squared one (categorical).
    """
    f = ref.n_features
    effect_test = gate.effect
    n = len(scores.names)
    pvalue = scores.pvalue.copy()
    effect = np.full(n, np.nan)
    size = np.zeros(n)
    borrowed = np.array([t not in PVALUE_TESTS and t != "ks" for t in scores.test], dtype=bool)
    if f:
        pvalue[:f] = np.where(borrowed[:f], ks_p, pvalue[:f])
        own = [j for j in range(f) if scores.test[j] == effect_test]
        if len(own) == f:  # every feature's test is the effect: computed already
            effect[:f] = scores.score[:f]
        else:
            effect[:f] = _numeric_scores(effect_test, window, ref, rows).statistic
        size[:f] = np.minimum(ks_sizes, ref.sizes)
    if counts is not None and ref.categorical is not None:
        c = ref.categorical
        if borrowed[f:].any():
            pvalue[f:] = np.where(borrowed[f:], cat.chi_squared(c, counts).pvalue, pvalue[f:])
        if effect_test != "wasserstein":
            effect[f:] = (cat.psi if effect_test == "psi" else cat.js_distance)(c, counts).statistic
        size[f:] = np.minimum(counts.sizes, c.sizes)
    return _Evidence(np.where(scores.tested, pvalue, np.nan), effect, size)


def _numeric_scores(
    test: str, window: ModelWindow, ref: PreparedReference, rows: slice
) -> num.Scores:
    numeric = ref.numeric()
    if test in ("psi", "jensenshannon"):
        counts = window.bin_counts  # kept up to date as rows come and go
        return (num.psi if test == "psi" else num.js_distance)(numeric, counts)
    upto = window.ks_key[rows] >> window.key_bits  # #{ref <= x}, already known per event
    sw = ranks.sort_window(numeric, window.features[rows], upto)
    if test == "wasserstein":
        w1 = ranks.wasserstein(numeric, sw)
        return num.Scores(ranks.normalised_wasserstein(numeric, w1.statistic), w1.sizes)
    return cvm.cramer_von_mises(numeric, sw, ties="ecdf")


def _decide(scores: _Scores, plan: CheckPlan, evidence: _Evidence | None = None) -> CheckResult:
    drifted = scores.drifted()
    tested = scores.tested
    n_drifted, n_tested = int(np.count_nonzero(drifted)), int(np.count_nonzero(tested))

    def features() -> list[FeatureResult]:
        if scores.lazy_pvalues is not None:
            scores.lazy_pvalues()
            scores.lazy_pvalues = None
        return [
            FeatureResult(
                name=name,
                test=scores.test[j],
                score=float(scores.score[j]),
                p_value=None if math.isnan(scores.pvalue[j]) else float(scores.pvalue[j]),
                drifted=bool(drifted[j]),
            )
            for j, name in enumerate(scores.names)
            if scores.test[j]
        ]

    rule = plan.drift_rule
    details: dict[str, Detail] = {
        "rule": rule,
        "drifted_features": n_drifted,
        "tested_features": n_tested,
    }
    if n_tested == 0:
        return not_judged("input_drift", "ks", plan.drift_threshold, "no feature could be tested")
    if rule == "max":
        margin = scores.margin()
        j = int(np.argmax(margin))
        if scores.by_p[j]:  # the lead feature is judged by its p-value
            return _p_value_result(
                scores.test[j],
                float(scores.pvalue[j]),
                float(scores.threshold[j]),
                n_drifted == 0,
                features,
                details,
            )
        return _result(
            scores.test[j],
            float(scores.score[j]),
            float(scores.threshold[j]),
            n_drifted == 0,
            features,
            details,
        )
    if rule == "gate":
        assert evidence is not None and plan.gate is not None
        return _gate(scores, plan.gate, plan.drift_alpha, evidence, details)
    if rule == "share":
        share = n_drifted / n_tested
        return _result(
            "share", share, plan.drift_share, share < plan.drift_share, features, details
        )
    adjusted = adjust(np.where(tested, scores.pvalue, np.nan), rule)
    best = float(np.nanmin(adjusted)) if np.isfinite(adjusted).any() else 1.0
    return _p_value_result(rule, best, plan.drift_alpha, best > plan.drift_alpha, features, details)


def _gate(
    scores: _Scores,
    gate: GatePlan,
    alpha: float,
    evidence: _Evidence,
    details: dict[str, Detail],
) -> CheckResult:
    """The effect-size gate; score: the largest effect among significant features."""
    decision = effect_size_gate(
        evidence.pvalue,
        evidence.effect,
        evidence.size,
        gate.min_effect,
        gate.min_samples,
        alpha,
        gate.correction,
    )
    details.update(
        {
            "gate": decision.rule,
            "effect": gate.effect,
            "correction": gate.correction,
            "drifted_features": int(decision.drifted.sum()),
        }
    )

    def features() -> list[FeatureResult]:
        """Per feature: the effect (`test` names it), the p-value read, the gate's verdict."""
        out: list[FeatureResult] = []
        for j, name in enumerate(scores.names):
            if not scores.test[j]:
                continue
            has_effect = not math.isnan(evidence.effect[j])
            p = evidence.pvalue[j]
            out.append(
                FeatureResult(
                    name=name,
                    test=gate.effect if has_effect else scores.test[j],
                    score=float(evidence.effect[j] if has_effect else scores.score[j]),
                    p_value=None if math.isnan(p) else float(p),
                    drifted=bool(decision.drifted[j]),
                )
            )
        return out

    return _result(
        "gate", decision.score, decision.threshold, not decision.decision, features, details
    )


def _result_with_scores(result: CheckResult, scores: _Scores) -> CheckResult:
    result.feature_scores = lambda: [
        (name, scores.test[j], float(scores.score[j]))
        for j, name in enumerate(scores.names)
        if scores.test[j]
    ]
    return result


def _p_value_result(
    test: str,
    p_value: float,
    level: float,
    healthy: bool,
    features: Callable[[], list[FeatureResult]],
    details: dict[str, Detail],
) -> CheckResult:
    """A decision made by a p-value against its level, reported as evidence: -log10 p
    against -log10 of the level (the p-value itself stays in `details`)."""
    details["p_value"] = p_value
    result = _result(test, neg_log10(p_value), neg_log10(level), healthy, features, details)
    result.score_kind = "neg_log10_p_value"
    return result


def neg_log10(p: float) -> float:
    """-log10 p, finite for p = 0 (floored at 1e-300)."""
    return -math.log10(max(p, 1e-300))


def _result(
    test: str,
    score: float,
    threshold: float,
    healthy: bool,
    features: Callable[[], list[FeatureResult]],
    details: dict[str, Detail],
) -> CheckResult:
    return CheckResult(
        "input_drift", test, score, threshold, healthy, details=details, feature_results=features
    )
