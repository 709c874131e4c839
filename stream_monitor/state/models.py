"""A model's window and alert state as changelog records (full, delta and patch records) and
back: what lets a restarted or reassigned member continue bit for bit."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_monitor.alerts.transitions import FiringAlerts
from stream_monitor.arrays import FloatArray
from stream_monitor.decode.predictions import route_key
from stream_monitor.detectors.page_hinkley import PageHinkley
from stream_monitor.engine.core import Engine
from stream_monitor.engine.models import MonitoredModel
from stream_monitor.engine.versions import model_of, reference_for, settings_for
from stream_monitor.kernels import Adwin
from stream_monitor.reference.compact import summarise_for
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.state.records import (
    RecordProgress,
    StateRecord,
    latest_parts,
    newest_meta,
)
from stream_monitor.window.class_tally import NO_LABEL, ClassTally
from stream_monitor.window.ring import ModelWindow, WindowBlock

FULL_EVERY_WINDOWS = 2  # deltas worth this many windows, then a new full record
MAX_DELTAS = 64  # bounds the keys per model that compaction must keep
MAX_PATCHES = 64  # label patches per generation, then a new full record
_ROW_FIELDS = ("prediction", "actual", "latency_ms", "timestamp", "error")


@dataclass(slots=True)
class WindowProgress(RecordProgress):
    """What has been written of one model's window and what it still lacks."""

    unsaved_rows: int = 0
    bootstrap_saved: bool = False
    patches: int = 0
    patched: bool = False  # labels changed the model since the last record
    patch_rows: list[np.ndarray] = field(default_factory=list)


@dataclass(slots=True)
class StateTracker:
    """Knows, per model, which rows the changelog lacks; turns them into records."""

    window_size: int
    progress: dict[str, WindowProgress] = field(default_factory=dict)

    def appended(self, model: str, rows: int) -> None:
        p = self.progress.get(model)
        if p is None:
            p = self.progress[model] = WindowProgress()
        p.unsaved_rows += rows

    def patched(self, model: str, rows: np.ndarray) -> None:
        """Labels changed these window rows (possibly none: counters and detectors only)."""
        p = self.progress.get(model)
        if p is None:
            p = self.progress[model] = WindowProgress()
        p.patched = True
        p.patch_rows.append(rows)

    def forget(self, models: Iterable[str]) -> None:
        for m in models:
            self.progress.pop(m, None)

    def records(self, engine: Engine, models: Iterable[str]) -> list[StateRecord]:
        """The records that bring the changelog up to date for these models."""
        out: list[StateRecord] = []
        for model in models:
            p = self.progress.get(model)
            state = engine.models.get(model)
            if p is None or state is None or (p.unsaved_rows == 0 and not p.patched):
                continue
            out.extend(self._records(state, p))
        return out

    def _records(self, state: MonitoredModel, p: WindowProgress) -> list[StateRecord]:
        window = state.window
        if p.unsaved_rows == 0 and (
            window is None or (p.generation > 0 and p.patches < MAX_PATCHES)
        ):
            return [_patch_record(state, p)]
        patched, p.patched, p.patch_rows = p.patched, False, []
        out: list[StateRecord] = []
        if window is None or (state.bootstrap_source is not None and not p.bootstrap_saved):
            p.seq += 1
            boot = _bootstrap_record(state)
            boot.meta = _meta(state, p)
            out.append(boot)
            if window is None:  # still collecting the bootstrap reference
                p.unsaved_rows = 0
                return out
            p.bootstrap_saved = True
            p.generation = 0  # the window is new: it starts with a full record
        p.seq += 1
        full = (
            p.generation == 0
            or p.deltas >= MAX_DELTAS
            or p.unsaved_rows > window.size
            or p.rows_since_full + p.unsaved_rows > FULL_EVERY_WINDOWS * window.size
            or patched  # rows changed by labels (with new rows: a full record holds both)
        )
        if full:
            p.generation += 1
            p.deltas = 0
            p.patches = 0
            p.rows_since_full = 0
            arrays = _window_arrays(state, window, None)
            part = "full"
        else:
            arrays = _window_arrays(state, window, window.newest_rows(p.unsaved_rows))
            part = f"d{p.deltas}"
            p.deltas += 1
            p.rows_since_full += p.unsaved_rows
        p.unsaved_rows = 0
        out.append(StateRecord(state.name, part, _meta(state, p), arrays))
        return out


def _window_arrays(
    state: MonitoredModel, window: ModelWindow, rows: npt.NDArray[np.int64] | None
) -> dict[str, npt.NDArray[Any]]:
    """The window's arrays as a record holds them: every row and the ring's place (a full
    record), or only `rows` (a delta)."""

    def pick(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return a if rows is None else a[rows]

    arrays = {
        "features": pick(window.features),
        **{f: pick(getattr(window, f)) for f in _ROW_FIELDS},
    }
    if rows is None:
        arrays["ring"] = np.array([window.head, window.count], dtype=np.int64)
    if window.categorical.shape[1]:
        arrays["categorical"] = pick(window.categorical)
    if window.prediction_class.size:
        arrays["prediction_class"] = pick(window.prediction_class)
    if state.class_tally is not None:
        arrays["label_prediction"] = pick(state.class_tally.prediction)
        arrays["label_actual"] = pick(state.class_tally.actual)
    return arrays


def _patch_record(state: MonitoredModel, p: WindowProgress) -> StateRecord:
    """The window rows labels changed since the last record, and the model's meta."""
    p.seq += 1
    window = state.window
    arrays: dict[str, np.ndarray] = {}
    if window is not None and p.patch_rows:
        rows = np.unique(np.concatenate(p.patch_rows)).astype(np.int64)
        arrays = {"rows": rows, "actual": window.actual[rows], "error": window.error[rows]}
        if state.class_tally is not None:
            arrays["label_actual"] = state.class_tally.actual[rows]
    part = f"p{p.patches}"
    p.patches += 1
    p.patched, p.patch_rows = False, []
    return StateRecord(state.name, part, _meta(state, p), arrays)


def _bootstrap_record(state: MonitoredModel) -> StateRecord:
    features, predictions = state.bootstrap_arrays()
    return StateRecord(state.name, "boot", {}, {"features": features, "prediction": predictions})


def _meta(state: MonitoredModel, p: WindowProgress) -> dict[str, Any]:
    return {
        "seq": p.seq,
        "generation": p.generation,
        "deltas": p.deltas,
        "rows_since_full": p.rows_since_full,
        "events_seen": state.events_seen,
        "since_check": state.since_check,
        "checks": state.checks,
        "version": state.version,
        "model_name": state.model_name,
        "started_at": state.started_at,
        "firing": dict(state.alerts.firing),
        "healthy_streak": dict(state.alerts.healthy_streak),
        "feature_names": list(state.feature_names),
        "partition": list(state.partition) if state.partition else None,
        "bootstrapped": state.bootstrap_source is not None,
        "classes": state.window is not None and state.window.classes,
        "concept": None if state.errors.detector is None else state.errors.detector.state(),
        "concept_detector": state.errors.method,
        "concept_changed": state.errors.changed,
        "concept_baseline": state.errors.baseline,
        "labels": None if state.class_tally is None else list(state.class_tally.vocabulary),
        "patches": p.patches,
        "labels_joined": state.labels_joined,
        "charts": None if state.charts is None else state.charts.state(),
    }


def changelog_partition(engine: Engine, record: StateRecord) -> int:
    """Where a record goes: a model's to the number of its input partition; a record of no
    model (a labels partition's position) to the partition its meta names."""
    if not record.model:
        return int(record.meta["partition"])
    source = engine.models[record.model].partition
    assert source is not None
    return source[1]


def restore(engine: Engine, records: Iterable[StateRecord], tracker: StateTracker) -> list[str]:
    """Rebuild the models whose records are given; returns the models restored."""
    restored: list[str] = []
    by_key = latest_parts(records)
    for written, parts in sorted(by_key.items()):
        meta = newest_meta(parts)
        if meta is None:
            continue
        model = _version_key(engine, written, meta, set(by_key))
        if model is None:
            continue
        state = _restore_model(engine, model, parts, meta)
        if state is None:
            continue
        for key in engine.adopt(state):  # an older version than those kept (--max-versions)
            tracker.progress.pop(key, None)
            if key in restored:
                restored.remove(key)
        if model not in engine.models:
            continue
        if model != written:  # its records are the old key's: the new key starts afresh
            tracker.progress[model] = WindowProgress()
            restored.append(model)
            continue
        tracker.progress[model] = WindowProgress(
            seq=meta["seq"],
            generation=meta["generation"],
            deltas=meta["deltas"],
            rows_since_full=meta["rows_since_full"],
            bootstrap_saved=meta["bootstrapped"],
            patches=meta.get("patches", 0),
        )
        restored.append(model)
    return restored


def _version_key(engine: Engine, key: str, meta: dict[str, Any], keys: set[str]) -> str | None:
    """The key a model's records are restored under. Records written with every version in
    one window (an earlier release, or the shared policy) continue, when versions keep
    their own windows, as the window of the version they last saw; None once that
    version has records of its own (the old key is superseded, not a model any more)."""
    version = meta.get("version")
    if not engine.split_versions or not version or meta.get("model_name", key) != key:
        return key
    own = route_key(key, str(version))
    return None if own in keys else own


def _restore_model(
    engine: Engine, model: str, parts: dict[str, StateRecord], meta: dict[str, Any]
) -> MonitoredModel | None:
    names = tuple(meta["feature_names"])
    version = meta.get("version")  # the model of a version's key (older records: derived)
    name = str(meta.get("model_name") or model_of(model, version, engine.split_versions))
    settings = settings_for(engine.settings, model, name)
    reference = reference_for(engine.references, model, name)
    state = MonitoredModel.start(model, reference, names, settings, name)
    state.started_at = int(meta.get("started_at", 0))
    boot = parts.get("boot")
    if boot is not None:
        features, predictions = boot.arrays["features"], boot.arrays["prediction"]
        if meta["bootstrapped"]:
            exact = PreparedReference.from_arrays(
                model, names, features, predictions, settings.prediction_bins
            )
            state.use_reference(summarise_for(exact, settings))  # as the engine made it
            state.bootstrap_source = (features, predictions)
        else:
            state.bootstrap_rows = [features]
            state.bootstrap_predictions = [predictions]
    elif meta["bootstrapped"]:
        return None
    if (boot is None or meta["bootstrapped"]) and not _restore_window(state, parts, meta):
        return None  # a window exists, but its records are incomplete
    state.events_seen = meta["events_seen"]
    state.since_check = meta["since_check"]
    state.checks = meta["checks"]
    state.labels_joined = int(meta.get("labels_joined", 0))
    state.version = meta["version"]
    state.alerts = FiringAlerts(
        firing=dict(meta["firing"]), healthy_streak=dict(meta.get("healthy_streak", {}))
    )
    if meta.get("concept") is not None:
        if meta.get("concept_detector", "adwin") == "page_hinkley":
            state.errors.detector = PageHinkley.from_state(meta["concept"])
        else:
            state.errors.detector = Adwin.from_state(meta["concept"])
    state.errors.changed = bool(meta.get("concept_changed", False))
    baseline = meta.get("concept_baseline")
    state.errors.baseline = math.nan if baseline is None else float(baseline)
    if state.charts is not None and meta.get("charts") is not None:
        state.charts.restore(meta["charts"])
    if state.window is not None:
        state.window.classes = bool(meta.get("classes", False))
    if meta["partition"]:
        topic, number = meta["partition"]
        state.partition = (str(topic), int(number))
    state.notes.append("window and alert state restored from the changelog")
    return state


def _restore_window(
    state: MonitoredModel, parts: dict[str, StateRecord], meta: dict[str, Any]
) -> bool:
    """Rebuild the model's window and class tally from the current generation's full record,
    deltas and label patches; False when one of them is missing."""
    names = tuple(meta["feature_names"])
    full = parts.get("full")
    if full is None or full.meta.get("generation") != meta["generation"]:
        return False
    window = state.new_window(len(names))
    head, count = (int(x) for x in full.arrays["ring"])
    _load_ring(window, full.arrays, head, count)
    vocabulary = meta.get("labels")
    labels = None if vocabulary is None else ClassTally.empty(window.size, vocabulary)
    if labels is not None and "label_prediction" in full.arrays:
        labels.prediction[:] = full.arrays["label_prediction"]
        labels.actual[:] = full.arrays["label_actual"]
    steps = _steps(parts, meta)
    if steps is None:
        return False
    for delta in steps:
        if delta.part.startswith("p"):
            _apply_patch(window, labels, delta.arrays)
            continue
        block = _block(delta.arrays, state.reference, window)
        window.append(block, 0, len(block))
        if labels is not None:  # rows from before the first label have none
            none = np.full(len(block), NO_LABEL, dtype=np.int64)
            pred = delta.arrays.get("label_prediction", none)
            labels.write(window, pred, delta.arrays.get("label_actual", none))
    state.window = window
    state.class_tally = labels
    return True


def _steps(parts: dict[str, StateRecord], meta: dict[str, Any]) -> list[StateRecord] | None:
    """The deltas and label patches of the current generation, in the order written."""
    names = [f"d{i}" for i in range(meta["deltas"])]
    names += [f"p{i}" for i in range(meta.get("patches", 0))]
    steps = [parts.get(name) for name in names]
    if any(r is None or r.meta.get("generation") != meta["generation"] for r in steps):
        return None
    return sorted((r for r in steps if r is not None), key=lambda r: int(r.meta["seq"]))


def _apply_patch(
    window: ModelWindow, labels: ClassTally | None, arrays: dict[str, np.ndarray]
) -> None:
    if "rows" not in arrays:  # counters and detectors only: in the meta
        return
    rows = arrays["rows"]
    window.actual[rows] = arrays["actual"]
    window.error[rows] = arrays["error"]
    if labels is not None and "label_actual" in arrays:
        labels.actual[rows] = arrays["label_actual"]


def _block(
    arrays: dict[str, np.ndarray], reference: PreparedReference | None, window: ModelWindow
) -> WindowBlock:
    return WindowBlock(
        arrays["features"],
        arrays["prediction"],
        arrays["actual"],
        arrays["latency_ms"],
        arrays["timestamp"],
        reference,
        arrays.get("categorical"),
        with_bins=window.numeric_bin.shape[1] > 0,
        error=arrays["error"],
        prediction_class=arrays.get("prediction_class"),
    )


def _load_ring(window: ModelWindow, arrays: dict[str, FloatArray], head: int, count: int) -> None:
    """Put the ring buffers back as they lay, derived look-ups recomputed."""
    window.load(_block(arrays, window.reference, window), head, count)
