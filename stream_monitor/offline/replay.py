"""`stream-monitor replay`: the engine over JSONL files, alerts written as JSONL.

The lines it cannot use are dead letters, as on the topic; a file has no dead-letter topic,
so they are named here instead, by file and line, to be found and fixed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import orjson

from stream_monitor.config.loading import ConfigError
from stream_monitor.config.settings import Settings
from stream_monitor.decode.common import line_detail
from stream_monitor.engine.core import Engine
from stream_monitor.offline.file_run import FileRun
from stream_monitor.offline.progress import Progress
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.sinks.files import JsonlAlertWriter
from stream_monitor.sources.records import DeadLetter, RecordBatch

SHOWN = 5  # bad lines in the log; --bad-lines FILE has every one


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    events: int
    invalid: int
    alerts: int
    seconds: float
    bad_report: tuple[str, ...] = ()  # the first bad lines, then how many more
    bad_lines: Path | None = None  # the file every bad line was written to

    def __str__(self) -> str:
        rate = self.events / self.seconds if self.seconds > 0 else float("inf")
        invalid = f"{self.invalid} invalid"
        if self.invalid and self.bad_lines is None:
            invalid += "; --bad-lines FILE lists them all"
        elif self.invalid:
            invalid += f", listed in {self.bad_lines}"
        return (
            f"{self.events} events ({invalid}), {self.alerts} alerts "
            f"in {self.seconds:.2f} s ({rate:,.0f} events/s)"
        )


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line replay could not use: its file, its line number (from 1, blank lines
    counted, as an editor shows it) and the dead letter's reason."""

    file: str
    line: int
    reason: str
    detail: str
    value: bytes

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}: {self.detail}"

    def to_json(self) -> bytes:
        """One JSON line; the raw line as text (invalid UTF-8 replaced) so any line fits."""
        text = self.value.decode("utf-8", errors="replace")
        fields = {"file": self.file, "line": self.line, "reason": self.reason}
        return orjson.dumps({**fields, "detail": self.detail, "value": text}) + b"\n"


class BadLines:
    """Every bad line of a replay: counted, the first `shown` kept for the log and each
    written to `out` as it is found, so that a month of bad lines is not held in memory."""

    def __init__(self, out: IO[bytes] | None = None, shown: int = SHOWN) -> None:
        self.out = out
        self.shown = shown
        self.first: list[BadLine] = []
        self.count = 0

    def add(self, path: Path, batch: RecordBatch, dead_letters: list[DeadLetter]) -> None:
        """A batch's dead letters (positions in `batch`, read from `path`), in line order."""
        for letter in sorted(dead_letters, key=lambda d: d.index):
            value = batch.values[letter.index] or b""
            detail = line_detail(letter.reason, letter.detail, value)
            line = batch.offsets[letter.index] + 1  # the offset is the line's index
            bad = BadLine(str(path), line, letter.reason, detail, value)
            self.count += 1
            if len(self.first) < self.shown:
                self.first.append(bad)
            if self.out is not None:
                self.out.write(bad.to_json())

    def report(self) -> tuple[str, ...]:
        """The log's lines: the first bad lines, then how many more there are."""
        lines = [str(bad) for bad in self.first]
        if self.count > len(self.first):
            lines.append(f"... and {self.count - len(self.first)} more")
        return tuple(lines)


def replay_file(
    paths: Path | Sequence[Path],
    settings: Settings,
    references: dict[str, PreparedReference],
    out: IO[bytes],
    progress: Progress | None = None,
    bad: BadLines | None = None,
) -> ReplaySummary:
    """The files, in order, as one stream through one engine; alerts written to `out`."""
    engine = Engine(
        settings.detector_settings(), references, native_threads=settings.native_threads
    )
    writer = JsonlAlertWriter(out)
    bad = bad if bad is not None else BadLines()
    run = FileRun(paths, settings.batch_size, progress)
    for batch in run.batches():
        outcome = engine.process(batch)
        writer.write(outcome.alerts)
        bad.add(run.path, batch, outcome.dead_letters)
        run.took(outcome)
    return ReplaySummary(run.events, run.invalid, writer.count, run.seconds, bad.report())


def run_replay(
    paths: Sequence[Path],
    settings: Settings,
    references: dict[str, PreparedReference],
    out: str,
    bad_lines: Path | None = None,
    progress: Progress | None = None,
) -> ReplaySummary:
    """The command: alerts to `out` ("-": stdout), every bad line to `bad_lines` if given.
    Both files are created before the replay, so that a wrong path costs no replay."""
    with ExitStack() as files:
        sink = sys.stdout.buffer if out == "-" else files.enter_context(_create(Path(out)))
        bad_out = None if bad_lines is None else files.enter_context(_create(bad_lines))
        summary = replay_file(paths, settings, references, sink, progress, BadLines(bad_out))
    return replace(summary, bad_lines=bad_lines)


def _create(path: Path) -> IO[bytes]:
    try:
        return path.open("wb")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    """Replay's own arguments (the settings' options are the command line's to add)."""
    parser.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="JSONL file of prediction events; several are replayed in order as one stream",
    )
    parser.add_argument("--out", default="-", help="alerts JSONL file (default: stdout)")
    parser.add_argument(
        "--bad-lines",
        type=Path,
        metavar="FILE",
        help="write every line that cannot be used to FILE, as JSONL (file, line, reason, "
        "detail, value); the log shows the first five",
    )
