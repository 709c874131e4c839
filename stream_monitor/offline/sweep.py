"""`backtest --sweep`: the same file under several settings, judged on known change points.

A sweep spec is `NAME=V1,V2,...` with NAME a detector setting (a key of the YAML file, e.g.
`drift_threshold`, `numeric_test`, `drift_rule`, `window_size`); several specs give every
combination. Each value is read as YAML (`0.05`, `ks`, `null`) and the whole setting is
validated like the configuration, so a wrong name or value stops before any replay with the
field and the reason. Per-model overrides of the YAML file (`models.<name>`) still win.

Each setting is judged per model on the change points the file marks:

- detection delay: from a change point to the model's first firing alert after it (within
  the horizon and before the model's next change point), in the model's events and in
  event time; a change point with no such alert is missed; one met by an alert that fired
  before it and still fires has delay 0 ("already firing");
- false alarms: firing alerts that fall within no change point's horizon, i.e. not in
  (change point, change point + horizon] in the model's events. On a model the file marks
  no change for, every firing alert is a false alarm.

The horizon defaults to twice the model's window: by then the window holds only events
of the new regime, whatever the check cadence.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from stream_monitor.alerts.contract import rfc3339
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.config.loading import ConfigError, format_validation_error
from stream_monitor.offline.backtest import AlertMark, BacktestResult, ChangePoint

# Fixed once per run: the references are prepared (and calibrated) with them before replays.
NOT_SWEPT = ("prediction_bins", "calibrate_false_alarm_events")


@dataclass(frozen=True, slots=True)
class SweepPoint:
    label: str  # e.g. "drift_threshold=0.05"
    overrides: dict[str, Any]
    settings: DetectorSettings


def _parse_spec(spec: str) -> tuple[str, list[tuple[str, Any]]]:
    name, sep, values = spec.partition("=")
    name = name.strip().replace("-", "_")
    texts = [v.strip() for v in values.split(",")]
    if not sep or not name or not all(texts):
        raise ConfigError(f"invalid sweep {spec!r}: expected NAME=VALUE1,VALUE2,...")
    if name in NOT_SWEPT:
        raise ConfigError(
            f"invalid sweep {spec!r}: {name} cannot be swept (the references are prepared "
            "with it once); set it with its option instead"
        )
    try:
        return name, [(text, yaml.safe_load(text)) for text in texts]
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid sweep {spec!r}: {exc}") from None


def apply_overrides(base: DetectorSettings, overrides: dict[str, Any]) -> DetectorSettings:
    """`base` with `overrides`, validated as the configuration is (ConfigError if wrong)."""
    try:
        return DetectorSettings.model_validate({**base.model_dump(), **overrides})
    except ValidationError as exc:
        message = format_validation_error(exc).replace("invalid configuration", "invalid sweep")
        raise ConfigError(message) from None


def parse_sweep(specs: list[str], base: DetectorSettings) -> list[SweepPoint]:
    """Every combination of the specs' values, each validated on top of `base`."""
    parsed = [_parse_spec(s) for s in specs]
    names = [name for name, _ in parsed]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"invalid sweep: {name} is given more than once")
    points: list[SweepPoint] = []
    for combo in itertools.product(*(values for _, values in parsed)):
        overrides = {name: value for name, (_, value) in zip(names, combo, strict=True)}
        label = ", ".join(f"{n}={text}" for n, (text, _) in zip(names, combo, strict=True))
        points.append(SweepPoint(label, overrides, apply_overrides(base, overrides)))
    return points


def shadowed(base: DetectorSettings, points: list[SweepPoint]) -> dict[str, list[str]]:
    """Per swept setting, the models whose own value (YAML `models.<name>`, or a calibrated
    threshold) wins over it: the sweep does not change them."""
    names = {name for point in points for name in point.overrides}
    found = {
        name: sorted(m for m, own in base.models.items() if getattr(own, name, None) is not None)
        for name in sorted(names)
    }
    return {name: models for name, models in found.items() if models}


@dataclass(frozen=True, slots=True)
class Detection:
    """How soon a setting reacted to one change point (alert None: missed). An alert that
    fired before the change and still fires at it means the monitor was already alarmed:
    delay 0 (that alert is still a false alarm: it fired without a known change)."""

    change: ChangePoint
    alert: AlertMark | None
    already_firing: bool = False

    @property
    def delay_events(self) -> int | None:
        if self.alert is None:
            return None
        if self.already_firing:
            return 0
        return self.alert.events_seen - self.change.events_before

    @property
    def delay_seconds(self) -> float | None:
        if self.alert is None:
            return None
        if self.already_firing:
            return 0.0
        delay = self.alert.time - self.change.time
        return delay if math.isfinite(delay) else None


@dataclass(frozen=True, slots=True)
class ModelScore:
    """One model under one setting: its detections and false alarms."""

    model: str
    events_seen: int
    horizon: int
    detections: list[Detection]
    false_alarms: int
    firing: int


def score_model(
    model: str,
    result: BacktestResult,
    horizon: int | None = None,
    kinds: frozenset[str] | None = None,
) -> ModelScore:
    """Detections and false alarms of one model (only alerts of `kinds`, if given)."""
    window = result.window_sizes.get(model, 0)
    span = horizon if horizon is not None else 2 * window
    marks = sorted(
        (m for m in result.marks if m.model == model and (kinds is None or m.kind in kinds)),
        key=lambda m: m.events_seen,
    )
    firing = [m for m in marks if m.status == "firing"]
    changes = sorted(
        (c for c in result.change_points if c.model == model), key=lambda c: c.events_before
    )
    detections: list[Detection] = []
    for k, change in enumerate(changes):
        end = change.events_before + span
        if k + 1 < len(changes):
            end = min(end, changes[k + 1].events_before)
        still = _firing_at(marks, change.events_before)
        if still is not None:
            detections.append(Detection(change, still, already_firing=True))
            continue
        first = next((m for m in firing if change.events_before < m.events_seen <= end), None)
        detections.append(Detection(change, first))
    false_alarms = sum(
        1
        for m in firing
        if not any(c.events_before < m.events_seen <= c.events_before + span for c in changes)
    )
    return ModelScore(
        model=model,
        events_seen=result.events_seen.get(model, 0),
        horizon=span,
        detections=detections,
        false_alarms=false_alarms,
        firing=len(firing),
    )


def _firing_at(marks: list[AlertMark], events: int) -> AlertMark | None:
    """The earliest alert (of any kind counted) still firing after the model's `events`."""
    state: dict[str, AlertMark] = {}
    for mark in marks:
        if mark.events_seen > events:
            break
        if mark.status == "firing":
            state[mark.key] = mark
        else:
            state.pop(mark.key, None)
    return min(state.values(), key=lambda m: m.events_seen, default=None)


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    label: str
    overrides: dict[str, Any]
    events_per_second: float
    models: list[ModelScore]


def evaluate(
    label: str,
    overrides: dict[str, Any],
    result: BacktestResult,
    horizon: int | None = None,
    kinds: frozenset[str] | None = None,
) -> SweepOutcome:
    return SweepOutcome(
        label,
        overrides,
        result.events_per_second,
        [score_model(m, result, horizon, kinds) for m in result.models],
    )


def _number(value: float | None, digits: int | None = None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return value if digits is None else round(value, digits)


def to_json(outcomes: list[SweepOutcome], kinds: frozenset[str] | None) -> dict[str, Any]:
    """The sweep as plain JSON: per setting, per model, detections and false alarms."""
    return {
        "kinds": None if kinds is None else sorted(kinds),
        "settings": [
            {
                "label": o.label,
                "overrides": o.overrides,
                "events_per_second": _number(o.events_per_second, 1),
                "models": [
                    {
                        "model": s.model,
                        "events_seen": s.events_seen,
                        "horizon_events": s.horizon,
                        "firing_alerts": s.firing,
                        "false_alarms": s.false_alarms,
                        "detections": [
                            {
                                "change_events_before": d.change.events_before,
                                "change_time": _number(d.change.time),
                                "change_at": rfc3339(d.change.time),
                                "detected": d.alert is not None,
                                "already_firing": d.already_firing,
                                "kind": None if d.alert is None else d.alert.kind,
                                "delay_events": d.delay_events,
                                "delay_seconds": _number(d.delay_seconds, 3),
                            }
                            for d in s.detections
                        ],
                    }
                    for s in o.models
                ],
            }
            for o in outcomes
        ],
    }
