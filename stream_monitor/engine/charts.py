"""Where the engine meets a model's sequential charts (checks/sequential.py): a run of
events into them on the Python path (the fleet feeds them natively), their transitions
booked as alerts, and their standing at each check for the metrics and observers."""

from __future__ import annotations

import numpy as np

from stream_monitor.alerts.outcome import BatchOutcome
from stream_monitor.alerts.results import CheckContext
from stream_monitor.arrays import IntArray
from stream_monitor.checks import sequential
from stream_monitor.engine.models import MonitoredModel
from stream_monitor.engine.observers import Observers
from stream_monitor.sources.records import RecordBatch
from stream_monitor.window.ring import WindowBlock


def feed(model: MonitoredModel, block: WindowBlock, run: slice, positions: IntArray) -> bool:
    """Rows `run` of a block (just appended to the window) into the model's charts;
    whether a transition waits. `positions`: the block's rows' batch positions."""
    charts, window = model.charts, model.window
    if charts is None or window is None:
        return False
    keys, bits = sequential.chart_keys(block, run, window.key_bits, model.chart_ranks)
    first = model.events_seen + 1
    times, rows = block.timestamp[run], block.features[run]
    return bool(charts.update(keys, bits, first, times, positions[run], rows))


def positions_of(model: MonitoredModel, good: list[int]) -> IntArray:
    """The batch positions of a block's rows, as the charts read them."""
    if model.charts is None:
        return np.empty(0, dtype=np.int64)
    return np.asarray(good, dtype=np.int64)


def book_transitions(
    model: MonitoredModel,
    batch: RecordBatch,
    outcome: BatchOutcome,
    observers: Observers,
    versions: dict[int, str | None] | None = None,
) -> None:
    """The alerts of the transitions waiting in the model's charts, each at its event."""
    charts = model.charts
    if charts is None or not charts.pending:
        return

    def where(position: int) -> tuple[str, int, int]:
        return batch.topics[position], batch.partitions[position], batch.offsets[position]

    for transition in sequential.take(charts, versions):
        result = transition.result(model.chart_features)
        ctx = transition.context(model.model_name, model.version, where)
        ctx.key = model.own_key
        ctx.reference_id = None if model.reference is None else model.reference.reference_id
        ctx.segment = model.segment
        alert = model.alerts.update(result, ctx)
        observers.checked(result, ctx, alert)
        if alert is not None:
            outcome.alerts.append(alert)


def report_standing(
    model: MonitoredModel, ctx: CheckContext, outcome: BatchOutcome, observers: Observers
) -> None:
    """At a check: the charts' evidence and state for the metrics, and for observers (the
    backtest draws it)."""
    charts = model.charts
    if charts is None:
        return
    decides = model.settings.input_drift_rule == "sequential"
    evidence, firing = charts.evidence(), charts.firing
    outcome.sequential[model.name] = (evidence, firing, decides)
    if observers:
        observers.checked(sequential.standing(evidence, firing), ctx, None)
