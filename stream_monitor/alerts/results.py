"""What one check found (a CheckResult) and where it ran (a CheckContext)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from stream_monitor.alerts.contract import Detail, FeatureResult, Kind

ScoreKind = Literal["statistic", "chart", "neg_log10_p_value"]


@dataclass(slots=True)
class CheckResult:
    """The outcome of one check of one kind; `healthy` None means it could not be judged."""

    kind: Kind
    test: str
    score: float
    threshold: float
    healthy: bool | None
    details: dict[str, Detail] = field(default_factory=dict)
    reason: str | None = None  # why it could not be judged
    # Per-feature results are built only when an alert needs them (p-values cost more
    # than the statistics they come from).
    feature_results: Callable[[], list[FeatureResult]] | None = None
    # (feature, test, score) without p-values: cheap, for per-feature gauges
    feature_scores: Callable[[], list[tuple[str, str, float]]] | None = None
    # the firing state it belongs to, when not its kind's (sequential input drift keeps
    # its own beside the window test's)
    channel: str | None = None
    # False for a result that informs but does not decide (the window test's input drift
    # when the sequential charts raise that alert): no alert, no retraining, no gauge of
    # detection
    alerting: bool = True
    # what the score is: "statistic" (a test statistic, a distance, an error), "chart" (a
    # sequential chart's value) or "neg_log10_p_value" (-log10 of a p-value, against
    # -log10 of its level: p-values themselves are never compared as scores)
    score_kind: ScoreKind = "statistic"
    higher_is_worse: bool = True  # False for accuracy: the alert is below its threshold

    @property
    def state_key(self) -> str:
        return self.channel or self.kind

    def features(self) -> list[FeatureResult]:
        return [] if self.feature_results is None else self.feature_results()


@dataclass(slots=True)
class CheckContext:
    """Where and when a check ran: the last event of the window."""

    model: str
    model_version: str | None
    events_seen: int
    window_size: int
    window_start: float
    window_end: float
    topic: str
    partition: int
    offset: int
    # set for a check run on label arrival (the labels joined so far): its ids stay distinct
    # from those of other checks at the same events_seen
    labels_joined: int | None = None
    # the key the model's state is kept under when it is not the model: `model@version`
    # (each version its own window); alert ids are per key
    key: str | None = None
    reference_id: str | None = None  # of the reference the check judged against
    segment: str | None = None  # a segment's window (`country=FR`, or `other`)

    @property
    def model_key(self) -> str:
        return self.key or self.model
