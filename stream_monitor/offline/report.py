"""The backtest report: one PNG per model (each score over event time against its threshold,
alerts and known change points marked) and an index.html with the summary tables.

matplotlib is an optional extra (`pip install 'stream-monitor[report]'`): the monitor itself
never needs it, so it is imported only here and only when a report is written. Figures are
drawn on the Agg canvas directly (no pyplot, no display, no global state).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from stream_monitor.alerts.contract import KINDS
from stream_monitor.offline.backtest import AlertMark, BacktestResult, Series
from stream_monitor.offline.sweep import ModelScore, SweepOutcome, score_model, to_json

if TYPE_CHECKING:
    from matplotlib.axes import Axes


EXTRA_HINT = "pip install 'stream-monitor[report]'"
# Kinds whose threshold is not on the score's scale: the score is drawn without it.
# what a panel's score is, where its name does not say it
CAPTIONS = {
    "concept_drift": "error mean; threshold: the error mean at the last check with no change",
    "input_drift/sequential": "the largest chart value over its threshold (1 = alarm)",
}


class ReportError(Exception):
    """The report cannot be written (matplotlib missing); the message says what to do."""


def require_matplotlib() -> None:
    """Fail early, before a long replay, when the report could not be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportError(
            f"the backtest report needs matplotlib, from the optional extra 'report': {EXTRA_HINT}"
        ) from None


def file_stem(model: str, taken: set[str]) -> str:
    """A file name for a model's plot: safe characters only, unique within the report."""
    stem = re.sub(r"[^A-Za-z0-9._@-]+", "_", model).strip("._") or "model"
    candidate, n = stem, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{stem}-{n}"
    taken.add(candidate.lower())
    return candidate


def _kind_order(kind: str) -> tuple[int, str]:
    base = kind.partition("/")[0]
    return (KINDS.index(base) if base in KINDS else len(KINDS), kind)


def _plotted_kinds(series: dict[str, Series]) -> list[str]:
    kinds = [k for k, s in series.items() if any(math.isfinite(v) for v in s.scores)]
    return sorted(kinds, key=_kind_order)


def _axis(values: Sequence[float], as_time: bool) -> Any:
    """x values: datetime64 for event times (any year), else the model's event counts."""
    arr = np.asarray(values, dtype=np.float64)
    return np.round(arr * 1000.0).astype("datetime64[ms]") if as_time else arr


def _firing_spans(marks: list[AlertMark], as_time: bool, end: float) -> list[tuple[float, float]]:
    spans: list[tuple[float, float]] = []
    start: float | None = None
    for mark in sorted(marks, key=lambda m: m.events_seen):
        at = mark.time if as_time else float(mark.events_seen)
        if mark.status == "firing":
            start = at
        elif start is not None:
            spans.append((start, at))
            start = None
    if start is not None:
        spans.append((start, end))
    return spans


def _draw_kind(
    ax: Axes,
    kind: str,
    series: Series,
    marks: list[AlertMark],
    changes: list[float],
    as_time: bool,
) -> None:
    xs = series.times if as_time else [float(e) for e in series.events]
    x = _axis(xs, as_time)
    dots = "." if len(xs) <= 300 else None
    ax.plot(x, series.scores, color="C0", lw=1.2, marker=dots, ms=3, label="score")
    title = f"{kind} ({series.test})"
    if kind in CAPTIONS:
        title += f": {CAPTIONS[kind]}"
    ax.plot(x, series.thresholds, color="C3", ls="--", lw=1.0, label="threshold")
    for start, stop in _firing_spans(marks, as_time, max(xs)):
        ax.axvspan(*_axis([start, stop], as_time), color="C3", alpha=0.12, lw=0)
    sequential = series.test == "cusum"  # drawn as evidence: chart value over threshold
    for status, marker, color in (("firing", "^", "C3"), ("resolved", "v", "C2")):
        picked = [m for m in marks if m.status == status]
        if picked:
            px = [m.time if as_time else float(m.events_seen) for m in picked]
            ax.scatter(
                _axis(px, as_time),
                [m.score / m.threshold if sequential else m.score for m in picked],
                marker=marker,
                color=color,
                s=45,
                zorder=3,
                label=f"alert {status}",
            )
    starts = [m for m in marks if m.status == "firing" and m.start_event is not None]
    for i, m in enumerate(starts):
        at = m.start_time if as_time and m.start_time is not None else float(m.start_event or 0)
        label = "estimated start" if i == 0 else None
        ax.axvline(_axis([at], as_time)[0], color="C1", ls="-.", lw=1.2, label=label)
    for at in changes:
        ax.axvline(_axis([at], as_time)[0], color="k", ls=":", lw=1.4, label="known change")
    ax.set_title(title, loc="left", fontsize=10)
    ax.set_ylabel("score")
    ax.grid(alpha=0.3)


def plot_model(result: BacktestResult, model: str, path: Path) -> bool:
    """Draw one model's scores; False (no file) when it has no judged check."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    series = result.series.get(model, {})
    kinds = _plotted_kinds(series)
    if not kinds:
        return False
    marks = [m for m in result.marks if m.model == model]
    changes = [c for c in result.change_points if c.model == model]
    as_time = all(
        math.isfinite(t)
        for t in [
            *(t for k in kinds for t in series[k].times),
            *(m.time for m in marks),
            *(c.time for c in changes),
        ]
    )
    height = 1.3 + 2.2 * len(kinds)  # inches: title and legend bands, one panel per kind
    fig = Figure(figsize=(10, height), dpi=100)
    # fixed margins: a layout engine would cost a second or more per figure
    fig.subplots_adjust(
        left=0.08, right=0.98, top=1 - 0.7 / height, bottom=0.85 / height, hspace=0.45
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(kinds), 1, sharex=True, squeeze=False)[:, 0]
    for ax, kind in zip(axes, kinds, strict=True):
        change_xs = [c.time if as_time else float(c.events_before) for c in changes]
        _draw_kind(ax, kind, series[kind], [m for m in marks if m.key == kind], change_xs, as_time)
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncols=6)
    axes[-1].set_xlabel("event time (newest event in the window)" if as_time else "events seen")
    fig.suptitle(f"model {model}: scores against thresholds", fontsize=12, y=1 - 0.15 / height)
    fig.savefig(path, format="png")
    return True


# -- HTML ----------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def event_time(epoch: float | None) -> str:
    if epoch is None or not math.isfinite(epoch):
        return "—"
    text = datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds")
    return text.replace("+00:00", "Z")


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _cell(value: object) -> str:
    if value is None:
        return "<td>—</td>"
    if isinstance(value, int | float):
        text = f"{value:,}" if isinstance(value, int) else f"{value:,.4g}"
        return f'<td class="n">{text}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def _table(table_id: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return (
        f'<table id="{table_id}">\n<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{body}\n</tbody>\n</table>"
    )


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def detection_rows(scores: Sequence[ModelScore], label: str | None = None) -> list[list[object]]:
    """One row per change point (or per model without one): delay and false alarms."""
    rows: list[list[object]] = []
    for s in scores:
        lead: list[object] = [label, s.model] if label is not None else [s.model]
        tail: list[object] = [s.false_alarms, s.firing, s.horizon, s.events_seen]
        if not s.detections:
            rows.append([*lead, None, None, None, None, None, *tail])
        for d in s.detections:
            kind = "missed" if d.alert is None else d.alert.kind
            if d.already_firing:
                kind = f"already firing ({kind})"
            rows.append(
                [
                    *lead,
                    event_time(d.change.time),
                    d.change.events_before,
                    kind,
                    d.delay_events,
                    duration(d.delay_seconds),
                    *tail,
                ]
            )
    return rows


DETECTION_HEADERS = [
    "known change (event time)",
    "events before it",
    "detected by",
    "delay (events)",
    "delay (event time)",
    "false alarms",
    "firing alerts",
    "horizon (events)",
    "events seen",
]


def write_report(
    result: BacktestResult,
    out_dir: Path,
    kinds: frozenset[str] | None = None,
    horizon: int | None = None,
    sweep: list[SweepOutcome] | None = None,
) -> Path:
    """Write out_dir/index.html, one PNG per model (and sweep.html); returns index.html.

    Kept whole: it is the page, section by section, in the order a reader sees it.
    """
    require_matplotlib()
    out_dir.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    plots: list[tuple[str, str]] = []
    for model in result.models:
        name = file_stem(model, taken) + ".png"
        if plot_model(result, model, out_dir / name):
            plots.append((model, name))
    parts = [
        f"<p>File <code>{html.escape(result.file.name)}</code>: {result.events:,} events "
        f"({result.invalid:,} invalid) replayed in {result.seconds:.2f} s, "
        f"<strong>{result.events_per_second:,.0f} events per second</strong>; "
        f'{len(result.alerts):,} alerts (<a href="alerts.jsonl">alerts.jsonl</a>).</p>',
        "<h2>Alerts per model and kind</h2>",
        _table(
            "summary",
            [
                "model",
                "kind",
                "test",
                "judged checks",
                "firing",
                "resolved",
                "first detection (event time)",
                "first detection (events seen)",
                "events seen",
            ],
            [
                [
                    r.model,
                    r.kind,
                    r.test,
                    r.checks,
                    r.firing,
                    r.resolved,
                    event_time(r.first_firing_time),
                    r.first_firing_events,
                    r.events_seen,
                ]
                for r in result.summary()
            ],
        ),
    ]
    skipped = result.never_judged()
    if skipped:
        parts.append(
            "<p>Never judged: "
            + "; ".join(
                html.escape(f"{model} {kind}" + (f" ({why})" if why else ""))
                for model, kind, why in skipped
            )
            + ".</p>"
        )
    if result.change_points:
        scores = [score_model(m, result, horizon, kinds) for m in result.models]
        which = "all kinds" if kinds is None else ", ".join(sorted(kinds))
        parts += [
            "<h2>Known change points</h2>",
            f"<p>Alerts counted: {html.escape(which)}. A firing alert more than the horizon "
            "after every known change point is a false alarm.</p>",
            _table("changes", ["model", *DETECTION_HEADERS], detection_rows(scores)),
        ]
    if sweep:
        parts.append('<p>Settings compared: <a href="sweep.html">sweep.html</a>.</p>')
        write_sweep_page(result, sweep, out_dir / "sweep.html", kinds)
    parts.append("<h2>Scores over event time</h2>")
    for model, name in plots:
        parts.append(
            f"<h3>{html.escape(model)}</h3>\n"
            f'<img src="{html.escape(name)}" alt="scores of {html.escape(model)}">'
        )
    index = out_dir / "index.html"
    index.write_text(_page(f"Backtest of {result.file.name}", "\n".join(parts)), "utf-8")
    return index


def write_sweep_page(
    result: BacktestResult,
    sweep: list[SweepOutcome],
    path: Path,
    kinds: frozenset[str] | None,
) -> None:
    rows: list[list[object]] = []
    for outcome in sweep:
        rows += detection_rows(outcome.models, outcome.label)
    which = "all kinds" if kinds is None else ", ".join(sorted(kinds))
    body = (
        f"<p>File <code>{html.escape(result.file.name)}</code>, alerts counted: "
        f"{html.escape(which)}. Delay: from a known change point to the model's first firing "
        "alert after it; false alarms: firing alerts not within the horizon after a known "
        'change point (<a href="sweep.json">sweep.json</a>; '
        '<a href="index.html">report of the base settings</a>).</p>\n'
        + _table("sweep", ["setting", "model", *DETECTION_HEADERS], rows)
    )
    path.write_text(_page(f"Sweep over {result.file.name}", body), "utf-8")
    dump = orjson.dumps(to_json(sweep, kinds), option=orjson.OPT_INDENT_2)
    path.with_name("sweep.json").write_bytes(dump + b"\n")
