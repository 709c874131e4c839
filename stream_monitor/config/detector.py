"""What the engine needs to decide (window, cadence, tests, thresholds), with per-model and
per-feature overrides; no Kafka, no webhooks here."""

from __future__ import annotations

from pydantic import (
    Field,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream_monitor.config.options import (
    AUTO_CHI2_MAX_WINDOW,
    DEFAULT_TEST_THRESHOLDS,
    JS_DISTANCE_MAX,
    CategoricalTest,
    ConceptDetector,
    Correction,
    DriftRule,
    FeatureSettings,
    GateEffect,
    InputDriftRule,
    ModelSettings,
    NumericTest,
    PredictionTest,
    VersionComparison,
    VersionPolicy,
)

# the options that decide the window test's input-drift verdict
WINDOW_JUDGMENT = (
    "drift_threshold",
    "drift_rule",
    "drift_share",
    "drift_alpha",
    "gate_effect",
    "gate_min_effect",
    "gate_min_samples",
    "gate_correction",
    "numeric_test",
    "categorical_test",
    "calibrate_false_alarm_events",
)


class DetectorSettings(BaseSettings):
    """What the engine needs to decide: window, cadence and thresholds (no Kafka here)."""

    model_config = SettingsConfigDict(extra="forbid")

    window_size: int = Field(1000, gt=0, description="events kept per model")
    check_every: int = Field(100, gt=0, description="messages per model between checks")
    min_window: int | None = Field(
        None,
        gt=0,
        description=(
            "events a window needs before drift checks run; default: the full window "
            "(a fixed KS threshold on a small window raises false alarms)"
        ),
    )
    drift_threshold: float = Field(0.1, gt=0, le=1, description="input drift: largest KS statistic")
    prediction_drift_threshold: float = Field(
        0.1, gt=0, le=1, description="prediction drift: Jensen-Shannon distance"
    )
    prediction_bins: int = Field(20, ge=2, le=1000, description="bins of the prediction histogram")
    prediction_test: PredictionTest = Field(
        "jensenshannon",
        description=(
            "prediction drift of numeric predictions: jensenshannon (histograms, the original "
            "design; --prediction-drift-threshold) or ks (two-sample KS statistic; the KS "
            "threshold, --drift-threshold or test_thresholds.ks)"
        ),
    )
    mae_threshold: float = Field(0.5, gt=0, description="performance: MAE of the window")
    latency_p99_threshold_ms: float | None = Field(
        None, gt=0, description="latency: p99 of the window in ms (off when unset)"
    )
    min_labeled_events: int = Field(
        100, gt=0, description="events with an actual value needed before MAE is judged"
    )
    bootstrap_reference: int = Field(
        0,
        ge=0,
        description="for a model without reference, take its first N events as reference (0: off)",
    )
    reference_summary: int | None = Field(
        None,
        ge=0,
        description=(
            "compact references: keep q quantile points per numeric feature instead of its "
            "sorted column; KS within 1/(2(q-1)) + 1/(2m) of exact (unset or 0: exact)"
        ),
    )
    min_accuracy: float | None = Field(
        None, gt=0, le=1, description="performance of class labels: accuracy (off when unset)"
    )
    concept_delta: float = Field(
        0.002, gt=0, lt=1, description="concept drift: ADWIN's confidence on the error stream"
    )
    concept_detector: ConceptDetector = Field(
        "adwin",
        description=(
            "concept drift: the change detector on the error stream, adwin (no scale "
            "needed) or page_hinkley (two-sided; --page-hinkley-delta and "
            "--page-hinkley-threshold in the errors' units)"
        ),
    )
    page_hinkley_delta: float = Field(
        0.05, ge=0, description="page_hinkley: the tolerated change of the error mean"
    )
    page_hinkley_threshold: float = Field(
        25.0, gt=0, description="page_hinkley: lambda, the evidence needed (error units)"
    )
    calibrate_false_alarm_events: float | None = Field(
        None,
        gt=0,
        description=(
            "calibrated mode: choose each model's input-drift threshold from its reference so "
            "that a stationary stream raises one false alarm per this many events (e.g. 1e6)"
        ),
    )
    numeric_test: NumericTest = Field(
        "auto", description="drift test of numeric features (auto: ks at every sample size)"
    )
    categorical_test: CategoricalTest = Field(
        "auto",
        description=(
            "drift test of categorical (string, bool) features (auto: chi2 for windows up to "
            f"{AUTO_CHI2_MAX_WINDOW} events, jensenshannon above)"
        ),
    )
    input_drift_rule: InputDriftRule = Field(
        "sequential",
        description=(
            "input drift: window (the window test every --check-every events, judged by "
            "--drift-rule), sequential (CUSUM charts on each feature's normal scores, judged "
            "at every event against thresholds from --false-alarm-events), or both"
        ),
    )
    resolve_after_checks: int = Field(
        3,
        ge=1,
        description=(
            "a window check's alert resolves after this many healthy checks in a row "
            "(hysteresis: a score near its threshold does not fire and resolve by turns)"
        ),
    )
    multivariate_drift: bool = Field(
        True,
        description=(
            "sequential input drift: one more chart on each event's distance from the "
            "reference's principal components (a change of correlation that leaves every "
            "feature's own distribution unchanged)"
        ),
    )
    false_alarm_events: float = Field(
        1e7,
        gt=1,
        description=(
            "sequential input drift: events per false alarm per model on a stationary "
            "stream (the charts' thresholds are derived from it and the reference's size)"
        ),
    )
    drift_rule: DriftRule = Field(
        "max",
        description=(
            "how features make the model's input-drift decision: max (any feature over its "
            "threshold; the original rule), share (a share of features drifted), bonferroni "
            "or bh (p-values corrected for multiple testing against --drift-alpha), gate "
            "(corrected p-value at --drift-alpha AND effect size AND sample size)"
        ),
    )
    drift_share: float = Field(0.5, gt=0, le=1, description="share of drifted features (share)")
    drift_alpha: float = Field(0.01, gt=0, lt=1, description="level of corrected p-values")
    gate_effect: GateEffect = Field(
        "psi",
        description=(
            "gate rule: effect size measure, psi, wasserstein (normalised by the reference's "
            "standard deviation) or jensenshannon"
        ),
    )
    gate_min_effect: float | None = Field(
        None,
        gt=0,
        description=(
            "gate rule: smallest effect that counts as drift; default: the threshold of the "
            "effect's test (psi 0.2, wasserstein 0.1, jensenshannon 0.1, or test_thresholds)"
        ),
    )
    gate_min_samples: int = Field(
        100, gt=0, description="gate rule: values of a feature needed in window and reference"
    )
    gate_correction: Correction = Field(
        "bh", description="gate rule: multiple-testing correction, bh or bonferroni"
    )
    test_thresholds: dict[str, float] = Field(
        default_factory=dict, description="threshold per test (psi, jensenshannon, ...)"
    )
    dq_missing_share: float = Field(0.2, gt=0, le=1, description="data quality: missing values")
    dq_nonfinite_share: float = Field(0.01, gt=0, le=1, description="data quality: NaN/inf")
    dq_out_of_range_share: float = Field(
        0.1, gt=0, le=1, description="data quality: values outside the reference's range"
    )
    dq_unseen_share: float = Field(
        0.05, gt=0, le=1, description="data quality: categories the reference never held"
    )
    version_policy: VersionPolicy = Field(
        "separate",
        description=(
            "separate: a model's events with a new model_version start that version's own "
            "window (key <model>@<version>), judged against <model>@<version>'s reference "
            "where one exists, else the model's; shared: every version in one window"
        ),
    )
    max_versions: int = Field(
        3,
        ge=1,
        le=100,
        description=(
            "separate versions: the newest this many versions of a model are kept (windows, "
            "/status, metric series); an older one is dropped when a newer one starts"
        ),
    )
    compare_versions: VersionComparison | None = Field(
        None,
        description=(
            "per model (YAML models.<name>.compare_versions: {baseline: v1, candidate: v2}): "
            "the candidate's inputs and predictions also tested against the baseline's live "
            "window (needs version_policy separate)"
        ),
    )
    segment_by: list[str] = Field(
        default_factory=list,
        description=(
            "features whose values split a model's windows (YAML, usually per model: "
            "models.<name>.segment_by: [country]); each frequent value its own window"
        ),
    )
    max_segments: int = Field(
        10,
        ge=1,
        le=1000,
        description="segments per model (and version) with their own window; the rest: other",
    )
    segment_min_events: int = Field(
        100, ge=1, description="events of a value before it gets its own segment window"
    )
    features: dict[str, FeatureSettings] = Field(default_factory=dict)
    models: dict[str, ModelSettings] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _comparison_has_versions(self) -> DetectorSettings:
        """Comparing versions needs each version's own window."""
        if self.version_policy == "separate":
            return self
        named = [f"models.{n}." for n, m in sorted(self.models.items()) if m.compare_versions]
        if self.compare_versions is not None or named:
            where = named[0] if named else ""
            raise ValueError(
                f"{where}compare_versions needs version_policy separate (each version its "
                "own window), not shared"
            )
        return self

    @model_validator(mode="after")
    def _gate_can_fire(self) -> DetectorSettings:
        """A gate that no window can pass is a configuration error, not a silent monitor."""
        for name in [None, *sorted(self.models)]:
            own = self if name is None else self.for_model(name)
            if own.drift_rule != "gate":
                continue
            where = "" if name is None else f"models.{name}: "
            if own.gate_min_samples > own.window_size:
                raise ValueError(
                    f"{where}gate_min_samples {own.gate_min_samples} exceeds window_size "
                    f"{own.window_size}: the gate rule could never fire"
                )
            if own.gate_effect == "jensenshannon" and own.gate_threshold() >= JS_DISTANCE_MAX:
                raise ValueError(
                    f"{where}gate minimum effect {own.gate_threshold():g} is not below the "
                    f"largest Jensen-Shannon distance sqrt(ln 2) = {JS_DISTANCE_MAX:.4f}: the "
                    "gate rule could never fire"
                )
        return self

    def silent_window_options(self) -> list[str]:
        """Options set here (or per model) that judge the window test, while the sequential
        rule raises the input-drift alerts: worth a warning at start-up, not an error (the
        window test still feeds /status, the gauges and the backtest report)."""
        notes = []
        scopes = [("", self, self.model_fields_set)]
        scopes += [
            (f"models.{name}.", self.for_model(name), own.model_fields_set)
            for name, own in sorted(self.models.items())
        ]
        for where, own, given in scopes:
            silent = sorted(given & set(WINDOW_JUDGMENT))
            if silent and own.input_drift_rule == "sequential":
                notes.append(
                    f"{where}{', '.join(silent)} judge the window test, which raises no "
                    "input-drift alert for a model with sequential charts under "
                    "input_drift_rule sequential (the default): set "
                    f"{where}input_drift_rule to window or both for its alerts"
                )
        return notes

    @property
    def effective_min_window(self) -> int:
        return min(self.min_window or self.window_size, self.window_size)

    def gate_threshold(self) -> float:
        """The gate rule's minimum effect: its own setting, else its effect test's threshold."""
        if self.gate_min_effect is not None:
            return self.gate_min_effect
        return self.threshold_of(self.gate_effect)

    def threshold_of(self, test: str, feature: str | None = None) -> float:
        """The threshold a feature's test is judged by (feature > test > default)."""
        if feature is not None:
            own = self.features.get(feature)
            if own is not None and own.threshold is not None:
                return own.threshold
        if test in self.test_thresholds:
            return self.test_thresholds[test]
        return self.drift_threshold if test == "ks" else DEFAULT_TEST_THRESHOLDS[test]

    def test_of(self, feature: str, categorical: bool) -> str:
        own = self.features.get(feature)
        if own is not None and own.test is not None:
            test: str = own.test
        else:
            test = self.categorical_test if categorical else self.numeric_test
        if test != "auto":
            return test
        if not categorical:
            return "ks"
        return "chi2" if self.window_size <= AUTO_CHI2_MAX_WINDOW else "jensenshannon"

    def for_model(self, model: str) -> DetectorSettings:
        """These settings with the model's overrides applied (computed once per model)."""
        own = self.models.get(model)
        if own is None:
            return self
        given = own.model_dump(exclude={"features", "compare_versions"})
        update = {k: v for k, v in given.items() if v is not None}
        update["features"] = {**self.features, **own.features}
        if own.compare_versions is not None:  # kept as the object (no validation here)
            update["compare_versions"] = own.compare_versions
        return self.model_copy(update=update)
