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

import numpy as np
import numpy.typing as npt

from stream_monitor.alerts.contract import Detail, FeatureResult
from stream_monitor.alerts.results import CheckContext, CheckResult
from stream_monitor.arrays import IntArray
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.detectors.categorical import MISSING, CategoricalReference
from stream_monitor.detectors.ks import KeyArray, ks_keys, missing_key
from stream_monitor.detectors.sequential_design import (
    ChartDesign,
    ReferenceTooSmall,
    normal_scores,
)
from stream_monitor.kernels import NormalScores, SequentialCharts
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.reference.projection import NAME as MULTIVARIATE
from stream_monitor.reference.projection import ResidualProjection
from stream_monitor.window.ring import WindowBlock

CHANNEL = "input_drift/sequential"  # its own firing state, beside the window check's
TEST = "cusum"
DIRECTIONS = ("up", "down", "scale")
SCALE_CHART = 2
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
    """Whether a model gets charts: the rule asks for them and the reference is exact (a
    compact reference's ranks are approximate: its models keep the window test)."""
    return (
        settings.input_drift_rule != "window"
        and reference is not None
        and reference.summary is None
        and len(chart_features(reference, None)) > 0
    )


def chart_features(
    reference: PreparedReference, projection: ResidualProjection | None
) -> tuple[str, ...]:
    """The features the charts watch, in their order: numeric, categorical, then the
    multivariate chart's residual."""
    categorical = reference.categorical
    names = reference.feature_names + (() if categorical is None else categorical.feature_names)
    return names + ((MULTIVARIATE,) if projection is not None else ())


def chart_sizes(reference: PreparedReference, projection: ResidualProjection | None) -> list[int]:
    """Each charted feature's reference size (values its ranks are taken among)."""
    sizes = [int(m) for m in reference.sizes]
    if reference.categorical is not None:
        sizes += [int(m) for m in reference.categorical.sizes]
    if projection is not None:
        sizes.append(projection.size)
    return sizes


@dataclass(frozen=True, slots=True)
class CategoryRanks:
    """The reference counts (left, right) of each category code, categories ordered by
    their reference frequency, most frequent first, and unseen ones above them all: the up
    chart watches a move towards rarer or new categories, the down chart one towards the
    common ones, the scale chart one towards both ends (docs/detectors.md)."""

    left: IntArray  # (K_max + 2, C): row code + 2 (MISSING -2, UNSEEN -1, then categories)
    right: IntArray

    @classmethod
    def of(cls, reference: CategoricalReference) -> CategoryRanks:
        rows = int(reference.n_categories.max(initial=0)) + 2
        left = np.zeros((rows, reference.n_features), dtype=np.int64)
        right = np.zeros_like(left)
        for j, table in enumerate(reference.tables):
            counts = table.counts
            order = np.argsort(-counts, kind="stable")
            below = np.zeros(counts.size, dtype=np.int64)
            below[order] = np.cumsum(counts[order]) - counts[order]
            total = int(counts.sum())
            left[1, j] = right[1, j] = total  # unseen: above every reference value
            left[2 : 2 + counts.size, j] = below
            right[2 : 2 + counts.size, j] = below + counts
        return cls(left, right)

    def counts(self, codes: IntArray) -> tuple[IntArray, IntArray, npt.NDArray[np.bool_]]:
        """(left, right, missing) of an (n, C) block of codes."""
        rows = codes + 2
        cols = np.arange(codes.shape[1])
        return self.left[rows, cols], self.right[rows, cols], codes == MISSING


def chart_keys(
    block: WindowBlock, run: slice, bits: int, ranks: CategoryRanks | None
) -> tuple[KeyArray, int]:
    """The keys the charts read for rows `run` of a block: its KS keys, and with
    categorical features theirs after them (as 64-bit keys)."""
    numeric = block.ks_key[run] if block.ks_key is not None else None
    if ranks is None or block.categorical is None:
        assert numeric is not None
        return numeric, bits
    left, right, missing = ranks.counts(block.categorical[run])
    keys = ks_keys(right, left, missing)
    if numeric is None or numeric.shape[1] == 0:
        return keys, 32
    if bits != 32:  # narrow keys: unpack and pack again with 32-bit halves
        absent = numeric == missing_key(bits)
        wide = numeric.astype(np.int64)
        numeric = ks_keys(wide >> bits, wide & ((1 << bits) - 1), absent)
    return np.concatenate([numeric, keys], axis=1), 32


@dataclass(frozen=True, slots=True)
class BuiltCharts:
    """A model's new charts, the features they watch in order, and what to tell of them."""

    charts: SequentialCharts
    names: tuple[str, ...]
    notes: list[str]


def build_charts(
    name: str,
    reference: PreparedReference,
    settings: DetectorSettings,
    events_seen: int,
) -> BuiltCharts:
    """Fresh charts of a model judged against `reference` from event `events_seen` on.
    Without the multivariate chart when its reference (half the complete rows) is too small
    for the budget; `ReferenceTooSmall` when a feature's is."""
    notes: list[str] = []
    projection = reference.projection if settings.multivariate_drift else None
    try:
        return _build(name, reference, settings, events_seen, projection, notes)
    except ReferenceTooSmall as e:
        if projection is None:
            raise
        notes.append(f"no multivariate chart: {e}")
        return _build(name, reference, settings, events_seen, None, notes)


def solve_designs(
    references: dict[str, PreparedReference],
    settings: DetectorSettings,
    before: dict[str, PreparedReference] | None = None,
) -> None:
    """Solve the chart design of every model judged against one of `references` (those not
    already in `before`), before its first event: a design new to the process takes a
    fraction of a second (its thresholds, cached), better spent when the references are
    loaded than in the batch where a model first appears, which every model's events wait
    behind. A pure function of its inputs, so the charts are those they would have been."""
    for name, reference in references.items():
        if before is not None and before.get(name) is reference:
            continue
        own = settings.for_model(name)
        if not wants_charts(own, reference):
            continue
        projection = reference.projection if own.multivariate_drift else None
        for p in (projection, None) if projection is not None else (None,):
            try:
                _design(chart_sizes(reference, p), own)
                break
            except ReferenceTooSmall:  # the model's creation says so in its notes
                continue


def _design(sizes: list[int], settings: DetectorSettings) -> ChartDesign:
    """The design for charts of these reference sizes (solved once per process)."""
    return ChartDesign.solve(tuple(design_size(m) for m in sizes), settings.false_alarm_events)


def _build(
    name: str,
    reference: PreparedReference,
    settings: DetectorSettings,
    events_seen: int,
    p: ResidualProjection | None,
    notes: list[str],
) -> BuiltCharts:
    sizes = chart_sizes(reference, p)
    design = _design(sizes, settings)
    charts = SequentialCharts(
        name,
        design.k,
        design.c,
        [list(row) for row in design.thresholds],
        [scores_for(m) for m in sizes],
        events_seen,
        None if p is None else p.subspace,
    )
    return BuiltCharts(charts, chart_features(reference, p), notes)


Hit = tuple[int, int, float, float, int, float, int]
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
        details: dict[str, Detail] = {
            "charts": ", ".join(
                f"{feature_names[h[0]]}:{DIRECTIONS[h[1]]}={h[2]:.2f}/{h[3]:.2f}" for h in self.hits
            ),
        }
        if lead is not None:
            details["direction"] = _direction(lead)
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
            score_kind="chart",
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


def _direction(hit: Hit) -> str:
    """The change a chart's crossing says: up, down, or scale; a scale chart that crossed
    while the feature's mean chart stood at half its threshold or more says up or down
    (a large shift of the mean widens the scores' spread too, and crosses that chart
    first)."""
    if hit[1] == SCALE_CHART and hit[6]:
        return "up" if hit[6] > 0 else "down"
    return DIRECTIONS[hit[1]]


def _features(
    hits: list[Hit], names: tuple[str, ...], drifted: bool
) -> Callable[[], list[FeatureResult]]:
    def build() -> list[FeatureResult]:
        return [
            FeatureResult(name=names[h[0]], test=TEST, score=h[2], p_value=None, drifted=drifted)
            for h in hits
        ]

    return build


def standing(evidence: float, firing: bool) -> CheckResult:
    """The charts at a check, for observers: the largest chart value over its threshold
    (1 = alarm). It never alerts (the transitions do)."""
    return CheckResult(
        kind="input_drift",
        test=TEST,
        score=evidence,
        threshold=1.0,
        healthy=not firing,
        channel=CHANNEL,
        score_kind="chart",
        alerting=False,
    )


def take(charts: SequentialCharts, versions: dict[int, str | None] | None) -> list[Transition]:
    """The transitions waiting in `charts`, oldest first; `versions` (batch position ->
    model_version) fills in what the Python path's charts could not know."""
    out = []
    for status, event, position, timestamp, version, hits in charts.take_pending():
        if version is None and versions is not None:
            version = versions.get(position)
        out.append(Transition(status, event, position, timestamp, version, hits))
    return out
