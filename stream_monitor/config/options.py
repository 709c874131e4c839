"""The names of drift tests and rules, their defaults, and the per-model and per-feature
overrides of the YAML file (`models.<name>`, `models.<name>.features.<feature>`).

Kept apart from config.py, which assembles them into the monitor's settings.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

NumericTest = Literal["auto", "ks", "psi", "jensenshannon", "wasserstein", "cvm"]
CategoricalTest = Literal["auto", "chi2", "psi", "jensenshannon"]
# "auto" for categorical features: chi-squared (a p-value) up to this window size, the
# Jensen-Shannon distance (an effect size) above it, where p-values flag negligible shifts
AUTO_CHI2_MAX_WINDOW = 1000
DriftRule = Literal["max", "share", "bonferroni", "bh", "gate"]
GateEffect = Literal["psi", "wasserstein", "jensenshannon"]
Correction = Literal["bh", "bonferroni"]
PredictionTest = Literal["jensenshannon", "ks", "psi"]  # psi: class-label models
# sequential: CUSUM charts at every event; window: the window test every N events
InputDriftRule = Literal["sequential", "window", "both"]
ConceptDetector = Literal["adwin", "page_hinkley"]
# separate: each model_version its own window; shared: one window for every version
VersionPolicy = Literal["separate", "shared"]
JS_DISTANCE_MAX = math.sqrt(math.log(2.0))  # Jensen-Shannon distance (natural log) is below it
NUMERIC_TESTS: tuple[str, ...] = ("ks", "psi", "jensenshannon", "wasserstein", "cvm")
CATEGORICAL_TESTS: tuple[str, ...] = ("chi2", "psi", "jensenshannon")
# Tests judged by p-value: a feature drifts when its p-value is below the threshold.
PVALUE_TESTS = frozenset({"cvm", "chi2"})
# Default thresholds: KS takes --drift-threshold; PSI 0.2 is the usual "significant shift";
# Wasserstein is normalised by the reference's standard deviation.
DEFAULT_TEST_THRESHOLDS: dict[str, float] = {
    "psi": 0.2,
    "jensenshannon": 0.1,
    "wasserstein": 0.1,
    "cvm": 0.001,
    "chi2": 0.001,
}


class FeatureSettings(BaseModel):
    """Test and threshold of one feature of one model (YAML `models.<m>.features.<f>`)."""

    model_config = ConfigDict(extra="forbid")

    test: str | None = None
    threshold: float | None = Field(None, gt=0)

    @field_validator("test")
    @classmethod
    def _known_test(cls, value: str | None) -> str | None:
        if value is not None and value not in NUMERIC_TESTS + CATEGORICAL_TESTS:
            known = ", ".join(sorted(set(NUMERIC_TESTS + CATEGORICAL_TESTS)))
            raise ValueError(f"unknown test {value!r} (known: {known})")
        return value


class VersionComparison(BaseModel):
    """A candidate version judged against the live window of a baseline version (YAML
    `models.<name>.compare_versions`), besides its reference."""

    model_config = ConfigDict(extra="forbid")

    baseline: str = Field(min_length=1)
    candidate: str = Field(min_length=1)

    @field_validator("candidate")
    @classmethod
    def _differs(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("baseline"):
            raise ValueError("the candidate must be another version than the baseline")
        return value


class ModelSettings(BaseModel):
    """Per-model overrides of the detector settings (YAML `models.<name>`): traffic differs
    by orders of magnitude between models, so window, cadence and thresholds may too."""

    model_config = ConfigDict(extra="forbid")

    window_size: int | None = Field(None, gt=0)
    check_every: int | None = Field(None, gt=0)
    min_window: int | None = Field(None, gt=0)
    min_labeled_events: int | None = Field(None, gt=0)
    dq_missing_share: float | None = Field(None, gt=0, le=1)
    dq_nonfinite_share: float | None = Field(None, gt=0, le=1)
    dq_out_of_range_share: float | None = Field(None, gt=0, le=1)
    dq_unseen_share: float | None = Field(None, gt=0, le=1)
    concept_delta: float | None = Field(None, gt=0, lt=1)
    bootstrap_reference: int | None = Field(None, ge=0)
    drift_threshold: float | None = Field(None, gt=0, le=1)
    prediction_drift_threshold: float | None = Field(None, gt=0, le=1)
    mae_threshold: float | None = Field(None, gt=0)
    min_accuracy: float | None = Field(None, gt=0, le=1)
    latency_p99_threshold_ms: float | None = Field(None, gt=0)
    numeric_test: NumericTest | None = None
    categorical_test: CategoricalTest | None = None
    drift_rule: DriftRule | None = None
    drift_share: float | None = Field(None, gt=0, le=1)
    drift_alpha: float | None = Field(None, gt=0, lt=1)
    gate_effect: GateEffect | None = None
    gate_min_effect: float | None = Field(None, gt=0)
    gate_min_samples: int | None = Field(None, gt=0)
    gate_correction: Correction | None = None
    prediction_test: PredictionTest | None = None
    input_drift_rule: InputDriftRule | None = None
    false_alarm_events: float | None = Field(None, gt=1)
    multivariate_drift: bool | None = None
    resolve_after_checks: int | None = Field(None, ge=1)
    concept_detector: ConceptDetector | None = None
    page_hinkley_delta: float | None = Field(None, ge=0)
    page_hinkley_threshold: float | None = Field(None, gt=0)
    reference_summary: int | None = Field(None, ge=0)
    test_thresholds: dict[str, float] | None = None
    compare_versions: VersionComparison | None = None
    segment_by: list[str] | None = None
    max_segments: int | None = Field(None, ge=1, le=1000)
    segment_min_events: int | None = Field(None, ge=1)
    features: dict[str, FeatureSettings] = Field(default_factory=dict)
