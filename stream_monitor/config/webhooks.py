"""Settings of one alert webhook (Slack or JSON): where, which alerts, how hard to retry."""

from __future__ import annotations

import urllib.parse
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from stream_monitor.alerts.contract import KINDS, Alert

Status = Literal["firing", "resolved"]
STATUSES: tuple[Status, ...] = ("firing", "resolved")
_SEVERITY_RANK = {"warning": 0, "critical": 1}


class WebhookSettings(BaseModel):
    """One webhook (YAML: an item of `webhooks:`). The URL is secret."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: SecretStr = Field(description="http(s) URL to POST to; a secret, never logged")
    format: Literal["slack", "json"] = Field(
        "json", description="slack: a Slack message; json: the alert's contract JSON"
    )
    name: str | None = Field(
        None, min_length=1, description="label in logs and stats (default webhook-<n>)"
    )
    kinds: list[str] | None = Field(None, description="alert kinds to send (null: all)")
    min_severity: Literal["warning", "critical"] = "warning"
    statuses: list[Status] = Field(default_factory=lambda: list(STATUSES), min_length=1)
    timeout_s: float = Field(5.0, gt=0, description="timeout of one request")
    max_retries: int = Field(5, ge=0, description="retries after the first attempt")
    backoff_s: float = Field(0.5, gt=0, description="first retry delay; doubles each retry")
    max_backoff_s: float = Field(30.0, gt=0, description="cap of a retry delay and Retry-After")
    rate_per_s: float = Field(1.0, gt=0, description="requests per second (token bucket)")
    burst: int = Field(5, ge=1, description="requests allowed back to back (bucket size)")
    queue_size: int = Field(1000, ge=1, description="alerts waiting; more are dropped")

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("empty list: leave kinds unset (null) to send every kind")
        unknown = sorted(set(value) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown kinds {unknown} (known: {', '.join(KINDS)})")
        return value

    @model_validator(mode="after")
    def _http_url(self) -> WebhookSettings:
        # An "after" check: the error's input is the whole mapping, never the URL alone,
        # and the message does not repeat the URL.
        parts = urllib.parse.urlsplit(self.url.get_secret_value())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url: must be an http:// or https:// URL with a host")
        return self

    def matches(self, alert: Alert) -> bool:
        """Whether this webhook wants the alert (kind, severity and status filters)."""
        return (
            (self.kinds is None or alert.kind in self.kinds)
            and alert.status in self.statuses
            and _SEVERITY_RANK[alert.severity] >= _SEVERITY_RANK[self.min_severity]
        )
