"""The deterministic core: decode a batch, route by model, window, check every N, alert.

The engine never learns where records come from (Kafka or a file) and never reads a clock:
the same sequence of records per model gives the same checks and the same alerts.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from stream_monitor import concept, event_arrays
from stream_monitor.alerts import Alert, AlertState, CheckContext, CheckResult, rfc3339
from stream_monitor.checks import retrain_recommended, run_checks
from stream_monitor.class_labels import ClassLabels, IntArray
from stream_monitor.config import DetectorSettings
from stream_monitor.detectors.sequential import ADWIN
from stream_monitor.events import DeadLetter, ModelEvents, RecordBatch, decode_batch
from stream_monitor.feature_drift import needs_bins
from stream_monitor.reference import FloatArray, PreparedReference
from stream_monitor.reference_summary import summarise_for
from stream_monitor.windows import ModelWindow, WindowBlock

if TYPE_CHECKING:
    from stream_monitor.label_join import LabelJoin

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ModelState:
    """Everything the engine keeps about one model."""

    name: str
    reference: PreparedReference | None
    feature_names: tuple[str, ...]
    settings: DetectorSettings
    window: ModelWindow | None = None
    events_seen: int = 0
    since_check: int = 0
    checks: int = 0
    version: str | None = None
    alerts: AlertState = field(default_factory=AlertState)
    last_results: list[CheckResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bootstrap_rows: list[FloatArray] = field(default_factory=list)
    bootstrap_predictions: list[FloatArray] = field(default_factory=list)
    # the events a bootstrapped reference was built from (kept to persist and restore it)
    bootstrap_source: tuple[FloatArray, FloatArray] | None = None
    partition: tuple[str, int] | None = None
    concept: ADWIN | None = None  # change detector on the stream of errors
    concept_changed: bool = False  # a change was detected since the last check
    labels: ClassLabels | None = None  # class-label codes of the window's rows (confusion)
    labels_joined: int = 0  # late labels joined to this model's predictions (label_join.py)

    def bootstrap_arrays(self) -> tuple[FloatArray, FloatArray]:
        """The bootstrap events so far (or all of them once the reference is built)."""
        if self.bootstrap_source is not None:
            return self.bootstrap_source
        n = len(self.feature_names)
        if not self.bootstrap_rows:
            return np.empty((0, n)), np.empty(0)
        return np.concatenate(self.bootstrap_rows), np.concatenate(self.bootstrap_predictions)


@dataclass(slots=True)
class BatchOutcome:
    """What one batch produced, for the sinks and the metrics."""

    alerts: list[Alert] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    dead_letter_models: list[str] = field(default_factory=list)
    ok_counts: dict[str, int] = field(default_factory=dict)
    latencies_ms: dict[str, FloatArray] = field(default_factory=dict)
    checks: dict[str, list[CheckResult]] = field(default_factory=dict)
    check_counts: dict[str, int] = field(default_factory=dict)
    check_seconds: list[float] = field(default_factory=list)  # for the metrics, not decisions
    windows: dict[str, tuple[int, bool]] = field(default_factory=dict)  # fill, has reference
    label_counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (model, status)
    patched_rows: dict[str, IntArray] = field(default_factory=dict)  # window rows labels set


def check_context(
    state: ModelState,
    window: ModelWindow,
    batch: RecordBatch,
    index: int,
    labels_joined: int | None = None,
) -> CheckContext:
    """Where a check of this model stands: its window, and the record that completed it."""
    return CheckContext(
        model=state.name,
        model_version=state.version,
        events_seen=state.events_seen,
        window_size=window.count,
        window_start=window.oldest_timestamp(),
        window_end=window.newest_timestamp(),
        topic=batch.topics[index],
        partition=batch.partitions[index],
        offset=batch.offsets[index],
        labels_joined=labels_joined,
    )


class Engine:
    """Per-model windows and checks over batches of raw records."""

    def __init__(
        self, settings: DetectorSettings, references: dict[str, PreparedReference]
    ) -> None:
        self.settings = settings
        self.references = references
        self.models: dict[str, ModelState] = {}
        self.labels: LabelJoin | None = None  # remembers predictions for late labels when set

    # -- batches -------------------------------------------------------------------------

    def process(self, batch: RecordBatch) -> BatchOutcome:
        outcome = BatchOutcome()
        decoded = decode_batch(batch)
        outcome.dead_letters.extend(decoded.dead_letters)
        outcome.dead_letter_models.extend(decoded.dead_letter_models)
        for model, events in decoded.by_model.items():
            state = self.models.get(model) or self._new_model(model, events)
            block, good, labels = self._block(state, events, outcome)
            if not good:
                continue
            last = good[-1]
            state.partition = (batch.topics[last], batch.partitions[last])
            outcome.ok_counts[model] = len(good)
            lat = block.latency_ms[np.isfinite(block.latency_ms)]
            if lat.size:
                outcome.latencies_ms[model] = lat
            seen = state.events_seen
            self._advance(state, block, good, events, batch, outcome, labels)
            if self.labels is not None:
                self.labels.remember(state, events, good, block, seen)
        return outcome

    def forget_partitions(self, partitions: set[tuple[str, int]]) -> None:
        """Drop the models whose events came from partitions this process no longer owns."""
        for name in [n for n, s in self.models.items() if s.partition in partitions]:
            del self.models[name]

    # -- per model -----------------------------------------------------------------------

    def _new_model(self, model: str, events: ModelEvents) -> ModelState:
        reference = self.references.get(model)
        settings = self.settings.for_model(model)
        first = events.features[0]
        if reference is not None:
            state = ModelState(model, reference, reference.feature_names, settings)
            state.window = self.new_window(settings, reference)
            known = set(reference.feature_names)
            if reference.categorical is not None:
                known |= set(reference.categorical.feature_names)
            unknown = sorted(set(first) - known)
            absent = sorted(known - set(first))
            if unknown:
                state.notes.append(f"features not in the reference (ignored): {unknown}")
            if absent:
                state.notes.append(f"reference features absent from events: {absent}")
            state.notes.extend(reference.notes)
        else:
            names = tuple(sorted(k for k, v in first.items() if not isinstance(v, str | bool)))
            if settings.bootstrap_reference > 0:
                state = ModelState(model, None, names, settings)
                state.notes.append(
                    f"no reference: the first {self.settings.bootstrap_reference} events "
                    "become the reference"
                )
            else:
                state = ModelState(model, None, (), settings)
                state.notes.append(
                    "no reference: events are counted and performance/latency checked, but "
                    "input and prediction drift are not (give --reference, or "
                    "--bootstrap-reference N to take the first N events as reference)"
                )
                state.window = self.new_window(settings, None)
        for note in state.notes:
            log.warning("model %r: %s", model, note)
        self.models[model] = state
        return state

    def new_window(
        self,
        settings: DetectorSettings,
        reference: PreparedReference | None,
        n_features: int | None = None,
    ) -> ModelWindow:
        n = reference.n_features if n_features is None and reference is not None else n_features
        return ModelWindow(
            settings.window_size, reference, n or 0, with_bins=needs_bins(settings, reference)
        )

    def _block(
        self, state: ModelState, events: ModelEvents, outcome: BatchOutcome
    ) -> tuple[WindowBlock, list[int], tuple[IntArray, IntArray] | None]:
        """Arrays of a model's events (and, for class labels, the codes of predicted and
        actual labels); events whose values cannot be read become dead letters."""
        rows = event_arrays.feature_rows(state.feature_names, events.features)
        keep = list(range(len(rows)))
        try:
            features = np.array(rows, dtype=np.float64).reshape(len(rows), len(state.feature_names))
        except (TypeError, ValueError):
            features, keep = self._convert_slowly(state, rows, events, outcome)
        predictions = event_arrays.floats(
            [events.predictions[i] for i in keep] if len(keep) < len(rows) else events.predictions
        )
        if len(keep) < len(rows):
            pick = keep
            actuals = event_arrays.floats([events.actuals[i] for i in pick])
            latencies = event_arrays.floats([events.latencies[i] for i in pick])
            times = event_arrays.floats([events.timestamps[i] for i in pick])
        else:
            actuals = event_arrays.floats(events.actuals)
            latencies = event_arrays.floats(events.latencies)
            times = event_arrays.floats(events.timestamps)
        window = state.window
        reference = state.reference if window is not None else None
        every = len(keep) == len(rows)
        kept_predictions = events.predictions if every else [events.predictions[i] for i in keep]
        kept_actuals = events.actuals if every else [events.actuals[i] for i in keep]
        errors, classes = event_arrays.errors(kept_predictions, kept_actuals, predictions, actuals)
        labels = None
        if classes and window is not None:
            window.classes = True
            if state.labels is None:
                state.labels = ClassLabels.empty(window.size)
            labels = state.labels.codes(kept_predictions), state.labels.codes(kept_actuals)
        codes = None
        if reference is not None and reference.categorical is not None:
            picked = (
                events.features if len(keep) == len(rows) else [events.features[i] for i in keep]
            )
            codes = reference.categorical.encode(picked)
        class_codes = None
        if reference is not None and reference.classes is not None:
            class_codes = reference.classes.tables[0].codes(kept_predictions)
        block = WindowBlock(
            features,
            predictions,
            actuals,
            latencies,
            times,
            reference,
            codes,
            with_bins=window is not None and window.numeric_bin.shape[1] > 0,
            error=errors,
            prediction_class=class_codes,
        )
        return block, [events.index[i] for i in keep], labels

    def _convert_slowly(
        self,
        state: ModelState,
        rows: list[Sequence[object]],
        events: ModelEvents,
        outcome: BatchOutcome,
    ) -> tuple[FloatArray, list[int]]:
        names = state.feature_names
        good_rows: list[list[float]] = []
        keep: list[int] = []
        for i, row in enumerate(rows):
            try:
                good_rows.append(
                    [
                        event_arrays.feature_value(name, v)
                        for name, v in zip(names, row, strict=True)
                    ]
                )
            except ValueError as exc:
                outcome.dead_letters.append(DeadLetter(events.index[i], "bad_type", str(exc)))
                outcome.dead_letter_models.append(state.name)
                continue
            keep.append(i)
        matrix = np.array(good_rows, dtype=np.float64).reshape(len(good_rows), len(names))
        return matrix, keep

    def _advance(
        self,
        state: ModelState,
        block: WindowBlock,
        good: list[int],
        events: ModelEvents,
        batch: RecordBatch,
        outcome: BatchOutcome,
        labels: tuple[IntArray, IntArray] | None = None,
    ) -> None:
        settings = state.settings
        n = len(block)
        pos = 0
        version_by_index = dict(zip(events.index, events.versions, strict=True))
        if state.window is None:  # still taking the first events as reference
            pos = self._bootstrap(state, block, n)
            state.events_seen += pos
            if pos < n:
                assert state.window is not None
                block = WindowBlock(
                    block.features[pos:],
                    block.prediction[pos:],
                    block.actual[pos:],
                    block.latency_ms[pos:],
                    block.timestamp[pos:],
                    state.reference,
                    with_bins=state.window.numeric_bin.shape[1] > 0,
                )
                good = good[pos:]
                n, pos = len(block), 0
        window = state.window
        if window is None:
            return
        while pos < n:
            take = min(n - pos, settings.check_every - state.since_check)
            window.append(block, pos, pos + take)
            if labels is not None and state.labels is not None:
                state.labels.write(window, labels[0][pos : pos + take], labels[1][pos : pos + take])
            concept.watch_errors(state, block.error[pos : pos + take])
            pos += take
            state.events_seen += take
            state.since_check += take
            if state.since_check < settings.check_every:
                break
            state.since_check = 0
            index = good[pos - 1]
            version = version_by_index[index]
            if version is not None:
                state.version = version
            ctx = check_context(state, window, batch, index)
            started = time.perf_counter()
            results = run_checks(window, settings, state.labels)
            results.append(concept.concept_drift(state))
            outcome.check_seconds.append(time.perf_counter() - started)
            state.checks += 1
            state.last_results = results
            outcome.checks[state.name] = results
            outcome.check_counts[state.name] = outcome.check_counts.get(state.name, 0) + 1
            for result in results:
                alert = state.alerts.update(result, ctx)
                if alert is not None:
                    outcome.alerts.append(alert)
        outcome.windows[state.name] = (window.count, state.reference is not None)
        last_version = version_by_index[good[-1]] if good else None
        if last_version is not None:
            state.version = last_version

    def _bootstrap(self, state: ModelState, block: WindowBlock, n: int) -> int:
        """Take events into the bootstrap reference; returns how many were taken."""
        needed = state.settings.bootstrap_reference - sum(len(r) for r in state.bootstrap_rows)
        take = min(needed, n)
        state.bootstrap_rows.append(block.features[:take])
        state.bootstrap_predictions.append(block.prediction[:take])
        if take == needed:
            features, predictions = state.bootstrap_arrays()
            exact = PreparedReference.from_arrays(
                state.name,
                state.feature_names,
                features,
                predictions,
                state.settings.prediction_bins,
            )
            reference = summarise_for(exact, state.settings)  # compact if configured
            state.reference = reference
            state.bootstrap_source = (features, predictions)
            state.bootstrap_rows.clear()
            state.bootstrap_predictions.clear()
            state.notes.extend(reference.notes)
            state.window = self.new_window(state.settings, reference)
            log.info("model %r: reference taken from its first %d events", state.name, needed)
        return take

    # -- status --------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        """Per model: window, scores, errors, latency percentiles, retraining decision."""
        models: dict[str, object] = {}
        for name, state in sorted(self.models.items()):
            window = state.window
            results = {
                r.kind: {
                    "test": r.test,
                    "score": _finite(r.score),
                    "threshold": _finite(r.threshold),
                    "healthy": r.healthy,
                    "reason": r.reason,
                    **{k: _finite(v) for k, v in r.details.items()},
                }
                for r in state.last_results
            }
            drift_checked = state.reference is not None
            models[name] = {
                "model_version": state.version,
                "events_seen": state.events_seen,
                "checks": state.checks,
                "window": {
                    "size": self.settings.window_size,
                    "filled": 0 if window is None else window.count,
                    "oldest": None if window is None else rfc3339(window.oldest_timestamp()),
                    "newest": None if window is None else rfc3339(window.newest_timestamp()),
                },
                "reference": None
                if state.reference is None
                else {
                    "events": state.reference.events,
                    "features": list(state.reference.feature_names),
                },
                "drift_checked": drift_checked,
                "firing": sorted(state.alerts.firing),
                "results": results,
                "should_retrain": retrain_recommended(state.last_results),
                "notes": state.notes,
            }
        return {"models": models}


def _finite(value: float | str | None) -> float | str | None:
    """JSON-safe: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
