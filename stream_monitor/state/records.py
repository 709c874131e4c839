"""Window and alert state as changelog records: compact, incremental, exactly restorable.

A model's state is written as records keyed `<model>\\x1f<part>` on a compacted topic:

- `full`: the window's ring buffers as they lie (raw float64 bytes, head and fill), starting
  a new generation;
- `d<i>`: the rows appended since the previous record of the same generation, oldest first;
- `boot`: the events taken so far as a bootstrap reference (models without a reference);
- `p<i>`: rows of the window that late labels changed (their actual and error), applied in
  sequence order among the deltas of the same generation.

Each record also carries the model's counters and alert state (`meta`, with a sequence
number: the newest wins). Restoring applies the newest generation's `full` record, then its
deltas in order: the ring buffers come back byte for byte in the same positions, so every
later check (including order-sensitive float sums) is identical to an uninterrupted run.
A delta holds each event once; a full record rewrites the window after at most
`FULL_EVERY_WINDOWS` windows of deltas, so the changelog carries about 1.5 times the raw
window bytes of each event, and compaction keeps a bounded number of keys per model.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

MAGIC = b"SMS1"
SEPARATOR = "\x1f"


class StateError(Exception):
    """A changelog record that cannot be read."""


@dataclass(slots=True)
class RecordProgress:
    """What has been written of one model's records: the sequence number of the last one,
    the generation of its full record, and the deltas since (the changelog's one scheme,
    shared by the model windows and the label rings)."""

    seq: int = 0
    generation: int = 0
    deltas: int = 0
    rows_since_full: int = 0


@dataclass(slots=True)
class StateRecord:
    model: str
    part: str  # "full", "d<i>" or "boot"
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def key(self) -> bytes:
        return f"{self.model}{SEPARATOR}{self.part}".encode()


def latest_parts(records: Iterable[StateRecord]) -> dict[str, dict[str, StateRecord]]:
    """Each model's records by part; a later record of a key replaces an earlier one, as
    compaction would. Window state and label state are restored from the same shape."""
    by_model: dict[str, dict[str, StateRecord]] = {}
    for r in records:
        by_model.setdefault(r.model, {})[r.part] = r
    return by_model


def newest_meta(parts: dict[str, StateRecord]) -> dict[str, Any] | None:
    """The meta of a model's newest record (the highest sequence number); None if none has."""
    metas = [r.meta for r in parts.values() if r.meta]
    return max(metas, key=lambda m: int(m["seq"])) if metas else None


def encode(record: StateRecord) -> bytes:
    """Header (JSON: meta and array layout) then the arrays' raw bytes."""
    layout = [[name, a.dtype.str, list(a.shape)] for name, a in record.arrays.items()]
    header = orjson.dumps({"part": record.part, "meta": record.meta, "arrays": layout})
    body = b"".join(np.ascontiguousarray(a).tobytes() for a in record.arrays.values())
    return MAGIC + struct.pack(">I", len(header)) + header + body


def decode(key: bytes, value: bytes) -> StateRecord:
    if value[:4] != MAGIC:
        raise StateError(f"state record {key!r}: unknown format")
    (size,) = struct.unpack(">I", value[4:8])
    header = orjson.loads(value[8 : 8 + size])
    arrays: dict[str, np.ndarray] = {}
    pos = 8 + size
    for name, dtype, shape in header["arrays"]:
        dt = np.dtype(dtype)
        count = int(np.prod(shape)) if shape else 1
        nbytes = count * dt.itemsize
        arrays[name] = np.frombuffer(value, dt, count, pos).reshape(shape).copy()
        pos += nbytes
    model, _, _part = key.decode().partition(SEPARATOR)
    return StateRecord(model, header["part"], header["meta"], arrays)
