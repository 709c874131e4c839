"""Late labels joined to their predictions (contract §2): engine-level, no Kafka here.

Predictions that carry an `event_id` and no `actual` are remembered per model (pending.py)
until their label arrives or the horizon evicts them: by count (the oldest beyond
`label_horizon_events`) or by event time (older than the model's newest prediction minus
`label_horizon_seconds`). A label with the same model and event_id:

- computes the error as the engine does for an event arriving with its actual:
  |prediction - actual| for numbers, 1/0 for a wrong/right class label;
- writes actual and error into the prediction's window row while it is still in the window,
  so MAE, RMSE, accuracy and F1 of the performance check count it;
- feeds the error to the concept-drift detector (ADWIN), in label-arrival order.

Every `check_every` joined labels of a model, the engine runs its performance and
concept-drift checks at once (`Engine.join_labels`), so label-driven alerts need no further
predictions. Outcomes are counted per model: `joined`, `late` (the prediction was
evicted, or expired), `unmatched` (no such prediction, a second label of one, or a model
not seen here) and `invalid` (unreadable: also a dead letter).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from stream_monitor.alerts.outcome import BatchOutcome
from stream_monitor.decode.arrays import floats
from stream_monitor.decode.labels import ModelLabels, decode_labels
from stream_monitor.engine.core import Engine, JoinedLabels
from stream_monitor.engine.models import MonitoredModel
from stream_monitor.engine.observers import EngineObserver, TakenEvents
from stream_monitor.labels.pending import PendingRing, id_hashes
from stream_monitor.sources.records import RecordBatch
from stream_monitor.window.ring import WindowBlock

STATUSES = ("joined", "late", "unmatched", "invalid")


@dataclass(slots=True)
class LabelJoin(EngineObserver):
    """Pending predictions of every model, and the join of label batches against them.

    It observes the engine (`engine.observe(join)`) to remember the predictions that may get
    a label, and hands the labels it joins back through `Engine.join_labels`.
    """

    horizon_events: int
    horizon_seconds: float
    rings: dict[str, PendingRing] = field(default_factory=dict)

    # -- predictions ---------------------------------------------------------------------

    def events_taken(self, taken: TakenEvents) -> None:
        """Keep a batch's predictions of one model that may get a label later."""
        state, good, block = taken.model, taken.positions, taken.block
        seen = taken.seen_before
        if taken.decoded.native:  # numbers only, every event taken: no label is a NaN actual
            ids = taken.decoded.events.event_ids
            unlabelled = np.flatnonzero(np.isnan(block.actual)).tolist()
            self._remember(state.name, ids, [i for i in unlabelled if ids[i]], [], block, seen)
            return
        events = taken.events
        if len(good) == len(events):
            ids, predictions, actuals = events.event_ids, events.predictions, events.actuals
        else:  # some events became dead letters
            kept = set(good)
            rows = [i for i, b in enumerate(events.index) if b in kept]
            ids = [events.event_ids[i] for i in rows]
            predictions = [events.predictions[i] for i in rows]
            actuals = [events.actuals[i] for i in rows]
        take = [i for i, (e, a) in enumerate(zip(ids, actuals, strict=True)) if e and a is None]
        named = [j for j, i in enumerate(take) if isinstance(predictions[i], str)]
        classes = [str(predictions[take[j]]) for j in named]
        self._remember(state.name, ids, take, list(zip(named, classes, strict=True)), block, seen)

    def _remember(
        self,
        model: str,
        ids: Sequence[str | None],
        take: list[int],
        named: list[tuple[int, str]],
        block: WindowBlock,
        seen: int,
    ) -> None:
        """Keep the block rows `take` (their ids in `ids`) as pending predictions of `model`;
        `named`: (position in `take`, class label) of the predictions that are labels."""
        if not take:
            return
        ring = self.rings.get(model)
        if ring is None:
            ring = self.rings[model] = PendingRing(self.horizon_events)
        pick = np.array(take, dtype=np.int64)
        classes = np.zeros(len(take), dtype=np.uint64)
        if named:
            classes[[j for j, _ in named]] = id_hashes([label for _, label in named])
        ring.remember(
            id_hashes([str(ids[i]) for i in take]),
            block.prediction[pick],
            classes,
            block.timestamp[pick],
            seen + 1 + pick,
        )

    def forget(self, models: list[str]) -> None:
        for model in models:
            self.rings.pop(model, None)

    # -- labels --------------------------------------------------------------------------

    def apply(self, engine: Engine, batch: RecordBatch) -> BatchOutcome:
        """Join a batch of label records; what it caused, as the engine reports a batch."""
        outcome = BatchOutcome()
        decoded = decode_labels(batch)
        outcome.dead_letters.extend(decoded.dead_letters)
        for model in decoded.dead_letter_models:
            _count(outcome, model, "invalid")
        for model, all_labels in decoded.by_model.items():
            for key, labels in self._by_version(engine, model, all_labels):
                state, ring = engine.models.get(key), self.rings.get(key)
                if state is None or ring is None:
                    _count(outcome, key, "unmatched", len(labels))
                    continue
                self._join(state, ring, labels, engine, batch, outcome)
        return outcome

    def _by_version(
        self, engine: Engine, model: str, labels: ModelLabels
    ) -> list[tuple[str, ModelLabels]]:
        """A model's labels split by the version whose prediction each joins (a label names
        the model, not its version); a label no version knows goes to the newest."""
        keys = engine.keys_of(model)
        if len(keys) <= 1:
            return [(keys[0] if keys else model, labels)]
        hashes = id_hashes(labels.event_ids).tolist()
        owner: list[str] = []
        rings = [(k, self.rings[k]) for k in keys if k in self.rings]
        for h in hashes:
            awaiting = (k for k, ring in rings if h in ring.index)
            seen = (k for k, ring in rings if ring.known(h)[0])  # joined or evicted
            owner.append(next(awaiting, None) or next(seen, keys[0]))
        parts: dict[str, ModelLabels] = {}
        for j, key in enumerate(owner):
            part = parts.setdefault(key, ModelLabels(model))
            part.index.append(labels.index[j])
            part.event_ids.append(labels.event_ids[j])
            part.actuals.append(labels.actuals[j])
        return list(parts.items())

    def _join(
        self,
        state: MonitoredModel,
        ring: PendingRing,
        labels: ModelLabels,
        engine: Engine,
        batch: RecordBatch,
        outcome: BatchOutcome,
    ) -> None:
        keys = id_hashes(labels.event_ids).tolist()
        joined: list[int] = []  # positions in `labels`
        seqs: list[int] = []
        misses: list[int] = []
        late = 0
        for j, key in enumerate(keys):
            q = ring.index.get(key)
            if q is None:
                misses.append(j)
            elif ring.expired(q, self.horizon_seconds):
                late += 1
            else:
                ring.join(key, q)
                joined.append(j)
                seqs.append(q)
        unmatched = 0
        for j in misses:  # after the joins: a second label of an event is unmatched
            known, done = ring.known(keys[j])
            if known and not done:
                late += 1
            else:
                unmatched += 1
        for status, n in (("joined", len(joined)), ("late", late), ("unmatched", unmatched)):
            if n:
                _count(outcome, state.name, status, n)
        if joined:
            seq = np.array(seqs, dtype=np.int64)
            self._write(state, ring, labels, joined, seq, engine, batch, outcome)

    def _write(
        self,
        state: MonitoredModel,
        ring: PendingRing,
        labels: ModelLabels,
        joined: list[int],
        seqs: np.ndarray,
        engine: Engine,
        batch: RecordBatch,
        outcome: BatchOutcome,
    ) -> None:
        """The joined labels' errors and window rows, handed to the engine."""
        slots = seqs % ring.capacity
        actual_raw = [labels.actuals[j] for j in joined]
        actual = floats(actual_raw)  # NaN for class labels
        named = [i for i, a in enumerate(actual_raw) if isinstance(a, str)]
        actual_class = np.zeros(len(joined), dtype=np.uint64)
        if named:
            actual_class[named] = id_hashes([str(actual_raw[i]) for i in named])
        pred_class = ring.pred_class[slots]
        error = np.where(
            pred_class == 0,
            np.abs(ring.prediction[slots] - actual),
            np.where(actual_class != 0, (actual_class != pred_class).astype(np.float64), np.nan),
        )
        window = state.window
        ordinal = ring.ordinal[slots]
        rows = np.full(len(joined), -1, dtype=np.int64)
        if window is not None:
            back = state.events_seen - ordinal  # 0: the newest row of the window
            inside = (back >= 0) & (back < window.count)
            rows[inside] = (window.head - 1 - back[inside]) % window.size
        codes = None
        if state.class_tally is not None and named:
            codes = state.class_tally.codes(actual_raw)
        batch_index = [labels.index[j] for j in joined]
        found = JoinedLabels(batch_index, rows, actual, error, codes)
        engine.join_labels(state, found, batch, outcome)

    # -- status --------------------------------------------------------------------------

    def awaiting(self, model: str) -> int:
        ring = self.rings.get(model)
        return 0 if ring is None else ring.awaiting(self.horizon_seconds)


def _count(outcome: BatchOutcome, model: str, status: str, n: int = 1) -> None:
    key = (model, status)
    outcome.label_counts[key] = outcome.label_counts.get(key, 0) + n
