"""Shared helpers of the late-label tests: predictions without actuals, label records."""

from __future__ import annotations

import random
from collections.abc import Iterable

import orjson

from stream_monitor.config.detector import DetectorSettings
from stream_monitor.engine.core import Engine
from stream_monitor.labels.join import LabelJoin
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.sources.records import RecordBatch

LABELS_TOPIC = "labels"


def without_actuals(events: Iterable[dict[str, object]]) -> list[dict[str, object]]:
    """The predictions as a serving system sends them before the truth is known."""
    return [{k: v for k, v in e.items() if k != "actual"} for e in events]


def labels_of(
    events: Iterable[dict[str, object]], shift_from: int | None = None, shift: float = 0.0
) -> list[dict[str, object]]:
    """One label per event (its actual); from event index `shift_from` on, the actual moves
    by `shift`: the model's error rises there."""
    out = []
    for i, e in enumerate(events):
        actual = e["actual"]
        if shift_from is not None and i >= shift_from and isinstance(actual, float):
            actual = actual + shift
        out.append({"model": e["model"], "event_id": e["event_id"], "actual": actual})
    return out


def shuffled(items: list[dict[str, object]], seed: int = 7) -> list[dict[str, object]]:
    items = list(items)
    random.Random(seed).shuffle(items)
    return items


def label_batch(
    values: Iterable[bytes | None], keys: Iterable[bytes | None], start_offset: int = 0
) -> RecordBatch:
    batch = RecordBatch()
    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        batch.append(key, value, LABELS_TOPIC, 0, start_offset + i, 1_700_000_000.0 + i)
    return batch


def label_batches(labels: list[dict[str, object]], size: int = 500) -> list[RecordBatch]:
    values = [orjson.dumps(x) for x in labels]
    keys = [str(x["model"]).encode() for x in labels]
    return [
        label_batch(values[s : s + size], keys[s : s + size], s)
        for s in range(0, len(values), size)
    ]


def joining_engine(
    settings: DetectorSettings,
    references: dict[str, PreparedReference],
    horizon_events: int = 10_000,
    horizon_seconds: float = 86_400.0,
) -> Engine:
    engine = Engine(settings, references)
    engine.observe(LabelJoin(horizon_events, horizon_seconds))
    return engine


def join_of(engine: Engine) -> LabelJoin:
    """The label join observing `engine`."""
    joins = [o for o in engine.observers if isinstance(o, LabelJoin)]
    assert len(joins) == 1, joins
    return joins[0]
