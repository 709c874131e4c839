"""A model's window and alert state as changelog records (full, delta and patch records) and
back: what lets a restarted or reassigned member continue bit for bit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_monitor.engine.core import Engine
from stream_monitor.engine.models import MonitoredModel
from stream_monitor.state.records import (
    RecordProgress,
    StateRecord,
)
from stream_monitor.window.ring import ModelWindow

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
        "stream": state.stream,
        "segment": state.segment,
        "segment_counts": state.segment_counts,
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
        "reference_id": None if state.reference is None else state.reference.reference_id,
    }


def changelog_partition(engine: Engine, record: StateRecord) -> int:
    """Where a record goes: a model's to the number of its input partition; a record of no
    model (a labels partition's position) to the partition its meta names."""
    if not record.model:
        return int(record.meta["partition"])
    source = engine.models[record.model].partition
    assert source is not None
    return source[1]
