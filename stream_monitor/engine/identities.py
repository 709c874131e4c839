"""The metrics' identity of a batch's keys: (model, model_version, segment) for each key
that is not its model's name (a version's or a segment's window; sinks/prometheus.py).

Only the keys known to be labelled apart are looked up: reading every key's model, cold
in memory with 10 000 models, cost about a microsecond per key and batch."""

from __future__ import annotations

from stream_monitor.alerts.outcome import BatchOutcome
from stream_monitor.engine.models import MonitoredModel


class LabelledApart:
    """The keys the metrics label by more than the key, kept as models come and go."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def adopt(self, model: MonitoredModel) -> None:
        """Fixed when the model is made: its key, model name and segment never change."""
        if model.name != model.model_name or model.segment is not None:
            self.keys.add(model.name)

    def forget(self, key: str) -> None:
        self.keys.discard(key)

    def identify(self, models: dict[str, MonitoredModel], outcome: BatchOutcome) -> None:
        """The identities of the batch's keys labelled apart, into `outcome.identities`.
        The version is read at every batch: a segment's window follows its events'
        version when versions share windows."""
        if not self.keys:
            return
        keys = {*outcome.ok_counts, *outcome.windows, *outcome.checks}
        keys.update(name for counts in outcome.latency_counts for name in counts.models)
        keys.update(name for name, _status in outcome.label_counts)
        for m in map(models.get, keys & self.keys):
            if m is not None:
                outcome.identities[m.name] = (m.model_name, m.version or "", m.segment or "")
