"""Which models' windows the native core writes (`_native.WindowFleet`), and their
enrolment.

A model is written natively when nothing in its window needs a decoded Python value: it has
a window (no bootstrap reference being taken), no class labels, and no reference or an exact
numeric one (a compact reference's look-ups and categorical codes stay in Python). The
fleet writes the window's own arrays, so a model can leave or join it between any two
batches: its state is where it always was.
"""

from __future__ import annotations

from stream_monitor.alerts.outcome import LATENCY_BUCKETS_SECONDS
from stream_monitor.engine.models import MonitoredModel
from stream_monitor.kernels import WindowFleet


def new_fleet() -> WindowFleet:
    return WindowFleet(list(LATENCY_BUCKETS_SECONDS))


def writes_natively(model: MonitoredModel) -> bool:
    """Whether the native core can write this model's window (see the module docstring)."""
    window = model.window
    if window is None or window.classes or model.class_tally is not None:
        return False
    reference = model.reference
    if reference is None:
        return window.n_features == 0
    return (
        reference.summary is None and reference.categorical is None and reference.classes is None
    )


def enroll(fleet: WindowFleet, model: MonitoredModel) -> None:
    """Hand the model's window arrays and look-up tables to the fleet."""
    window = model.window
    assert window is not None
    reference = model.reference
    b = window.native_buffers()
    prediction_edges = None
    feature_edges = None
    sizes: list[int] = []
    columns = None
    if reference is not None:
        columns = reference.columns()
        sizes = reference.sizes.tolist()
        if reference.prediction_edges is not None:
            prediction_edges = reference.prediction_edges[1:-1].tolist()
        if window.numeric_bin.shape[1]:
            feature_edges = reference.numeric().edges.T.tolist()
    fleet.enroll(
        model.name,
        model,
        window,
        list(model.feature_names),
        b.features,
        b.scalars,
        b.ks_key,
        b.prediction_bin,
        b.numeric_bin,
        b.tallies,
        columns,
        sizes,
        window.key_bits,
        prediction_edges,
        feature_edges,
    )
