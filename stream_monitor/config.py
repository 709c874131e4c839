"""Settings of the monitor: command line over environment over YAML file.

Every option of `stream-monitor run` is a field here. The same field names serve the YAML
file (`--config`), the environment (`STREAM_MONITOR_<NAME>`) and the command line
(`--name-with-dashes`), so one table documents all three.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from stream_monitor.detector_options import (
    AUTO_CHI2_MAX_WINDOW as AUTO_CHI2_MAX_WINDOW,
)
from stream_monitor.detector_options import (
    CATEGORICAL_TESTS as CATEGORICAL_TESTS,
)
from stream_monitor.detector_options import (
    DEFAULT_TEST_THRESHOLDS as DEFAULT_TEST_THRESHOLDS,
)
from stream_monitor.detector_options import (
    JS_DISTANCE_MAX as JS_DISTANCE_MAX,
)
from stream_monitor.detector_options import (
    NUMERIC_TESTS as NUMERIC_TESTS,
)
from stream_monitor.detector_options import (
    PVALUE_TESTS as PVALUE_TESTS,
)
from stream_monitor.detector_options import (
    CategoricalTest as CategoricalTest,
)
from stream_monitor.detector_options import (
    Correction as Correction,
)
from stream_monitor.detector_options import (
    DriftRule as DriftRule,
)
from stream_monitor.detector_options import (
    FeatureSettings as FeatureSettings,
)
from stream_monitor.detector_options import (
    GateEffect as GateEffect,
)
from stream_monitor.detector_options import (
    ModelSettings as ModelSettings,
)
from stream_monitor.detector_options import (
    NumericTest as NumericTest,
)
from stream_monitor.detector_options import (
    PredictionTest as PredictionTest,
)
from stream_monitor.label_settings import LabelSettings
from stream_monitor.webhooks import WebhookSettings

ENV_PREFIX = "STREAM_MONITOR_"


class ConfigError(Exception):
    """A configuration that cannot start the monitor; the message names field and reason."""


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
    features: dict[str, FeatureSettings] = Field(default_factory=dict)
    models: dict[str, ModelSettings] = Field(default_factory=dict)

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
        update = {k: v for k, v in own.model_dump(exclude={"features"}).items() if v is not None}
        update["features"] = {**self.features, **own.features}
        return self.model_copy(update=update)


class Settings(DetectorSettings, LabelSettings):
    """All options of `stream-monitor run` (contract §6) plus the engine's and the labels'."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    bootstrap_servers: str = "localhost:9092"
    topic: str = Field("predictions", min_length=1)
    alerts_topic: str = Field("alerts", min_length=1)
    dlq_topic: str | None = Field(None, description="dead-letter topic; default <topic>.dlq")
    group_id: str = Field("stream-monitor", min_length=1)
    reference: Path | None = None
    metrics_port: int = Field(9108, ge=0, le=65535)
    metrics_host: str = "0.0.0.0"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    processing_guarantee: Literal["exactly-once", "at-least-once"] = Field(
        "exactly-once",
        description=(
            "exactly-once: alerts, state and offsets commit in one Kafka transaction; "
            "at-least-once: offsets commit after alerts and state are acknowledged"
        ),
    )
    commit_interval_ms: int = Field(
        100,
        ge=0,
        le=60_000,
        description="exactly-once: a transaction spans the batches of this long (0: one each); "
        "a batch that raises alerts commits at once",
    )
    state_topic: str | None = Field(
        None, description="compacted changelog of window and alert state; default <group_id>-state"
    )
    instance_id: str | None = Field(
        None,
        description=(
            "stable name of this process (e.g. the pod name) for its transactional id; a "
            "restarted process with the same name fences its predecessor at once"
        ),
    )
    batch_size: int = Field(1000, gt=0, le=100_000, description="messages per consume() call")
    max_batch_wait_ms: int = Field(
        50,
        ge=1,
        le=10_000,
        description=(
            "how long consume() waits for a batch to fill: at low traffic a batch is handled "
            "(and its alerts published) after at most this long"
        ),
    )
    kafka: dict[str, str | int | float | bool | SecretStr] = Field(
        default_factory=dict,
        description=(
            "extra librdkafka settings for consumer and producer; values of keys naming a "
            "password or secret are kept as secrets (never shown or logged)"
        ),
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    feature_metrics: int = Field(
        0,
        ge=0,
        le=1000,
        description="per-feature drift gauges for the first N features of each model (0: off)",
    )
    webhooks: list[WebhookSettings] = Field(
        default_factory=list, description="alert webhooks (Slack or JSON), from the YAML file"
    )

    @field_validator("reference")
    @classmethod
    def _reference_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.exists():
            raise ValueError(f"no such file or directory: {value}")
        return value

    @field_validator("kafka")
    @classmethod
    def _hide_secrets(
        cls, value: dict[str, str | int | float | bool | SecretStr]
    ) -> dict[str, str | int | float | bool | SecretStr]:
        return {
            k: SecretStr(str(v)) if _is_secret(k) and not isinstance(v, SecretStr) else v
            for k, v in value.items()
        }

    def kafka_settings(self) -> dict[str, str | int | float | bool]:
        """The librdkafka settings with their secrets revealed (for the clients only)."""
        return {
            k: v.get_secret_value() if isinstance(v, SecretStr) else v
            for k, v in self.kafka.items()
        }

    @model_validator(mode="after")
    def _topics_differ(self) -> Settings:
        if self.alerts_topic == self.topic:
            raise ValueError("alerts_topic must differ from topic")
        return self

    @property
    def dead_letter_topic(self) -> str:
        return self.dlq_topic or f"{self.topic}.dlq"

    @property
    def changelog_topic(self) -> str:
        return self.state_topic or f"{self.group_id}-state"

    def detector_settings(self) -> DetectorSettings:
        return DetectorSettings.model_construct(
            **{name: getattr(self, name) for name in DetectorSettings.model_fields}
        )


def _is_secret(key: str) -> bool:
    return "password" in key or "secret" in key or key.endswith((".key.pem", "jaas.config"))


class _MappingSource(PydanticBaseSettingsSource):
    """A settings source over a dict already read (the YAML file)."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def load_settings(cli: dict[str, Any], config_file: Path | None = None) -> Settings:
    """Build the settings with the precedence command line > environment > YAML file.

    `cli` holds only the options given on the command line. Errors become a ConfigError
    whose message names every offending field, its source value and the reason.
    """
    file_data = read_yaml(config_file) if config_file is not None else {}

    class _Layered(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, _MappingSource(settings_cls, file_data))

    try:
        layered = _Layered(**cli)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    return layered  # a Settings (its subclass only chose the sources)


def format_validation_error(exc: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(settings)"
        reason = err["msg"]
        if err["type"] == "extra_forbidden":
            reason = "unknown option"
        value = err.get("input")
        secret = bool(err["loc"]) and err["loc"][0] in ("webhooks", "kafka")  # URLs, passwords
        shown = "" if secret or isinstance(value, dict) or value is None else f" (got {value!r})"
        lines.append(f"  {field}: {reason}{shown}")
    return "\n".join(lines)
