"""One pass over JSONL files in batches: what replay and backtest share.

The counts both report (events, dead letters, seconds) and the progress line are kept here,
so each mode's loop holds only what it does with the engine's outcome.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from stream_monitor.alerts.outcome import BatchOutcome
from stream_monitor.offline.progress import Progress
from stream_monitor.sources.files import batch_bytes, file_batches
from stream_monitor.sources.records import RecordBatch


class FileRun:
    """Iterate `batches()`, hand each batch to the engine and its outcome to `took()`.

    Several files are read in order, a batch never spanning two; `path` is the file of the
    last batch, for whatever names its lines.
    """

    def __init__(
        self, paths: Path | Sequence[Path], batch_size: int, progress: Progress | None = None
    ) -> None:
        self.paths = (paths,) if isinstance(paths, Path) else tuple(paths)
        self.path = self.paths[0]
        self.batch_size = batch_size
        self.progress = progress
        self.events = 0
        self.invalid = 0
        self.seconds = 0.0
        self._bytes = 0

    def batches(self) -> Iterator[RecordBatch]:
        """The files' batches in order; the counts and the progress line follow each one."""
        started = time.perf_counter()
        for path in self.paths:
            self.path = path
            for batch in file_batches(path, self.batch_size):
                yield batch
                self.events += len(batch)
                if self.progress is not None:
                    self._bytes += batch_bytes(batch)
                    self.progress.update(self.events, self._bytes)
        self.seconds = time.perf_counter() - started
        if self.progress is not None:
            self.progress.close(self.events, self._bytes)

    def took(self, outcome: BatchOutcome) -> None:
        """Count what the engine made of the last batch."""
        self.invalid += len(outcome.dead_letters)
