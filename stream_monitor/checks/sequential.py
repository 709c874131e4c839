"""Sequential input drift: a model's charts (`_native.SequentialCharts`), and their
transitions as results the alert state machine books.

The charts move at every event, natively (docs/detectors.md); a transition (the alert fires
at the event where a chart crosses its threshold, or resolves at the event where every
fired chart is back) waits in the charts until the engine takes it, after the run of
events it happened in and before any check due at that run's end. The result carries the
crossing event itself, so the alert is the same whatever the batches were.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from stream_monitor.alerts.contract import FeatureResult
from stream_monitor.alerts.results import CheckContext, CheckResult
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.detectors.sequential_design import ChartDesign, normal_scores
from stream_monitor.kernels import NormalScores, SequentialCharts
from stream_monitor.reference.prepared import PreparedReference

CHANNEL = "input_drift/sequential"  # its own firing state, beside the window check's
TEST = "cusum"
DIRECTIONS = ("up", "down", "scale")
_TABLES: dict[int, NormalScores] = {}


def design_size(m: int) -> int:
    """The reference size a design is solved for: m rounded down to two significant
    digits (a smaller m gives a slightly higher threshold), so that references whose
    columns hold a few missing values share one design."""
    if m < 100:
        return max(m, 1)
    scale: int = 10 ** (len(str(m)) - 2)
    return m // scale * scale


def scores_for(m: int) -> NormalScores:
    table = _TABLES.get(m)
    if table is None:
        table = _TABLES[m] = NormalScores(normal_scores(m))
    return table


def wants_charts(settings: DetectorSettings, reference: PreparedReference | None) -> bool:
    """Whether a model gets charts: the rule asks for them and the reference is exact and
    numeric (a compact reference's ranks are approximate: its window checks remain)."""
    return (
        settings.input_drift_rule != "window"
        and reference is not None
        and reference.summary is None
        and reference.n_features > 0
    )


def build_charts(
    name: str,
    reference: PreparedReference,
    settings: DetectorSettings,
    events_seen: int,
) -> SequentialCharts:
    """Fresh charts of a model judged against `reference` from event `events_seen` on."""
    sizes = [int(m) for m in reference.sizes]
    design = ChartDesign.solve(tuple(design_size(m) for m in sizes), settings.false_alarm_events)
    return SequentialCharts(
        name,
        design.k,
        design.c,
        [list(row) for row in design.thresholds],
        [scores_for(m) for m in sizes],
        events_seen,
    )


Hit = tuple[int, int, float, float, int, float]
Pending = tuple[str, int, int, float, str | None, list[Hit]]


@dataclass(frozen=True, slots=True)
class Transition:
    """One taken from the charts: the event it happened at and what crossed."""

    status: str
    event: int
    position: int
    timestamp: float
    version: str | None
    hits: list[Hit]

    def result(self, feature_names: tuple[str, ...]) -> CheckResult:
        """The result the alert state machine books for this transition."""
        firing = self.status == "firing"
        # the chart furthest past its threshold speaks for the alert
        lead = max(self.hits, key=lambda h: h[2] / h[3]) if self.hits else None
        details: dict[str, float | str | None] = {
            "score_kind": "chart",
            "charts": ", ".join(
                f"{feature_names[h[0]]}:{DIRECTIONS[h[1]]}={h[2]:.2f}/{h[3]:.2f}" for h in self.hits
            ),
        }
        if lead is not None:
            details["direction"] = DIRECTIONS[lead[1]]
            details["change_start_event"] = lead[4] if firing else None
        return CheckResult(
            kind="input_drift",
            test=TEST,
            score=lead[2] if lead else math.nan,
            threshold=lead[3] if lead else math.nan,
            healthy=not firing,
            details=details,
            feature_results=_features(self.hits, feature_names, drifted=firing),
            channel=CHANNEL,
        )

    def context(
        self, model: str, version: str | None, where: Callable[[int], tuple[str, int, int]]
    ) -> CheckContext:
        """Where the transition happened: its event, the evidence's span (from the estimated
        start of the change to the crossing) and its record's position."""
        topic, partition, offset = where(self.position)
        start = min((h[4] for h in self.hits), default=self.event)
        starts = [h[5] for h in self.hits if math.isfinite(h[5])]
        return CheckContext(
            model=model,
            model_version=self.version if self.version is not None else version,
            events_seen=self.event,
            window_size=self.event - start,
            window_start=min(starts) if starts else self.timestamp,
            window_end=self.timestamp,
            topic=topic,
            partition=partition,
            offset=offset,
        )


def _features(
    hits: list[Hit], names: tuple[str, ...], drifted: bool
) -> Callable[[], list[FeatureResult]]:
    def build() -> list[FeatureResult]:
        return [
            FeatureResult(name=names[h[0]], test=TEST, score=h[2], p_value=None, drifted=drifted)
            for h in hits
        ]

    return build


def take(charts: SequentialCharts, versions: dict[int, str | None] | None) -> list[Transition]:
    """The transitions waiting in `charts`, oldest first; `versions` (batch position ->
    model_version) fills in what the Python path's charts could not know."""
    out = []
    for status, event, position, timestamp, version, hits in charts.take_pending():
        if version is None and versions is not None:
            version = versions.get(position)
        out.append(Transition(status, event, position, timestamp, version, hits))
    return out
