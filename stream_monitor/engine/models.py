"""What the engine keeps about one model, and where a check of it stands."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from stream_monitor.alerts.results import CheckContext, CheckResult
from stream_monitor.alerts.transitions import FiringAlerts
from stream_monitor.arrays import FloatArray, IntArray
from stream_monitor.checks.concept import ErrorStream
from stream_monitor.checks.plan import CheckPlan
from stream_monitor.checks.sequential import (
    CategoryRanks,
    build_charts,
    wants_charts,
)
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.decode.arrays import EventArrays
from stream_monitor.decode.predictions import ModelEvents
from stream_monitor.detectors.sequential_design import ReferenceTooSmall
from stream_monitor.kernels import SequentialCharts
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.sources.records import RecordBatch
from stream_monitor.window.class_tally import ClassTally
from stream_monitor.window.ring import ModelWindow, WindowBlock

log = logging.getLogger(__name__)


@dataclass(slots=True)
class MonitoredModel:
    """Everything the engine keeps about one model."""

    name: str
    reference: PreparedReference | None
    feature_names: tuple[str, ...]
    settings: DetectorSettings
    plan: CheckPlan  # rebuilt whenever the reference changes
    window: ModelWindow | None = None
    events_seen: int = 0
    since_check: int = 0
    checks: int = 0
    version: str | None = None
    alerts: FiringAlerts = field(default_factory=FiringAlerts)
    last_results: list[CheckResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bootstrap_rows: list[FloatArray] = field(default_factory=list)
    bootstrap_predictions: list[FloatArray] = field(default_factory=list)
    # the events a bootstrapped reference was built from (kept to persist and restore it)
    bootstrap_source: tuple[FloatArray, FloatArray] | None = None
    partition: tuple[str, int] | None = None
    errors: ErrorStream = field(default_factory=lambda: ErrorStream(0.002))
    class_tally: ClassTally | None = None  # class-label codes of the window's rows
    labels_joined: int = 0  # late labels joined to this model's predictions
    charts: SequentialCharts | None = None  # sequential input drift (checks/sequential.py)
    chart_ranks: CategoryRanks | None = None  # the charts' ranks of categorical features
    chart_features: tuple[str, ...] = ()  # the features the charts watch, in their order
    # the model `name` is a key of: `name` itself, or the model of `model@version` when
    # each version keeps its own window (then `version` never changes)
    model_name: str = ""
    started_at: int = 0  # ordinal of the key's first event among the model's (oldest first)
    # the stream it belongs to (the model, or `model@version`) and, for a segment's window
    # (`<stream>#country=FR`, engine/segments.py), its segment
    stream: str = ""
    segment: str | None = None
    segment_counts: dict[str, int] | None = None  # `other`: the values not admitted yet

    @classmethod
    def start(
        cls,
        name: str,
        reference: PreparedReference | None,
        feature_names: tuple[str, ...],
        settings: DetectorSettings,
        model_name: str | None = None,
        stream: str | None = None,
        segment: str | None = None,
    ) -> MonitoredModel:
        model = cls(
            name,
            reference,
            feature_names,
            settings,
            CheckPlan.build(settings, reference),
            errors=ErrorStream.for_settings(settings),
            model_name=model_name or name,
            stream=stream or name,
            segment=segment,
        )
        model.charts = model.new_charts()
        return model

    def use_reference(self, reference: PreparedReference) -> None:
        """Judge this model against `reference` from now on: its plan and charts are
        rebuilt."""
        self.reference = reference
        self.plan = CheckPlan.build(self.settings, reference)
        self.charts = self.new_charts()

    def new_charts(self) -> SequentialCharts | None:
        """Fresh sequential charts against the model's reference, when it gets them."""
        reference = self.reference
        if not wants_charts(self.settings, reference):
            return None
        assert reference is not None
        categorical = reference.categorical
        self.chart_ranks = None if categorical is None else CategoryRanks.of(categorical)
        try:
            built = build_charts(self.name, reference, self.settings, self.events_seen)
        except ReferenceTooSmall as e:
            note = f"{e}; its input drift is judged by the window test (give a larger reference)"
            self.notes.append(note)  # logged with the model's other notes
            return None
        self.notes.extend(built.notes)
        self.chart_features = built.names
        return built.charts

    def new_window(self, n_features: int | None = None) -> ModelWindow:
        """An empty window for this model's plan and reference."""
        ref = self.reference
        n = ref.n_features if n_features is None and ref is not None else n_features
        return ModelWindow(self.plan.window_size, ref, n or 0, with_bins=self.plan.needs_bins)

    def bootstrap_arrays(self) -> tuple[FloatArray, FloatArray]:
        """The bootstrap events so far (or all of them once the reference is built)."""
        if self.bootstrap_source is not None:
            return self.bootstrap_source
        n = len(self.feature_names)
        if not self.bootstrap_rows:
            return np.empty((0, n)), np.empty(0)
        return np.concatenate(self.bootstrap_rows), np.concatenate(self.bootstrap_predictions)

    def context(
        self, batch: RecordBatch, index: int, labels_joined: int | None = None
    ) -> CheckContext:
        """Where a check of this model stands: its window, and the record that completed it."""
        window = self.window
        assert window is not None
        return CheckContext(
            model=self.model_name,
            model_version=self.version,
            events_seen=self.events_seen,
            window_size=window.count,
            window_start=window.oldest_timestamp(),
            window_end=window.newest_timestamp(),
            topic=batch.topics[index],
            partition=batch.partitions[index],
            offset=batch.offsets[index],
            labels_joined=labels_joined,
            key=self.own_key,
            reference_id=None if self.reference is None else self.reference.reference_id,
            segment=self.segment,
        )

    @property
    def own_key(self) -> str | None:
        """The key, when it is not the model's name (a version's own window)."""
        return self.name if self.name != self.model_name else None


def cadence(count: int, done: int, every: int) -> Iterator[tuple[int, bool]]:
    """Split `count` new items of a stream that has `done` so far into runs, each ending at
    the next multiple of `every` or at the last item: yields (items in the run, check due).

    The one place a model's check cadence is counted, for its events and its late labels.
    """
    while count > 0:
        take = min(count, every - done % every)
        count -= take
        done += take
        yield take, done % every == 0


def feature_notes(reference: PreparedReference, first: dict[str, object]) -> list[str]:
    """What an operator should know when a model's events and its reference disagree."""
    known = set(reference.feature_names)
    if reference.categorical is not None:
        known |= set(reference.categorical.feature_names)
    notes = []
    unknown = sorted(set(first) - known)
    absent = sorted(known - set(first))
    if unknown:
        notes.append(f"features not in the reference (ignored): {unknown}")
    if absent:
        notes.append(f"reference features absent from events: {absent}")
    return [*notes, *reference.notes]


def window_block(
    model: MonitoredModel, events: ModelEvents, arrays: EventArrays
) -> tuple[WindowBlock, tuple[IntArray, IntArray] | None]:
    """The window block of a model's events (reference look-ups done) and, for class
    labels, the codes of the predicted and actual labels."""
    window = model.window
    reference = model.reference if window is not None else None
    labels = None
    if arrays.has_classes and window is not None:
        window.classes = True
        if model.class_tally is None:
            model.class_tally = ClassTally.empty(window.size)
        labels = (
            model.class_tally.codes(arrays.predictions),
            model.class_tally.codes(arrays.actuals),
        )
    codes = None
    if reference is not None and reference.categorical is not None:
        codes = reference.categorical.encode(arrays.features_of(events))
    class_codes = None
    if reference is not None and reference.classes is not None:
        class_codes = reference.classes.tables[0].codes(arrays.predictions)
    block = WindowBlock(
        arrays.features,
        arrays.prediction,
        arrays.actual,
        arrays.latency_ms,
        arrays.timestamp,
        reference,
        codes,
        with_bins=window is not None and window.numeric_bin.shape[1] > 0,
        error=arrays.error,
        prediction_class=class_codes,
    )
    return block, labels
