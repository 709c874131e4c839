"""Predictions awaiting their late label: one preallocated ring per model, and an id index.

Memory is bounded by the count horizon H (`label_horizon_events`), allocated once per model
that has predictions to remember. The k-th prediction remembered (its sequence number q)
lives at data slot q % H: its prediction, class label, event time and the model's event
count at that prediction (which says whether, and where, it is still in the window). Its id
lives longer, at q % 2H, with a joined flag: a label for one of the H predictions before
the live ones is known to be *late*, and a second label for a joined one *unmatched*.

Ids are 64-bit BLAKE2b digests of the `event_id` text: fixed width, so the ring is plain
numpy arrays that the changelog stores as they lie, and the same in every process. Two ids
collide with probability about H / 2^64 per label (negligible; such a label would join the
wrong prediction of the same model).

Bytes per slot: 2 x (8 id + 1 flag) + 8 prediction + 8 class + 8 time + 8 count = 50, plus
about 100 for each index entry (a dict of the predictions still awaiting their label).
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import blake2b

import numpy as np
import numpy.typing as npt

from stream_monitor.arrays import FloatArray

U64Array = npt.NDArray[np.uint64]
I64Array = npt.NDArray[np.int64]

# the arrays a ring is stored as (full records), and those of a slice of new rows (deltas)
DATA_FIELDS = ("prediction", "pred_class", "timestamp", "ordinal")
ID_FIELDS = ("ids", "joined")


def id_hashes(texts: Sequence[str]) -> U64Array:
    """Stable 64-bit digests (0 is kept for an empty slot)."""
    digests = b"".join(
        blake2b(t.encode("utf-8", "surrogatepass"), digest_size=8).digest() for t in texts
    )
    out = np.frombuffer(digests, dtype="<u8").astype(np.uint64)
    out[out == 0] = 1
    return out


class PendingRing:
    """The last H predictions of one model that carried an event_id and no actual."""

    __slots__ = (
        "capacity",
        "ids",
        "index",
        "joined",
        "newest",
        "ordinal",
        "pred_class",
        "prediction",
        "timestamp",
        "total",
        "unsaved_joins",
    )

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.total = 0  # predictions remembered so far: sequence numbers 0 .. total - 1
        self.newest = -np.inf  # the newest event time remembered (the time horizon's anchor)
        self.ids: U64Array = np.zeros(2 * capacity, dtype=np.uint64)
        self.joined: npt.NDArray[np.bool_] = np.zeros(2 * capacity, dtype=np.bool_)
        self.prediction: FloatArray = np.full(capacity, np.nan)
        self.pred_class: U64Array = np.zeros(capacity, dtype=np.uint64)  # 0: a number
        self.timestamp: FloatArray = np.full(capacity, np.nan)
        self.ordinal: I64Array = np.zeros(capacity, dtype=np.int64)
        self.index: dict[int, int] = {}  # id -> sequence number, while awaiting a label
        self.unsaved_joins: list[int] = []  # sequence numbers joined, for the changelog

    def nbytes(self) -> int:
        return sum(getattr(self, f).nbytes for f in DATA_FIELDS + ID_FIELDS)

    # -- predictions in ------------------------------------------------------------------

    def remember(
        self,
        ids: U64Array,
        prediction: FloatArray,
        pred_class: U64Array,
        timestamp: FloatArray,
        ordinal: I64Array,
    ) -> None:
        """Add predictions in arrival order; the oldest beyond the capacity are evicted."""
        for start in range(0, len(ids), self.capacity):  # chunks of at most H
            stop = start + self.capacity
            self._remember(
                ids[start:stop],
                prediction[start:stop],
                pred_class[start:stop],
                timestamp[start:stop],
                ordinal[start:stop],
            )

    def _remember(
        self,
        ids: U64Array,
        prediction: FloatArray,
        pred_class: U64Array,
        timestamp: FloatArray,
        ordinal: I64Array,
    ) -> None:
        n, h, index = len(ids), self.capacity, self.index
        if n == 0:
            return
        seq = np.arange(self.total, self.total + n, dtype=np.int64)
        evicted = seq[seq >= h] - h  # their data slots are taken now
        for key, q in zip(self.ids[evicted % (2 * h)].tolist(), evicted.tolist(), strict=True):
            if index.get(key) == q:
                del index[key]
        slots, id_slots = seq % h, seq % (2 * h)
        self.ids[id_slots] = ids
        self.joined[id_slots] = False
        self.prediction[slots] = prediction
        self.pred_class[slots] = pred_class
        self.timestamp[slots] = timestamp
        self.ordinal[slots] = ordinal
        index.update(zip(ids.tolist(), seq.tolist(), strict=True))  # a repeated id: the newest
        self.total += n
        finite = timestamp[np.isfinite(timestamp)]
        if finite.size:
            self.newest = max(self.newest, float(finite.max()))

    # -- labels in -----------------------------------------------------------------------

    def expired(self, q: int, horizon_seconds: float) -> bool:
        """Older (event time) than the newest prediction minus the horizon."""
        return bool(self.timestamp[q % self.capacity] < self.newest - horizon_seconds)

    def join(self, key: int, q: int) -> None:
        """The label of prediction q arrived: it awaits nothing any more."""
        self.joined[q % (2 * self.capacity)] = True
        self.unsaved_joins.append(q)
        if self.index.get(key) == q:
            del self.index[key]

    def known(self, key: int) -> tuple[bool, bool]:
        """(remembered among the last 2H, already joined) for an id not awaiting a label."""
        hits = np.flatnonzero(self.ids == np.uint64(key))
        if not hits.size:
            return False, False
        h2 = 2 * self.capacity
        base = self.total - self.total % h2
        seqs = np.where(hits < self.total % h2, base + hits, base - h2 + hits)
        newest = int(hits[np.argmax(seqs)])
        return True, bool(self.joined[newest])

    def awaiting(self, horizon_seconds: float) -> int:
        """Predictions still awaiting their label (not joined, not expired)."""
        live = np.arange(max(0, self.total - self.capacity), self.total)
        if not live.size:
            return 0
        waiting = ~self.joined[live % (2 * self.capacity)]
        fresh = ~(self.timestamp[live % self.capacity] < self.newest - horizon_seconds)
        return int((waiting & fresh).sum())

    # -- changelog -----------------------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        """The whole ring as it lies."""
        return {f: getattr(self, f) for f in ID_FIELDS + DATA_FIELDS}

    def rows_since(self, q: int) -> dict[str, np.ndarray]:
        """The predictions from sequence number q on (at most H), oldest first."""
        seq = np.arange(max(q, self.total - self.capacity), self.total, dtype=np.int64)
        out = {f: getattr(self, f)[seq % self.capacity] for f in DATA_FIELDS}
        out["ids"] = self.ids[seq % (2 * self.capacity)]
        return out

    def load(self, arrays: dict[str, np.ndarray], total: int, newest: float) -> None:
        """Take a whole ring as it lay; the index is rebuilt."""
        for f in ID_FIELDS + DATA_FIELDS:
            getattr(self, f)[:] = arrays[f]
        self.total, self.newest = total, newest
        self.index = {}
        live = np.arange(max(0, total - self.capacity), total, dtype=np.int64)
        keys = self.ids[live % (2 * self.capacity)].tolist()
        done = self.joined[live % (2 * self.capacity)].tolist()
        for key, q, joined in zip(keys, live.tolist(), done, strict=True):
            self.index[key] = q  # as remember() would have, then join()
            if joined:
                del self.index[key]
