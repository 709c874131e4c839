"""The deterministic core: decode a batch, route by model (version, segment), window, check
every N, alert. It never learns where records come from (Kafka, a file or the in-process
API) and never reads a clock for a decision: the same sequence of records per model gives
the same checks and the same alerts."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from stream_monitor.alerts.outcome import BatchOutcome
from stream_monitor.alerts.results import CheckContext, CheckResult
from stream_monitor.arrays import FloatArray, IntArray
from stream_monitor.checks.performance import performance
from stream_monitor.checks.run import run_checks
from stream_monitor.checks.sequential import solve_designs
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.decode.arrays import event_arrays
from stream_monitor.decode.predictions import ModelEvents
from stream_monitor.engine import admission, charts, versions
from stream_monitor.engine.identities import LabelledApart
from stream_monitor.engine.models import MonitoredModel, cadence, window_block
from stream_monitor.engine.native_windows import NativePaths
from stream_monitor.engine.observers import EngineObserver, Observers, TakenEvents
from stream_monitor.engine.segments import OTHER, Segments
from stream_monitor.engine.status import model_status
from stream_monitor.engine.waves import StoppedModels
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.sources.records import RecordBatch
from stream_monitor.window.ring import WindowBlock

log = logging.getLogger(__name__)

LABEL_KINDS = ("performance", "concept_drift")  # the checks a late label can change


@dataclass(slots=True)
class JoinedLabels:
    """Late labels of one model joined to their predictions, in label-arrival order."""

    batch_index: list[int]  # each label's position in its batch
    rows: IntArray  # the window row of its prediction, -1 when that left the window
    actual: FloatArray  # NaN for a class label
    error: FloatArray
    actual_codes: IntArray | None  # class-label codes, when labels are class names


class Engine:
    """Per-model windows and checks over batches of raw records."""

    def __init__(
        self,
        settings: DetectorSettings,
        references: dict[str, PreparedReference],
        native_windows: bool = True,
        native_threads: int | None = None,
    ) -> None:
        self.settings = settings
        self.references = references
        solve_designs(references, settings)  # not in the batch that first sees a model
        self.models: dict[str, MonitoredModel] = {}
        self.observers = Observers()
        # the models the native core reads and writes (engine/native_windows.py)
        self._native = NativePaths(native_windows, native_threads)
        self.split_versions = settings.version_policy == "separate"
        self.versions = versions.VersionKeys(settings.max_versions)
        self.stream_keys: dict[str, set[str]] = {}  # stream -> its keys (segments: several)
        self.segments = Segments()  # engine/segments.py
        self.labelled_apart = LabelledApart()  # whose metrics identity a batch looks up

    def observe(self, observer: EngineObserver) -> None:
        """Tell `observer` of every model's events and every check from now on."""
        self.observers.add(observer)
        if type(observer).events_taken is not EngineObserver.events_taken:
            self._native.windows_off()  # it reads each batch's events: the Python has them

    # -- batches -------------------------------------------------------------------------

    def process(self, batch: RecordBatch) -> BatchOutcome:
        """Every record of the batch, in order: its alerts, dead letters and counts."""
        outcome = BatchOutcome()
        admit = partial(self._admit, batch, outcome)
        decoded, dues = self._native.decode(batch, outcome, self.split_versions, admit)
        outcome.dead_letters.extend(decoded.dead_letters)
        outcome.dead_letter_models.extend(decoded.dead_letter_models)
        due = 0  # the fleet's models stopped mid-batch, taken in first-seen order with the rest
        stops = StoppedModels(
            outcome.alerts,
            self._one_by_one(),
            partial(self._stopped, batch=batch, outcome=outcome),
            partial(self._native.resume_many, outcome=outcome),
            self._native.fleet.staged,
        )
        streams = self.segments.split_batch(decoded.by_model, self.settings, self.split_versions)
        for name, read in streams.items():
            events = read.events
            while due < len(dues) and dues[due][0] < events.index[0]:
                stops.take(dues[due])
                due += 1
            model = self.models.get(name) or self.add_model(name, events, batch, outcome)
            arrays = read.arrays
            if arrays is None:  # a new model, or one the native decoder cannot read
                arrays = event_arrays(model.feature_names, events)
            outcome.dead_letters.extend(arrays.dead_letters)
            outcome.dead_letter_models.extend([name] * len(arrays.dead_letters))
            if not len(arrays):
                continue
            block, labels = window_block(model, events, arrays)
            good = [events.index[i] for i in arrays.kept]
            model.partition = (batch.topics[good[-1]], batch.partitions[good[-1]])
            outcome.ok_counts[name] = len(good)
            lat = block.latency_ms[np.isfinite(block.latency_ms)]
            if lat.size:
                outcome.latencies_ms[name] = lat
            seen = model.events_seen
            self._advance(model, block, good, events, batch, outcome, labels)
            self.observers.events_taken(TakenEvents(model, read, good, block, seen))
            self._native.follow(model)
            stops.order.mark(events.index[0])
        for stop in dues[due:]:
            stops.take(stop)
        stops.finish()
        self.labelled_apart.identify(self.models, outcome)
        return outcome

    def _one_by_one(self) -> bool:
        """Whether the fleet's stopped models are each taken to their end before the next
        (engine/waves.py): when a check may read another model's window (a version compared
        with its baseline, `compare_versions`), or an observer hears the checks as they run."""
        own = self.settings.models.values()
        compares = self.settings.compare_versions is not None or any(
            m.compare_versions is not None for m in own
        )
        return compares or bool(self.observers)

    def _admit(
        self,
        batch: RecordBatch,
        outcome: BatchOutcome,
        name: str,
        first: Callable[[], ModelEvents | None],
    ) -> bool:
        """A model met for the first time, admitted before its batch is routed (as it would
        be at its first event) so that the batch's other events are read natively: whether
        they will be. Not a stream monitored per segment (its keys are its segments')."""
        if name in self.models or name in self.segments.routers:
            return False  # known: read by the Python (a categorical reference, segments)
        events = first()
        if events is None or self.segments.segmented(
            name, events, self.settings, self.split_versions
        ):
            return False
        self.add_model(name, events, batch, outcome)
        return self.reads_natively(name)

    def _stopped(
        self, name: str, stop: tuple[int, bool], batch: RecordBatch, outcome: BatchOutcome
    ) -> None:
        """A fleet model's stop: its charts' transitions, and its checks if they are due."""
        model = self.models[name]
        index, check = stop
        charts.book_transitions(model, batch, outcome, self.observers)
        if check:
            self._due_check(model, index, batch, outcome)

    def forget_partitions(self, partitions: set[tuple[str, int]]) -> None:
        """Drop the models whose events came from partitions this process no longer owns."""
        for name in [n for n, s in self.models.items() if s.partition in partitions]:
            self._forget(name)

    def _forget(self, key: str) -> None:
        model = self.models.pop(key)
        self.labelled_apart.forget(key)
        self._native.forget(key)
        held = self.stream_keys.get(model.stream)
        if held is not None:
            held.discard(key)
            if not held:
                del self.stream_keys[model.stream]
                self.versions.remove(model.model_name, model.stream)
                self.segments.forget(model.stream)

    def reads_natively(self, name: str) -> bool:
        """Whether the native decoder reads the model's events into arrays by itself."""
        return name in self._native.schemas

    def writes_natively(self, name: str) -> bool:
        """Whether the native core writes the model's window (engine/native_windows.py)."""
        return name in self._native.fleet

    def adopt(self, model: MonitoredModel) -> list[str]:
        """Keep `model` (new, or restored from the changelog): its events are routed to it,
        read natively into arrays when nothing in them needs the decoded objects, and its
        window written natively when nothing in it needs them either. Returns the keys of
        older versions of its model it pushed out (engine/versions.py), forgotten here."""
        self.models[model.name] = model
        self.labelled_apart.adopt(model)
        self._native.adopt(model)
        self.stream_keys.setdefault(model.stream, set()).add(model.name)
        if model.segment is not None:
            self.segments.adopt(model)
        dropped = self.versions.add(model.model_name, model.stream, model.started_at)
        gone = sorted(k for s in dropped for k in self.stream_keys.get(s, ()))
        for key in gone:
            self._forget(key)
        return gone

    def replace_references(self, references: dict[str, PreparedReference]) -> list[str]:
        """Judge by `references` from now on (between two batches, never inside one): each
        key whose reference changed swaps to it (engine/admission.py); returns those keys.
        A key whose reference is gone keeps the one it has."""
        solve_designs(references, self.settings, self.references)
        self.references = references
        swapped = admission.swap_changed(self.models, references)
        for key in swapped:
            self._native.adopt(self.models[key])
        return swapped

    def keys_of(self, model: str) -> list[str]:
        """The keys `model`'s events are kept under: its versions' (newest first), or its."""
        streams = self.versions.of(model)
        return [k for s in streams for k in sorted(self.stream_keys.get(s, ()))]

    # -- per model -----------------------------------------------------------------------

    def add_model(
        self,
        name: str,
        events: ModelEvents,
        batch: RecordBatch | None = None,
        outcome: BatchOutcome | None = None,
    ) -> MonitoredModel:
        """A model (or a version of it) seen for the first time: its reference, plan and
        window; older versions it pushes out are named in `outcome.dropped`."""
        stream, segment = self.segments.of_key.get(name, (name, None))
        model = admission.start_model(
            name, events, self.references, self.settings, self.split_versions, stream, segment
        )
        if segment == OTHER:  # the counts of the values not admitted go with its records
            model.segment_counts = self.segments.routers[stream].counts
        if batch is not None and events.index:
            model.started_at = batch.offsets[events.index[0]]
        dropped = self.adopt(model)
        if outcome is not None:
            outcome.dropped.extend(dropped)
        return model

    def _advance(
        self,
        model: MonitoredModel,
        block: WindowBlock,
        good: list[int],
        events: ModelEvents,
        batch: RecordBatch,
        outcome: BatchOutcome,
        labels: tuple[IntArray, IntArray] | None = None,
    ) -> None:
        """Append the block to the window, checking at every `check_every`-th event."""
        version_by_index = dict(zip(events.index, events.versions, strict=True))
        pos = 0
        if model.window is None:  # still taking the first events as reference
            pos = admission.take_bootstrap(model, block)
            if model.window is None:
                return
            if pos < len(block):
                block = WindowBlock(
                    block.features[pos:],
                    block.prediction[pos:],
                    block.actual[pos:],
                    block.latency_ms[pos:],
                    block.timestamp[pos:],
                    model.reference,
                    with_bins=model.window.numeric_bin.shape[1] > 0,
                )
                good, pos = good[pos:], 0
        window = model.window
        every = model.plan.check_every
        positions = charts.positions_of(model, good)
        for take, due in cadence(len(block) - pos, model.since_check, every):
            window.append(block, pos, pos + take)
            if labels is not None and model.class_tally is not None:
                model.class_tally.write(
                    window, labels[0][pos : pos + take], labels[1][pos : pos + take]
                )
            changed = charts.feed(model, block, slice(pos, pos + take), positions)
            model.errors.watch(block.error[pos : pos + take])
            pos += take
            model.events_seen += take
            model.since_check = (model.since_check + take) % every
            if changed:
                charts.book_transitions(model, batch, outcome, self.observers, version_by_index)
            if not due:
                continue
            index = good[pos - 1]
            version = version_by_index[index]
            if version is not None:
                model.version = version
            self._due_check(model, index, batch, outcome)
        outcome.windows[model.name] = (window.count, model.reference is not None)
        last_version = version_by_index[good[-1]] if good else None
        if last_version is not None:
            model.version = last_version

    def _due_check(
        self, model: MonitoredModel, index: int, batch: RecordBatch, outcome: BatchOutcome
    ) -> None:
        """The checks due at the model's event at batch position `index`."""
        assert model.window is not None
        started = time.perf_counter()
        results = run_checks(model.window, model.plan, model.class_tally)
        results.append(model.errors.check())
        results.extend(versions.compared(model, self.models))  # a candidate version
        outcome.check_seconds.append(time.perf_counter() - started)
        ctx = model.context(batch, index)
        charts.report_standing(model, ctx, outcome, self.observers)
        self._checked(model, results, ctx, outcome)

    def _checked(
        self,
        model: MonitoredModel,
        results: list[CheckResult],
        ctx: CheckContext,
        outcome: BatchOutcome,
        kinds: tuple[str, ...] | None = None,
    ) -> None:
        """Book a check: its results, counts, and the alerts of the kinds it judged."""
        model.checks += 1
        model.last_results = results
        outcome.checks[model.name] = results
        outcome.check_counts[model.name] = outcome.check_counts.get(model.name, 0) + 1
        # under the sequential rule the window test alerts only for a model without charts
        charts_decide = model.charts is not None and model.settings.input_drift_rule == "sequential"
        for result in results:
            if kinds is not None and result.kind not in kinds:
                continue
            if charts_decide and result.kind == "input_drift" and result.channel is None:
                result.alerting = False
            after = model.settings.resolve_after_checks if result.channel is None else 1
            alert = model.alerts.update(result, ctx, after) if result.alerting else None
            self.observers.checked(result, ctx, alert)
            if alert is not None:
                outcome.alerts.append(alert)

    # -- late labels ---------------------------------------------------------------------

    def join_labels(
        self, model: MonitoredModel, joined: JoinedLabels, batch: RecordBatch, outcome: BatchOutcome
    ) -> None:
        """Late labels of one model: their actuals and errors into the window rows still
        held and into the error stream; every `check_every` labels, the checks they can
        change run at once (so label-driven alerts need no further predictions)."""
        window = model.window
        start = 0
        for take, due in cadence(len(joined.rows), model.labels_joined, model.plan.check_every):
            part = slice(start, start + take)
            mine = joined.rows[part] >= 0
            if window is not None and mine.any():
                at = joined.rows[part][mine]
                window.actual[at] = joined.actual[part][mine]
                window.set_errors(at, joined.error[part][mine])
                if joined.actual_codes is not None and model.class_tally is not None:
                    model.class_tally.actual[at] = joined.actual_codes[part][mine]
            model.errors.watch(joined.error[part])
            model.labels_joined += take
            start += take
            if due and window is not None:
                self._label_check(model, joined.batch_index[start - 1], batch, outcome)
        rows = joined.rows
        outcome.patched_rows[model.name] = np.unique(rows[rows >= 0])

    def _label_check(
        self, model: MonitoredModel, index: int, batch: RecordBatch, outcome: BatchOutcome
    ) -> None:
        """The checks labels can change, at the label that completed `check_every`."""
        assert model.window is not None
        ctx = model.context(batch, index, model.labels_joined)
        fresh = {
            "performance": performance(model.window, model.plan, model.class_tally),
            "concept_drift": model.errors.check(),
        }
        results = [fresh.pop(r.kind, r) for r in model.last_results]  # same order as before
        self._checked(model, results + list(fresh.values()), ctx, outcome, LABEL_KINDS)

    # -- status --------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        """Per model: window, scores, errors, latency percentiles, retraining decision."""
        return {
            "models": {
                name: model_status(model, model.plan.window_size)
                for name, model in sorted(self.models.items())
            }
        }
