"""Records from a JSONL file, batched as if read from one partition of a topic named after it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from stream_monitor.sources.records import RecordBatch


def batch_bytes(batch: RecordBatch) -> int:
    """Bytes of the file lines a batch was read from (newlines included): the progress."""
    return sum(len(v) + 1 for v in batch.values if v is not None)


def file_batches(path: Path, batch_size: int) -> Iterator[RecordBatch]:
    """Batches of a JSONL file of prediction events, as if read from partition 0 of a topic
    named after the file, the offset being the line index. Records have no key: each event
    names its model in its `model` field.
    """
    topic = path.name
    batch = RecordBatch()
    with path.open("rb") as fh:
        for offset, line in enumerate(fh):
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            batch.append(None, line, topic, 0, offset, None)
            if len(batch) >= batch_size:
                yield batch
                batch = RecordBatch()
    if len(batch):
        yield batch
