"""Where `stream-monitor run` spends its wall time, by stage, from py-spy samples.

py-spy samples the monitor's main thread (the consume loop) with `--idle`, so waiting in
librdkafka (consume, transaction commit) counts as well as Python work: the shares are
shares of wall time, which is what bounds throughput. Each sample is given to the first
stage (in STAGES order) that one of its frames belongs to; a stage's µs per event is its
share of the samples times the run's wall time per event.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

PY_SPY = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "py-spy"

# (stage, group, qualified function names, file names or "*"); the first stage matching any
# frame of a sample's stack takes it. Callers come after the callees they contain.
STAGES: list[tuple[str, str, tuple[str, ...], str | tuple[str, ...]]] = [
    (
        "rebalance / restore",
        "other",
        ("MonitorService._on_assign", "MonitorService._on_revoke", "MonitorService._rewind"),
        "service/runtime.py",
    ),
    (
        "metrics: client statistics callback",
        "metrics",
        ("MonitorService._on_stats",),
        "service/runtime.py",
    ),
    ("metrics: per batch (Metrics.record)", "metrics", ("Metrics.record",), "sinks/prometheus.py"),
    ("webhooks (offer)", "other", ("WebhookDispatcher.offer",), "sinks/webhooks.py"),
    (
        "alert state (FiringAlerts.update, alert build)",
        "alert",
        ("FiringAlerts.update",),
        "alerts/transitions.py",
    ),
    ("check: run_checks", "check", ("run_checks",), "checks/run.py"),
    (
        "check: concept drift result",
        "check",
        ("ErrorStream.check",),
        "checks/concept.py",
    ),
    ("decode: decode_batch", "decode", ("decode_batch",), "decode/predictions.py"),
    (
        "window: ADWIN on errors (ErrorStream.watch)",
        "route/window",
        ("ErrorStream.watch",),
        "checks/concept.py",
    ),
    (
        "window: reference.cdf_counts / bins",
        "route/window",
        (
            "PreparedReference.cdf_counts",
            "PreparedReference.prediction_bin",
            "ReferenceSummary.cdf_counts",
        ),
        ("reference/prepared.py", "reference/summary.py"),
    ),
    ("window: windows.append", "route/window", ("ModelWindow.append",), "window/ring.py"),
    ("route: event arrays (_block)", "route/window", ("Engine._block",), "engine/core.py"),
    (
        "route: rest of Engine.process/_advance",
        "route/window",
        ("Engine.process", "Engine._advance", "Engine.add_model", "ModelKeeper.process"),
        ("engine/core.py", "service/model_state.py"),
    ),
    (
        "state: changelog records",
        "produce/commit",
        ("StateTracker.records", "encode"),
        ("state/models.py", "state/records.py"),
    ),
    (
        "produce: alerts, dead letters, state",
        "produce/commit",
        ("KafkaPublisher.publish", "KafkaPublisher.publish_state"),
        "sinks/kafka.py",
    ),
    (
        "commit: transaction (send offsets, commit)",
        "produce/commit",
        ("MonitorService._commit_transaction",),
        "service/runtime.py",
    ),
    (
        "commit: at-least-once (confirm, commit offsets)",
        "produce/commit",
        ("KafkaPublisher.confirm", "MonitorService._commit_offsets"),
        "*",
    ),
    (
        "consume: messages to RecordBatch",
        "consume",
        ("batch_from_messages", "next_offsets"),
        ("sources/kafka.py", "sources/records.py"),
    ),
]
# Samples whose innermost frame is one of these service functions are in the only blocking
# client call it makes (by name, not by line: the source may change while a run goes on).
LEAF_STAGES = {
    "MonitorService._step": ("consume: librdkafka consume()", "consume"),
    "MonitorService._predictions": ("consume: librdkafka consume()", "consume"),
    "MonitorService._transaction": ("commit: transaction (begin)", "produce/commit"),
}
OTHER = ("other", "other")


def _frames(stack: str) -> list[tuple[str, str, int]]:
    """(qualified name, file, line) of each frame, root first."""
    out = []
    for frame in stack.split(";")[1:]:
        name, _, where = frame.rpartition(" (")
        path, _, line = where.rstrip(")").rpartition(":")
        out.append((name, path, int(line) if line.isdigit() else 0))
    return out


def classify(frames: list[tuple[str, str, int]]) -> tuple[str, str]:
    """(stage, group) of one sample's stack."""
    for stage, group, names, file in STAGES:
        for name, path, _ in frames:
            files = (file,) if isinstance(file, str) else file
            if name in names and (file == "*" or path.endswith(files)):
                return stage, group
    if frames and frames[-1][0] in LEAF_STAGES and frames[-1][1].endswith("service/runtime.py"):
        return LEAF_STAGES[frames[-1][0]]
    return OTHER


def parse(raw: Path, tid: int) -> dict[str, Any]:
    """Samples by stage (and the check's callees, and the top leaves) of one thread."""
    stages: Counter[tuple[str, str]] = Counter()
    checks: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack.startswith(f"thread ({tid})") or not count.isdigit():
            continue
        n = int(count)
        frames = _frames(stack)
        total += n
        stage = classify(frames)
        stages[stage] += n
        names = [f[0] for f in frames]
        if "run_checks" in names:  # the check's callees, three levels deep
            below = [x for x in names[names.index("run_checks") + 1 :] if x != "_wrapfunc"]
            checks[" > ".join(below[:3]) or "run_checks"] += n
        if frames:
            name, path, lineno = frames[-1]
            leaves[f"{name} ({Path(path).name}:{lineno})"] += n
    return {
        "samples": total,
        "stages": [{"stage": s, "group": g, "samples": n} for (s, g), n in stages.most_common()],
        "check_parts": dict(checks.most_common(30)),
        "top_leaves": dict(leaves.most_common(25)),
    }


def attach(pid: int, out: Path, rate: int) -> Callable[[], dict[str, Any]]:
    """Start sampling `pid`; the returned function stops and returns the parsed profile."""
    if not PY_SPY.exists() and shutil.which("py-spy") is None:
        raise FileNotFoundError('py-spy is not installed (.venv/bin/pip install -e ".[bench]")')
    exe = str(PY_SPY) if PY_SPY.exists() else "py-spy"
    cmd = [exe, "record", "--pid", str(pid), "--idle", "--threads", "--rate", str(rate)]
    cmd += ["--format", "raw", "--output", str(out)]
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop() -> dict[str, Any]:
        spy.send_signal(signal.SIGINT)
        _, err = spy.communicate(timeout=60)
        if not out.exists():
            raise RuntimeError(f"py-spy wrote nothing: {err.decode(errors='replace')}")
        return parse(out, pid)

    return stop


def per_event(profile: dict[str, Any], seconds: float, events: int) -> list[dict[str, Any]]:
    """Stages with µs per event (share of samples x wall time per event)."""
    total = profile["samples"] or 1
    us = seconds * 1e6 / events
    return [
        {
            **row,
            "share": round(row["samples"] / total, 4),
            "us_per_event": round(row["samples"] / total * us, 2),
        }
        for row in profile["stages"]
    ]
