"""Options of the late-label join (contract §2), mixed into the run settings.

Kept out of config.py so that the label options live beside each other and the settings
module stays readable; `Settings` inherits them, so they are command-line options,
environment variables and YAML keys like any other.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, model_validator

# Memory per model with labels (see pending.py): preallocated arrays, per horizon slot.
RING_BYTES_PER_SLOT = 50
INDEX_BYTES_PER_PENDING = 100  # the id index (a dict) per prediction awaiting its label


class LabelSettings(BaseModel):
    """Where late labels come from and how long a prediction waits for its label."""

    labels_topic: str | None = Field(
        None,
        min_length=1,
        description=(
            "topic of late labels (contract §2; its conventional name is `labels`), keyed by "
            "model, as many partitions as the predictions topic; joining is off when unset"
        ),
    )
    label_horizon_events: int = Field(
        10_000,
        gt=0,
        le=10_000_000,
        description=(
            "per model: predictions kept awaiting a label; the oldest beyond it are evicted "
            f"(about {RING_BYTES_PER_SLOT} bytes each, preallocated, plus "
            f"{INDEX_BYTES_PER_PENDING} while awaiting)"
        ),
    )
    label_horizon_seconds: float = Field(
        86_400.0,
        gt=0,
        description=(
            "per model: a prediction older (event time) than the newest one minus this "
            "is evicted: its label is late"
        ),
    )

    @model_validator(mode="after")
    def _labels_topic_apart(self) -> Self:
        """Reading labels from a topic the monitor itself reads or writes is a mistake."""
        names = ("topic", "alerts_topic", "dead_letter_topic", "changelog_topic")
        if self.labels_topic is not None and self.labels_topic in {
            getattr(self, n, None)
            for n in names  # the run settings' topics (Settings)
        }:
            raise ValueError(
                f"labels_topic {self.labels_topic!r} must differ from the predictions, alerts, "
                "dead-letter and state topics"
            )
        return self
