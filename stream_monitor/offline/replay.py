"""`stream-monitor replay`: the engine over a JSONL file, alerts written as JSONL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO

from stream_monitor.config.settings import Settings
from stream_monitor.engine.core import Engine
from stream_monitor.offline.file_run import FileRun
from stream_monitor.offline.progress import Progress
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.sinks.files import JsonlAlertWriter


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
    run = FileRun(path, settings.batch_size, progress)
    for batch in run.batches():
        outcome = engine.process(batch)
        writer.write(outcome.alerts)
        run.took(outcome)
    return ReplaySummary(run.events, run.invalid, writer.count, run.seconds)
