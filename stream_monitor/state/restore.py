"""A model's state back from its changelog records: the newest full record, its deltas and
label patches replayed onto a fresh window, the counters, detectors and charts as they were
(state/models.py writes them). A restored model continues bit for bit, or, when its
reference changed since its last record, as the live swap made it go on."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from stream_monitor.alerts.transitions import FiringAlerts
from stream_monitor.arrays import FloatArray
from stream_monitor.decode.predictions import route_key
from stream_monitor.detectors.page_hinkley import PageHinkley
from stream_monitor.engine.admission import reference_of, swap_reference
from stream_monitor.engine.core import Engine
from stream_monitor.engine.models import MonitoredModel
from stream_monitor.engine.versions import model_of, settings_for
from stream_monitor.kernels import Adwin
from stream_monitor.reference.compact import summarise_for
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.state.models import StateTracker, WindowProgress
from stream_monitor.state.records import StateRecord, latest_parts, newest_meta
from stream_monitor.window.class_tally import NO_LABEL, ClassTally
from stream_monitor.window.ring import ModelWindow, WindowBlock


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
        state = _restore_model(engine, model, parts, meta, migrated=model != written)
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
    engine: Engine,
    model: str,
    parts: dict[str, StateRecord],
    meta: dict[str, Any],
    migrated: bool = False,
) -> MonitoredModel | None:
    names = tuple(meta["feature_names"])
    version = meta.get("version")  # the model of a version's key (older records: derived)
    name = str(meta.get("model_name") or model_of(model, version, engine.split_versions))
    stream = model if migrated else str(meta.get("stream") or model)
    segment = meta.get("segment")
    settings = settings_for(engine.settings, stream, name)
    reference = reference_of(engine.references, model, stream, name, settings)
    state = MonitoredModel.start(model, reference, names, settings, name, stream, segment)
    counts = meta.get("segment_counts")
    state.segment_counts = None if counts is None else {str(k): int(v) for k, v in counts.items()}
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
    if state.window is not None:
        state.window.classes = bool(meta.get("classes", False))
    recorded = meta.get("reference_id")
    current = None if state.reference is None else state.reference.reference_id
    if recorded is not None and recorded != current:
        _swapped_while_away(state)
    elif state.charts is not None and meta.get("charts") is not None:
        state.charts.restore(meta["charts"])
    newest = reference_of(engine.references, model, stream, name, settings)
    if newest is not None and newest.reference_id != current:  # e.g. over a bootstrap one
        swap_reference(state, newest)
    if meta["partition"]:
        topic, number = meta["partition"]
        state.partition = (str(topic), int(number))
    state.notes.append("window and alert state restored from the changelog")
    return state


def _swapped_while_away(state: MonitoredModel) -> None:
    """The model's reference changed after its last record: as the live swap did
    (engine/admission.py), its charts start afresh at this event, and a window whose rows
    cannot be looked up in the new reference (category codes, class labels) starts empty.
    Its numeric rows were just loaded against the new reference."""
    state.charts = state.new_charts()
    window = state.window
    if window is not None and (
        window.categorical.shape[1] or window.prediction_class.size or window.classes
    ):
        state.window = state.new_window()
        state.class_tally = None
    state.notes.append("its reference changed since its last changelog record")


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
    window.classes = bool(meta.get("classes", False))  # before the rows: it keeps their errors
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
    window.set_errors(rows, arrays["error"])
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
