"""All options of `stream-monitor run`: the detector settings plus Kafka, labels, webhooks.

Every option of `stream-monitor run` is a field here. The same field names serve the YAML
file (`--config`), the environment (`STREAM_MONITOR_<NAME>`) and the command line
(`--name-with-dashes`), so one table documents all three.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import SettingsConfigDict

from stream_monitor.config.detector import DetectorSettings
from stream_monitor.config.labels import LabelSettings
from stream_monitor.config.webhooks import WebhookSettings

ENV_PREFIX = "STREAM_MONITOR_"


class Settings(DetectorSettings, LabelSettings):
    """All options of `stream-monitor run` (contract §6) plus the engine's and the labels'."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    bootstrap_servers: str = "localhost:9092"
    topic: str = Field("predictions", min_length=1)
    alerts_topic: str = Field("alerts", min_length=1)
    dlq_topic: str | None = Field(None, description="dead-letter topic; default <topic>.dlq")
    group_id: str = Field("stream-monitor", min_length=1)
    reference: Path | None = None
    references_topic: str | None = Field(
        None,
        description=(
            "compacted topic of references (`stream-monitor reference publish`), read by "
            "every member; a reference there wins over --reference's for the same key (off "
            "when unset)"
        ),
    )
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
    # 5000, not 1000: under a backlog each batch's fixed costs (its transaction, changelog
    # records, metrics) are shared by more events (docs/benchmarks.md, stage 7)
    batch_size: int = Field(5000, gt=0, le=100_000, description="messages per consume() call")
    max_batch_wait_ms: int = Field(
        50,
        ge=1,
        le=10_000,
        description=(
            "how long consume() waits for a batch to fill: at low traffic a batch is handled "
            "(and its alerts published) after at most this long"
        ),
    )
    native_threads: int | None = Field(
        None,
        ge=1,
        le=64,
        description=(
            "threads the native core runs a batch's models on, side by side "
            "(default: one per core the process may use, at most 8)"
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
