"""The label join's durable state: pending predictions and label positions, as changelog records.

Beside a model's window records (state.py) its pending predictions are written as:

- `Lfull`: the whole ring (pending.py) as it lies, starting a new generation;
- `L<i>`: the predictions remembered since the previous record and the sequence numbers of
  those joined since, applied in order on top of the generation's `Lfull`.

A full record follows 2H remembered predictions of deltas (or MAX_DELTAS deltas), so a
prediction costs about 1.5 of its 50 ring bytes in the changelog, and compaction keeps a
bounded number of keys per model. The next offset to read of labels partition p is a record
of its own (`\\x1flabels@<topic>`) in changelog partition p. All of them are produced in the
transaction of the batch that changed them (exactly-once), so after a crash the pending
predictions, the window rows labels wrote and the label positions come back together:
no label is lost or applied twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream_monitor.labels.join import LabelJoin
from stream_monitor.labels.pending import PendingRing
from stream_monitor.state.records import (
    RecordProgress,
    StateRecord,
    latest_parts,
    newest_meta,
)

log = logging.getLogger(__name__)

FULL = "Lfull"
MAX_DELTAS = 256  # bounds the keys per model that compaction must keep
POSITIONS = "labels@"  # part of a label position record (model "")


@dataclass(slots=True)
class RingProgress(RecordProgress):
    """What has been written of one model's ring of pending predictions."""

    saved_total: int = 0  # predictions remembered that the changelog holds


@dataclass(slots=True)
class RingTracker:
    """Knows, per model, what of its ring the changelog lacks; turns it into records."""

    progress: dict[str, RingProgress] = field(default_factory=dict)

    def forget(self, models: Iterable[str]) -> None:
        for m in models:
            self.progress.pop(m, None)

    def records(self, join: LabelJoin, models: Iterable[str]) -> list[StateRecord]:
        out = []
        for model in models:
            ring = join.rings.get(model)
            if ring is None:
                continue
            p = self.progress.setdefault(model, RingProgress())
            joins, ring.unsaved_joins = ring.unsaved_joins, []
            if ring.total == p.saved_total and not joins:
                continue
            out.append(_record(model, ring, p, joins))
        return out


def _record(model: str, ring: PendingRing, p: RingProgress, joins: list[int]) -> StateRecord:
    new = ring.total - p.saved_total
    p.seq += 1
    if (
        p.generation == 0
        or p.deltas >= MAX_DELTAS
        or new > ring.capacity
        or p.rows_since_full + new > 2 * ring.capacity
    ):
        p.generation += 1
        p.deltas = p.rows_since_full = 0
        part, arrays = FULL, dict(ring.arrays())
    else:
        part = f"L{p.deltas}"
        arrays = ring.rows_since(p.saved_total)
        arrays["start"] = np.array([p.saved_total], dtype=np.int64)
        arrays["joins"] = np.array(joins, dtype=np.int64)
        p.deltas += 1
        p.rows_since_full += new
    p.saved_total = ring.total
    meta = {
        "seq": p.seq,
        "generation": p.generation,
        "deltas": p.deltas,
        "rows_since_full": p.rows_since_full,
        "total": ring.total,
        "newest": ring.newest if np.isfinite(ring.newest) else None,
        "capacity": ring.capacity,
    }
    return StateRecord(model, part, meta, arrays)


def position_record(topic: str, partition: int, offset: int) -> StateRecord:
    """The next offset to read of a labels partition (goes to changelog partition `partition`)."""
    meta = {"topic": topic, "partition": partition, "offset": offset}
    return StateRecord("", POSITIONS + topic, meta, {})


def split(
    records: list[StateRecord], topic: str
) -> tuple[list[StateRecord], list[StateRecord], dict[int, int]]:
    """(window records, ring records, next offset per labels partition) of restored records."""
    windows: list[StateRecord] = []
    rings: list[StateRecord] = []
    positions: dict[int, int] = {}
    for r in records:
        if not r.model:
            if r.part == POSITIONS + topic:
                positions[int(r.meta["partition"])] = int(r.meta["offset"])
        elif r.part == FULL or (r.part.startswith("L") and r.part[1:].isdigit()):
            rings.append(r)
        else:
            windows.append(r)
    return windows, rings, positions


def restore(join: LabelJoin, records: list[StateRecord], tracker: RingTracker) -> list[str]:
    """Rebuild the rings whose records are given; returns the models restored."""
    restored = []
    for model, parts in sorted(latest_parts(records).items()):
        meta = newest_meta(parts)
        ring = None if meta is None else _restore_ring(parts, meta)
        if ring is None or meta is None:
            log.warning("model %r: pending predictions could not be restored", model)
            continue
        if ring.capacity != join.horizon_events:
            ring = _resized(ring, join.horizon_events)
        ring.unsaved_joins = []  # the changelog has them
        join.rings[model] = ring
        tracker.progress[model] = RingProgress(
            seq=int(meta["seq"]),
            generation=int(meta["generation"]) if ring.capacity == meta["capacity"] else 0,
            deltas=int(meta["deltas"]),
            rows_since_full=int(meta["rows_since_full"]),
            saved_total=ring.total,
        )
        restored.append(model)
    return restored


def _restore_ring(parts: dict[str, StateRecord], meta: dict[str, Any]) -> PendingRing | None:
    full = parts.get(FULL)
    if full is None or full.meta["generation"] != meta["generation"]:
        return None
    ring = PendingRing(int(full.meta["capacity"]))
    newest = full.meta["newest"]
    ring.load(full.arrays, int(full.meta["total"]), -np.inf if newest is None else float(newest))
    for i in range(int(meta["deltas"])):
        delta = parts.get(f"L{i}")
        if delta is None or delta.meta["generation"] != meta["generation"]:
            return None
        a = delta.arrays
        if int(a["start"][0]) != ring.total:
            return None
        ring.remember(a["ids"], a["prediction"], a["pred_class"], a["timestamp"], a["ordinal"])
        _apply_joins(ring, a["joins"])
    return ring


def _apply_joins(ring: PendingRing, seqs: np.ndarray) -> None:
    h2 = 2 * ring.capacity
    for q in seqs.tolist():
        if q >= ring.total - h2:
            ring.join(int(ring.ids[q % h2]), q)


def _resized(old: PendingRing, capacity: int) -> PendingRing:
    """The same pending predictions in a ring of another horizon (the setting changed)."""
    ring = PendingRing(capacity)
    a = old.rows_since(0)
    ring.remember(a["ids"], a["prediction"], a["pred_class"], a["timestamp"], a["ordinal"])
    first = max(0, old.total - old.capacity)
    done = np.flatnonzero(old.joined[np.arange(first, old.total) % (2 * old.capacity)])
    for k in done.tolist():  # joined ones stay joined (those still remembered)
        if k >= ring.total - 2 * capacity:
            ring.join(int(ring.ids[k % (2 * capacity)]), k)
    return ring
