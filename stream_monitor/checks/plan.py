"""One plan per model, built once from its settings and reference: what every check decides by.

A check reads its model's plan and never consults the settings: which test each feature
gets, the feature indices of each test, each feature's threshold and whether it is judged
by p-value, the rule that combines them, and every other threshold, all resolved when the
reference is loaded (or replaced), not at every check.

Plans are interned: models whose plans are equal (the same settings and feature names, as
in a fleet of like models) share one object, about 1.2 KB per model otherwise.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from stream_monitor.arrays import FloatArray, IntArray
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.config.options import PVALUE_TESTS, Correction, DriftRule, GateEffect
from stream_monitor.reference.prepared import PreparedReference

BoolArray = npt.NDArray[np.bool_]
Groups = dict[str, IntArray]  # test -> feature indices (numeric, or categorical)


@dataclass(frozen=True, slots=True)
class GatePlan:
    """The effect-size gate's parameters (`drift_rule: gate`)."""

    effect: GateEffect
    min_effect: float
    min_samples: int
    correction: Correction


@dataclass(frozen=True, slots=True, weakref_slot=True)
class CheckPlan:
    """Everything the checks of one model decide by."""

    window_size: int
    check_every: int
    min_window: int  # events a window needs before drift and quality are judged
    # input drift: numeric features first, then categorical ones, in the reference's order
    feature_names: tuple[str, ...]
    feature_tests: tuple[str, ...]
    numeric: Groups
    categorical: Groups
    thresholds: FloatArray  # per feature, in the unit of its test
    by_pvalue: BoolArray  # per feature: judged by p-value below the threshold
    drift_rule: DriftRule
    drift_threshold: float
    drift_share: float
    drift_alpha: float
    gate: GatePlan | None
    needs_bins: bool  # the window keeps numeric bin counts (PSI, Jensen-Shannon)
    # prediction drift
    prediction_test: str  # jensenshannon or ks (numbers); chi2 or psi (class labels)
    prediction_threshold: float
    # performance, latency, data quality, concept drift
    mae_threshold: float
    min_accuracy: float | None
    min_labeled_events: int
    latency_p99_ms: float | None
    dq_missing_share: float
    dq_nonfinite_share: float
    dq_out_of_range_share: float
    dq_unseen_share: float
    concept_delta: float

    @property
    def ks_only(self) -> bool:
        """Every feature numeric and judged by KS (the default): the check's short path."""
        ks = self.numeric.get("ks")
        return not self.categorical and ks is not None and ks.size == len(self.feature_names)

    @property
    def eager_pvalues(self) -> bool:
        """The rule reads p-values at every check (else only an alert computes them)."""
        return self.drift_rule in ("gate", "bonferroni", "bh")

    @classmethod
    def build(cls, settings: DetectorSettings, reference: PreparedReference | None) -> CheckPlan:
        numeric_names = () if reference is None else tuple(reference.feature_names)
        cat = None if reference is None else reference.categorical
        categorical_names = () if cat is None else tuple(cat.feature_names)
        tests = tuple(settings.test_of(n, categorical=False) for n in numeric_names) + tuple(
            settings.test_of(n, categorical=True) for n in categorical_names
        )
        names = numeric_names + categorical_names
        f = len(numeric_names)
        gate = None
        if settings.drift_rule == "gate":
            gate = GatePlan(
                settings.gate_effect,
                settings.gate_threshold(),
                settings.gate_min_samples,
                settings.gate_correction,
            )
        prediction_test, prediction_threshold = _prediction(settings, reference)
        wanted = set(tests[:f]) | ({gate.effect} if gate is not None else set())
        plan = cls(
            window_size=settings.window_size,
            check_every=settings.check_every,
            min_window=settings.effective_min_window,
            feature_names=names,
            feature_tests=tests,
            numeric=_groups(tests[:f]),
            categorical=_groups(tests[f:]),
            thresholds=np.array(
                [settings.threshold_of(t, n) for t, n in zip(tests, names, strict=True)],
                dtype=np.float64,
            ),
            by_pvalue=np.array([t in PVALUE_TESTS for t in tests], dtype=bool),
            drift_rule=settings.drift_rule,
            drift_threshold=settings.drift_threshold,
            drift_share=settings.drift_share,
            drift_alpha=settings.drift_alpha,
            gate=gate,
            needs_bins=reference is not None and bool({"psi", "jensenshannon"} & wanted),
            prediction_test=prediction_test,
            prediction_threshold=prediction_threshold,
            mae_threshold=settings.mae_threshold,
            min_accuracy=settings.min_accuracy,
            min_labeled_events=settings.min_labeled_events,
            latency_p99_ms=settings.latency_p99_threshold_ms,
            dq_missing_share=settings.dq_missing_share,
            dq_nonfinite_share=settings.dq_nonfinite_share,
            dq_out_of_range_share=settings.dq_out_of_range_share,
            dq_unseen_share=settings.dq_unseen_share,
            concept_delta=settings.concept_delta,
        )
        return _PLANS.setdefault(_identity(plan), plan)


_PLANS: weakref.WeakValueDictionary[tuple[object, ...], CheckPlan] = weakref.WeakValueDictionary()


def _identity(plan: CheckPlan) -> tuple[object, ...]:
    """The plan's fields as a hashable value (arrays by dtype, shape and bytes): equal for
    equal plans. A NaN field makes plans unequal, which only forgoes sharing."""
    out: list[object] = []
    for f in fields(plan):
        value = getattr(plan, f.name)
        if isinstance(value, np.ndarray):
            value = (value.dtype.str, value.shape, value.tobytes())
        elif isinstance(value, dict):
            value = tuple((k, v.tobytes()) for k, v in value.items())
        out.append(value)
    return tuple(out)


def _groups(tests: tuple[str, ...]) -> Groups:
    out: dict[str, list[int]] = {}
    for j, test in enumerate(tests):
        out.setdefault(test, []).append(j)
    return {test: np.array(idx, dtype=np.int64) for test, idx in out.items()}


def _prediction(
    settings: DetectorSettings, reference: PreparedReference | None
) -> tuple[str, float]:
    """The prediction test and its threshold: class labels take chi-squared (or PSI), numbers
    the Jensen-Shannon distance of the histograms (or KS, with the KS threshold)."""
    if reference is not None and reference.classes is not None:
        test = "psi" if settings.prediction_test == "psi" else "chi2"
        return test, settings.threshold_of(test)
    if settings.prediction_test == "ks":
        return "ks", settings.threshold_of("ks")
    return "jensenshannon", settings.prediction_drift_threshold
