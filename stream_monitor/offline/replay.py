"""`stream-monitor replay`: the engine over a JSONL file, alerts written as JSONL."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from stream_monitor.config.settings import Settings
from stream_monitor.engine.core import Engine
from stream_monitor.offline.progress import Progress
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.sinks.files import JsonlAlertWriter
from stream_monitor.sources.files import batch_bytes, file_batches


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    events: int
    invalid: int
    alerts: int
    seconds: float

    def __str__(self) -> str:
        rate = self.events / self.seconds if self.seconds > 0 else float("inf")
        return (
            f"{self.events} events ({self.invalid} invalid), {self.alerts} alerts "
            f"in {self.seconds:.2f} s ({rate:,.0f} events/s)"
        )


def replay_file(
    path: Path,
    settings: Settings,
    references: dict[str, PreparedReference],
    out: IO[bytes],
    progress: Progress | None = None,
) -> ReplaySummary:
    engine = Engine(settings.detector_settings(), references)
    writer = JsonlAlertWriter(out)
    events = invalid = done = 0
    started = time.perf_counter()
    for batch in file_batches(path, settings.batch_size):
        outcome = engine.process(batch)
        writer.write(outcome.alerts)
        events += len(batch)
        invalid += len(outcome.dead_letters)
        if progress is not None:
            done += batch_bytes(batch)
            progress.update(events, done)
    if progress is not None:
        progress.close(events, done)
    return ReplaySummary(events, invalid, writer.count, time.perf_counter() - started)
