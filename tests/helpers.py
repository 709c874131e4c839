"""Shared test helpers: synthetic batches and references."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import orjson

from stream_monitor.reference.loading import prepare_from_events
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.sources.records import RecordBatch
from stream_monitor.tools.synthetic import SyntheticModel


def batch_of(
    values: Iterable[bytes | None],
    keys: Iterable[bytes | None] | None = None,
    start_offset: int = 0,
) -> RecordBatch:
    values = list(values)
    keys = list(keys) if keys is not None else [None] * len(values)
    batch = RecordBatch()
    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        batch.append(key, value, "predictions", 0, start_offset + i, 1_700_000_000.0 + i)
    return batch


def batches_of_events(events: list[dict[str, object]], size: int = 1000) -> list[RecordBatch]:
    values = [orjson.dumps(e) for e in events]
    return [batch_of(values[s : s + size], start_offset=s) for s in range(0, len(values), size)]


def references(models: Iterable[SyntheticModel], n: int = 5000) -> dict[str, PreparedReference]:
    return {m.name: prepare_from_events(m.name, m.reference(n), 20, "test") for m in models}


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example_generator(example: str) -> ModuleType:
    """`examples/<example>/generate.py` as a module (the examples are scripts, not a package)."""
    path = EXAMPLES / example / "generate.py"
    spec = importlib.util.spec_from_file_location(f"{example}_generate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
