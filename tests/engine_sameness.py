"""Two engines that must agree (native and Python windows, one thread and several, waves
and the model-by-model pass): the same batches through each, their models compared."""

from __future__ import annotations

import numpy as np

from stream_monitor.alerts.outcome import BatchOutcome
from stream_monitor.engine.core import Engine
from tests.helpers import batch_of

# the window arrays two such engines must hold equal
WINDOW_COLUMNS = (
    "features",
    "ks_key",
    "prediction_bin",
    "numeric_bin",
    "prediction",
    "actual",
    "latency_ms",
    "timestamp",
    "error",
)


def run_batches(engine: Engine, values: list[bytes], sizes: list[int]) -> list[BatchOutcome]:
    """`values` in batches of `sizes` (cycled), each batch's outcome."""
    outcomes, start, i = [], 0, 0
    while start < len(values):
        size = sizes[i % len(sizes)]
        outcomes.append(engine.process(batch_of(values[start : start + size], None, start)))
        start, i = start + size, i + 1
    return outcomes


def assert_same_models(left: Engine, right: Engine) -> None:
    """Every model of `left` as in `right`: its counts, version, partition and every window
    array, dtype included (a model still taking its bootstrap reference has none)."""
    assert sorted(left.models) == sorted(right.models)
    for name, model in left.models.items():
        other = right.models[name]
        assert (model.events_seen, model.since_check, model.checks) == (
            other.events_seen,
            other.since_check,
            other.checks,
        ), name
        assert (model.version, model.partition) == (other.version, other.partition), name
        mine, theirs = model.window, other.window
        if mine is None:
            assert theirs is None and model.bootstrap_rows and other.bootstrap_rows, name
            continue
        assert theirs is not None
        assert (mine.head, mine.count) == (theirs.head, theirs.count), name
        for column in WINDOW_COLUMNS:
            a, b = getattr(mine, column), getattr(theirs, column)
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), (name, column)
