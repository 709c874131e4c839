"""What one batch produced: alerts, dead letters, per-model counts and check results, for the
sinks, the metrics and the changelog."""

from __future__ import annotations

from dataclasses import dataclass, field

from stream_monitor.alerts.contract import Alert
from stream_monitor.alerts.results import CheckResult
from stream_monitor.arrays import FloatArray, IntArray
from stream_monitor.sources.records import DeadLetter

# upper bounds (seconds) of `stream_monitor_prediction_latency_seconds`' buckets
LATENCY_BUCKETS_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True, slots=True)
class LatencyCounts:
    """A batch's latencies of many models, binned where they were read (the native core):
    row i of `counts` holds model i's count per bucket of `LATENCY_BUCKETS_SECONDS` (value
    at or below the bound; the last column beyond all), `sums` its sum of seconds."""

    models: list[str]
    counts: IntArray  # (models, buckets + 1)
    sums: FloatArray  # (models,)


@dataclass(slots=True)
class BatchOutcome:
    """What one batch produced, for the sinks and the metrics."""

    alerts: list[Alert] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    dead_letter_models: list[str] = field(default_factory=list)
    ok_counts: dict[str, int] = field(default_factory=dict)
    latencies_ms: dict[str, FloatArray] = field(default_factory=dict)
    latency_counts: list[LatencyCounts] = field(default_factory=list)  # models not above
    checks: dict[str, list[CheckResult]] = field(default_factory=dict)
    check_counts: dict[str, int] = field(default_factory=dict)
    check_seconds: list[float] = field(default_factory=list)  # for the metrics, not decisions
    windows: dict[str, tuple[int, bool]] = field(default_factory=dict)  # fill, has reference
    label_counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (model, status)
    patched_rows: dict[str, IntArray] = field(default_factory=dict)  # window rows labels set
    # per model with sequential charts, at each check: the largest chart value over its
    # threshold (1 = the alarm level), whether its alert fires, and whether the charts (not
    # the window test) decide the input-drift alert
    sequential: dict[str, tuple[float, bool, bool]] = field(default_factory=dict)
    # the (model, model_version) of each key above that is not a model: `model@version`
    # when versions keep their own windows (the metrics' labels)
    identities: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    # keys dropped by this batch (an older version beyond the newest --max-versions)
    dropped: list[str] = field(default_factory=list)
