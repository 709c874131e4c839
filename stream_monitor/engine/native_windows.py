"""Which models the native core reads and writes, and the batch it ingests for them.

A model's events are read natively into arrays when nothing in its window needs a decoded
Python value (its reference encodes no categorical features or class labels). Its window
is also written natively (`_native.WindowFleet`) when, besides, it has a window (no
bootstrap reference being taken), no class labels, and no reference or an exact numeric
one (a compact reference's look-ups stay in Python), and no observer reads each batch's
events. The fleet writes the window's own arrays, so a model can leave or join it between
any two batches: its state is where it always was.
"""

from __future__ import annotations

from stream_monitor.alerts.outcome import LATENCY_BUCKETS_SECONDS, BatchOutcome, LatencyCounts
from stream_monitor.decode.native import Admit, NativeBatch, decode_native
from stream_monitor.engine.models import MonitoredModel
from stream_monitor.kernels import WindowFleet
from stream_monitor.sources.records import RecordBatch

# (first batch position of the model, model, position of the event it stopped at, whether
# its checks are due there: else its charts changed state in the run that ended there)
Due = tuple[int, str, int, bool]


class NativePaths:
    """The models the native decoder reads (their schemas) and the fleet writes."""

    def __init__(self, windows: bool = True, threads: int | None = None) -> None:
        self.schemas: dict[str, tuple[str, ...]] = {}
        # a batch's models run side by side on up to `threads` threads (None: one per core)
        self.fleet = WindowFleet(list(LATENCY_BUCKETS_SECONDS), threads)
        self.windows_on = windows

    def decode(
        self,
        batch: RecordBatch,
        outcome: BatchOutcome,
        split_versions: bool = False,
        admit: Admit | None = None,
    ) -> tuple[NativeBatch, list[Due]]:
        """The batch decoded (routed by `model@version` with `split_versions`), its new
        models offered to `admit` first (see `decode_native`); the fleet's models' events
        ingested up to their due checks."""
        fleet = self.fleet if self.windows_on else None
        decoded = decode_native(batch, self.schemas, fleet, split_versions, admit)
        dues: list[Due] = []
        if fleet is not None and decoded.staged:
            dues, (names, counts, sums) = fleet.ingest(
                batch.topics, batch.partitions, outcome.ok_counts, outcome.windows
            )
            if names:
                outcome.latency_counts.append(LatencyCounts(names, counts, sums))
        return decoded, dues

    def resume_many(self, names: list[str], outcome: BatchOutcome) -> list[tuple[int, bool] | None]:
        """Models stopped by the fleet (in first-seen order) go on, side by side: each one's
        next stop (as in `Due`), or None."""
        return self.fleet.resume_many(names, outcome.windows)

    def windows_off(self) -> None:
        """From now on the Python writes every window (an observer reads each batch)."""
        self.windows_on = False
        self.fleet.clear()

    def adopt(self, model: MonitoredModel) -> None:
        """Read and write `model` natively where it can be (see the module docstring)."""
        if reads_natively(model):
            self.schemas[model.name] = model.feature_names
        else:
            self.schemas.pop(model.name, None)
        self.enrol(model)

    def follow(self, model: MonitoredModel) -> None:
        """After a batch the Python took for `model`: into or out of the fleet if that
        changed (its bootstrap reference was built, or it met class labels)."""
        if self.windows_on and self._wants(model) != (model.name in self.fleet):
            self.enrol(model)

    def enrol(self, model: MonitoredModel) -> None:
        """Into the fleet when the native core can write its window, else out of it."""
        if self._wants(model):
            enroll(self.fleet, model)
        else:
            self.fleet.drop(model.name)

    def forget(self, name: str) -> None:
        self.schemas.pop(name, None)
        self.fleet.drop(name)

    def _wants(self, model: MonitoredModel) -> bool:
        return self.windows_on and reads_natively(model) and writes_natively(model)


def reads_natively(model: MonitoredModel) -> bool:
    """Whether the native decoder's arrays are all a model's windows need: not when its
    reference encodes categorical features or class labels (they read the decoded values)."""
    reference = model.reference
    return reference is None or (reference.categorical is None and reference.classes is None)


def writes_natively(model: MonitoredModel) -> bool:
    """Whether the native core can write this model's window (see the module docstring)."""
    window = model.window
    if window is None or window.classes or model.class_tally is not None:
        return False
    reference = model.reference
    if reference is None:
        return window.n_features == 0
    return reference.summary is None and reference.categorical is None and reference.classes is None


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
        model.charts if reference is not None else None,
    )
