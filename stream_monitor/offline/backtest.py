"""`stream-monitor backtest`: the engine of `run` over a file, every check kept for a report.

Before alerts are switched on, a team replays logged predictions and looks at what the
monitor would have said: each score against its threshold over event time, the alerts it
would have published, and how soon it reacted to changes the team knows about.

A known change is marked in the file itself: an event carrying `"change_point": true` is the
first event of a changed regime of its model (an optional field; the decoder ignores fields
it does not know, so the monitor itself reads such a file unchanged).

Every check is recorded, not only the last of a batch (`BatchOutcome.checks` keeps one per
model): the engine hands each result with its context (events seen, event time) to the
model's alert state, so a recording alert state sees every check exactly as it ran.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson

from stream_monitor.alerts.contract import KINDS, Alert
from stream_monitor.alerts.outcome import BatchOutcome
from stream_monitor.alerts.results import CheckContext, CheckResult
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.decode.predictions import decode_batch, route_key
from stream_monitor.engine.core import Engine
from stream_monitor.engine.observers import EngineObserver
from stream_monitor.offline.file_run import FileRun
from stream_monitor.offline.progress import Progress
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.sinks.files import JsonlAlertWriter
from stream_monitor.sources.records import RecordBatch

CHANGE_POINT_FIELD = "change_point"
_CHANGE_POINT_MARK = b'"' + CHANGE_POINT_FIELD.encode() + b'"'


@dataclass(slots=True)
class Series:
    """One model's checks of one kind: when, the score and the threshold it was judged by."""

    tests: list[str] = field(default_factory=list)  # distinct tests behind the scores
    events: list[int] = field(default_factory=list)  # the model's events seen at the check
    times: list[float] = field(default_factory=list)  # newest event time in the window
    scores: list[float] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)
    judged: int = 0  # checks that reached a decision (the others lacked data or a setting)
    reason: str | None = None  # why the last unjudged check was not judged

    @property
    def test(self) -> str:
        """The test(s) of the judged checks (data quality reports its worst share's)."""
        return ", ".join(self.tests)


@dataclass(frozen=True, slots=True)
class AlertMark:
    """An alert the engine emitted, with the event time of the check that caused it."""

    model: str
    kind: str
    status: str
    severity: str
    events_seen: int
    time: float
    score: float
    threshold: float
    channel: str = ""  # the firing state it changed (sequential input drift has its own)
    start_event: int | None = None  # sequential: the estimated start of the change
    start_time: float | None = None

    @property
    def key(self) -> str:
        return self.channel or self.kind


@dataclass(frozen=True, slots=True)
class ChangePoint:
    """A known change: the model's events before its first changed event, and its time."""

    model: str
    events_before: int
    time: float


@dataclass
class Recorder(EngineObserver):
    """Collects every check result and alert of every model (an observer of the engine)."""

    series: dict[str, dict[str, Series]] = field(default_factory=dict)
    marks: list[AlertMark] = field(default_factory=list)

    def checked(self, result: CheckResult, ctx: CheckContext, alert: Alert | None) -> None:
        if alert is not None:
            self.marks.append(
                AlertMark(
                    ctx.model_key,  # the model, or `model@version` (its own window)
                    alert.kind,
                    alert.status,
                    alert.severity,
                    alert.events_seen,
                    ctx.window_end,
                    alert.score,
                    alert.threshold,
                    result.state_key,
                    alert.change_start_event,
                    ctx.window_start if alert.change_start_event is not None else None,
                )
            )
            if result.channel is not None:
                return  # a sequential transition: its chart's series comes from the checks
        key = result.state_key
        by_kind = self.series.setdefault(ctx.model_key, {})
        series = by_kind.get(key)
        if series is None:
            series = by_kind[key] = Series()
        judged = result.healthy is not None  # an unjudged check has no meaningful score
        if judged:
            series.judged += 1
            if result.test not in series.tests:
                series.tests.append(result.test)
        else:
            series.reason = result.reason
        series.events.append(ctx.events_seen)
        series.times.append(ctx.window_end)
        series.scores.append(result.score if judged else math.nan)
        series.thresholds.append(result.threshold if judged else math.nan)


def _kind_order(key: str) -> tuple[int, str]:
    """Kinds in the contract's order; a kind's own firing states (sequential) after it."""
    kind = key.partition("/")[0]
    return (KINDS.index(kind) if kind in KINDS else 99, key)


@dataclass(frozen=True, slots=True)
class KindSummary:
    """One row of the report's summary table."""

    model: str
    kind: str
    test: str
    checks: int
    firing: int
    resolved: int
    first_firing_events: int | None
    first_firing_time: float | None
    events_seen: int


@dataclass(slots=True)
class BacktestResult:
    """What a replay of a file produced, for the report and the sweep."""

    file: Path
    events: int
    invalid: int
    seconds: float
    series: dict[str, dict[str, Series]]
    marks: list[AlertMark]
    change_points: list[ChangePoint]
    events_seen: dict[str, int]  # per model, at the end
    window_sizes: dict[str, int]  # per model (its own settings)
    alerts: list[Alert] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else math.inf

    @property
    def models(self) -> list[str]:
        return sorted(set(self.events_seen) | set(self.series))

    def summary(self) -> list[KindSummary]:
        """Per model and kind (those judged or alerted): alert counts, first detection."""
        rows: list[KindSummary] = []
        for model in self.models:
            own = self.series.get(model, {})
            marks = [m for m in self.marks if m.model == model]
            kinds = {m.key for m in marks} | {k for k, s in own.items() if s.judged}
            for kind in sorted(kinds, key=_kind_order):
                of_kind = [m for m in marks if m.key == kind]
                firing = [m for m in of_kind if m.status == "firing"]
                series = own.get(kind)
                rows.append(
                    KindSummary(
                        model=model,
                        kind=kind,
                        test=series.test if series is not None else "",
                        checks=series.judged if series is not None else 0,
                        firing=len(firing),
                        resolved=len(of_kind) - len(firing),
                        first_firing_events=firing[0].events_seen if firing else None,
                        first_firing_time=firing[0].time if firing else None,
                        events_seen=self.events_seen.get(model, 0),
                    )
                )
        return rows

    def never_judged(self) -> list[tuple[str, str, str]]:
        """(model, kind, why) of the kinds no check could judge (e.g. latency without
        latencies or threshold): absent from the summary, so the report says why."""
        return [
            (model, kind, s.reason or "")
            for model in self.models
            for kind, s in sorted(self.series.get(model, {}).items())
            if not s.judged
        ]


def _change_point_records(batch: RecordBatch, split_versions: bool) -> list[tuple[int, str]]:
    """(index, key) of the batch's records that mark a known change point (the key: the
    model, or `model@version` when versions keep their own windows)."""
    found: list[tuple[int, str]] = []
    for i, value in enumerate(batch.values):
        if value is None or _CHANGE_POINT_MARK not in value:
            continue  # the cheap test: most records never mention the field
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue
        if type(obj) is not dict or obj.get(CHANGE_POINT_FIELD) is not True:
            continue
        model = obj.get("model")
        key = batch.keys[i]
        if not isinstance(model, str) and key is not None:
            model = key.decode("utf-8", "replace")
        if isinstance(model, str) and model:
            version = obj.get("model_version")
            if split_versions and isinstance(version, str):
                model = route_key(model, version)
            found.append((i, model))
    return found


def _locate(
    batch: RecordBatch,
    records: Iterable[tuple[int, str]],
    seen_before: dict[str, int],
    outcome: BatchOutcome,
    split_versions: bool,
) -> list[ChangePoint]:
    """Where each marked record falls in its model's stream of valid events."""
    decoded = decode_batch(batch, split_versions)  # again, only for batches with a mark
    dead = {d.index for d in outcome.dead_letters}
    points: list[ChangePoint] = []
    for index, model in records:
        events = decoded.by_model.get(model)
        valid = [] if events is None else [j for j in events.index if j not in dead]
        when = math.nan
        if events is not None and index in valid:
            stamp = events.timestamps[events.index.index(index)]
            when = math.nan if stamp is None else float(stamp)
        before = seen_before.get(model, 0) + bisect_left(valid, index)
        points.append(ChangePoint(model, before, when))
    return points


def run_backtest(
    path: Path,
    settings: DetectorSettings,
    references: dict[str, PreparedReference],
    batch_size: int,
    progress: Progress | None = None,
    alerts_out: IO[bytes] | None = None,
) -> BacktestResult:
    """Replay `path` as `replay` does, recording every check, alert and change point."""
    recorder = Recorder()
    engine = Engine(settings, references)
    engine.observe(recorder)
    writer = JsonlAlertWriter(alerts_out) if alerts_out is not None else None
    alerts: list[Alert] = []
    change_points: list[ChangePoint] = []
    run = FileRun(path, batch_size, progress)
    for batch in run.batches():
        marked = _change_point_records(batch, engine.split_versions)
        seen_before = {m: s.events_seen for m, s in engine.models.items()} if marked else {}
        outcome = engine.process(batch)
        if marked:
            change_points.extend(
                _locate(batch, marked, seen_before, outcome, engine.split_versions)
            )
        alerts.extend(outcome.alerts)
        if writer is not None:
            writer.write(outcome.alerts)
        run.took(outcome)
    return BacktestResult(
        file=path,
        events=run.events,
        invalid=run.invalid,
        seconds=run.seconds,
        series=recorder.series,
        marks=recorder.marks,
        change_points=change_points,
        events_seen={m: s.events_seen for m, s in engine.models.items()},
        window_sizes={m: s.settings.window_size for m, s in engine.models.items()},
        alerts=alerts,
    )
