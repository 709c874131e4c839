"""Model versions: under the `separate` policy each `model_version` of a model keeps its own
window, under the key `model@version`, judged against `<model>@<version>`'s reference where
one exists, else the model's. Only the newest `max_versions` keys of a model are kept; the
oldest goes when a newer one starts (its window, /status entry and metric series), so a
model that is redeployed every day holds a bounded state.

"Newest" is by the source position of a key's first event: every version of a model comes
from the model's one partition, so every member that owns it orders them alike, and a
restore from the changelog keeps the same ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from stream_monitor.alerts.results import CheckResult
from stream_monitor.checks.versus_baseline import versus_baseline
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.decode.predictions import route_key
from stream_monitor.engine.models import MonitoredModel
from stream_monitor.reference.prepared import PreparedReference

log = logging.getLogger(__name__)


def model_of(key: str, version: str | None, split: bool) -> str:
    """The model a routing key belongs to: `key` minus `@version` when versions split."""
    suffix = f"@{version}" if split and version else ""
    return key[: -len(suffix)] if suffix and key.endswith(suffix) else key


def reference_for(
    references: dict[str, PreparedReference], key: str, model: str
) -> PreparedReference | None:
    """The version's own reference (`model@version`), else the model's."""
    own = references.get(key)
    return own if own is not None else references.get(model)


def settings_for(settings: DetectorSettings, key: str, model: str) -> DetectorSettings:
    """The version's own settings (`models: {model@version: ...}`), else the model's."""
    return settings.for_model(key if key in settings.models else model)


def compared(model: MonitoredModel, models: dict[str, MonitoredModel]) -> list[CheckResult]:
    """The candidate version's windows against its baseline's live window, when the model
    compares versions (`compare_versions`) and `model` is the candidate."""
    comparison = model.settings.compare_versions
    if comparison is None or model.version != comparison.candidate or model.own_key is None:
        return []
    key = route_key(model.model_name, comparison.baseline)
    if model.segment is not None:  # the same segment of the baseline
        key = segment_key(key, model.segment)
    baseline = models.get(key)
    return versus_baseline(
        model.window,
        None if baseline is None else baseline.window,
        model.feature_names,
        () if baseline is None else baseline.feature_names,
        model.settings,
        comparison.baseline,
    )


def segment_key(stream: str, segment: str) -> str:
    """The key of a segment's window (engine/segments.py): `<stream>#<segment>`."""
    return f"{stream}#{segment}"


@dataclass(slots=True)
class VersionKeys:
    """The keys of each model's versions, oldest first, bounded by `limit` per model."""

    limit: int
    keys: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # model -> (start, key)

    def add(self, model: str, key: str, started_at: int) -> list[str]:
        """Keep `key` of `model`; returns the keys beyond the newest `limit` (to drop)."""
        held = self.keys.setdefault(model, [])
        known = [i for i, (_, k) in enumerate(held) if k == key]
        if not known:
            held.append((started_at, key))
        elif started_at < held[known[0]][0]:  # a restore: its earliest key names its start
            held[known[0]] = (started_at, key)
        held.sort()
        dropped = [k for _, k in held[: max(len(held) - self.limit, 0)]]
        if dropped:
            del held[: len(dropped)]
            log.warning(
                "model %r: version keys %s dropped (newer versions started; --max-versions %d)",
                model,
                dropped,
                self.limit,
            )
        return dropped

    def remove(self, model: str, key: str) -> None:
        held = self.keys.get(model)
        if held is not None:
            held[:] = [(s, k) for s, k in held if k != key]
            if not held:
                del self.keys[model]

    def of(self, model: str) -> list[str]:
        """The keys of `model`'s versions, newest first."""
        return [k for _, k in reversed(self.keys.get(model, []))]
