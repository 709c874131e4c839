"""The in-process API: a monitor object inside a serving process, fed events directly.

It is the engine of `run` and `replay`, unchanged: the same settings (pydantic, YAML), the
same references, the same checks, alerts and `/status` data. Events are given as dicts in
the prediction-event format (contract §1), or as a feature matrix; each call returns the
alerts it raised. No Kafka, no threads, no clock: the same events give the same alerts as
`stream-monitor replay` on a file of them.

Example (the original design's `ModelMonitor(reference).log_prediction(...)`):

>>> import numpy as np
>>> from stream_monitor import Monitor
>>> rng = np.random.default_rng(0)
>>> names = ["a", "b", "c"]
>>> reference = rng.normal(size=(5000, 3))
>>> monitor = Monitor.from_arrays("scorer", reference, names, reference.sum(axis=1))
>>> calm = rng.normal(size=(1000, 3))
>>> monitor.log_arrays("scorer", calm, names, calm.sum(axis=1))
[]
>>> shifted = rng.normal(size=(1000, 3)) + [1.0, 0.0, 0.0]
>>> alerts = monitor.log_arrays("scorer", shifted, names, shifted.sum(axis=1))
>>> for a in alerts:
...     print(a.kind, a.status, a.events_seen, a.test, round(a.score, 3), a.recommendation)
input_drift firing 1064 cusum 41.45 retrain
prediction_drift firing 1400 jensenshannon 0.105 retrain
>>> monitor.status()["models"]["scorer"]["should_retrain"]
True
>>> monitor.log({"model": "scorer", "prediction": 0.3})  # bad input: counted, never raised
[]
>>> monitor.dead_letters[-1].reason
'missing_features'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from stream_monitor.alerts.contract import Alert
from stream_monitor.alerts.outcome import BatchOutcome
from stream_monitor.arrays import FloatArray
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.config.loading import load_settings
from stream_monitor.engine.core import Engine
from stream_monitor.engine.observers import EngineObserver
from stream_monitor.reference.loading import load_references
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.sources.records import DeadLetter, RecordBatch

DEFAULT_SOURCE = "in-process"


class Monitor:
    """Windows, checks and alerts of one or many models, in the calling process.

    `source` names the stream in the alerts' `source.topic` (their `source.offset` counts
    the events logged, from 0), as a file's name and line numbers do in `replay`.
    """

    def __init__(
        self,
        references: Mapping[str, PreparedReference] | None = None,
        settings: DetectorSettings | None = None,
        source: str = DEFAULT_SOURCE,
        **options: Any,
    ) -> None:
        if settings is None:
            settings = load_settings(options).detector_settings()
        elif options:
            raise TypeError("give either settings or options, not both")
        self.settings = settings
        self.engine = Engine(settings, dict(references or {}))
        self.source = source
        self.dead_letters: list[DeadLetter] = []  # readable events of this monitor only
        self._offset = 0

    @classmethod
    def from_files(
        cls,
        reference: Path | str,
        config: Path | str | None = None,
        source: str = DEFAULT_SOURCE,
        **options: Any,
    ) -> Monitor:
        """References and settings as `run` reads them: `--reference` and `--config`, with
        `options` given as on the command line (they win over the file)."""
        settings = load_settings(options, None if config is None else Path(config))
        refs = load_references(Path(reference), settings.prediction_bins)
        return cls(refs, settings.detector_settings(), source)

    @classmethod
    def from_arrays(
        cls,
        model: str,
        features: FloatArray,
        feature_names: Sequence[str],
        predictions: FloatArray | None = None,
        source: str = DEFAULT_SOURCE,
        **options: Any,
    ) -> Monitor:
        """One model's reference from an (n, F) feature matrix (NaN: missing) and, optionally,
        its n predictions."""
        monitor = cls(None, None, source, **options)
        x = np.asarray(features, dtype=np.float64)
        p = np.full(x.shape[0], np.nan) if predictions is None else np.asarray(predictions, float)
        bins = monitor.settings.prediction_bins
        reference = PreparedReference.from_arrays(model, tuple(feature_names), x, p, bins)
        monitor.engine.replace_references({**monitor.engine.references, model: reference})
        return monitor

    def observe(self, observer: EngineObserver) -> None:
        """Tell `observer` of every check (see `engine.observers`)."""
        self.engine.observe(observer)

    # -- events --------------------------------------------------------------------------

    def log(self, event: Mapping[str, Any]) -> list[Alert]:
        """One prediction event (contract §1); the alerts it raised."""
        return self.log_many([event])

    def log_many(self, events: Iterable[Mapping[str, Any]]) -> list[Alert]:
        """Events in order, processed as one batch; the alerts they raised."""
        option = orjson.OPT_SERIALIZE_NUMPY
        return self.log_records([orjson.dumps(e, option=option) for e in events])

    def log_records(self, values: Sequence[bytes]) -> list[Alert]:
        """Events already JSON-encoded (one object each), as they travel on Kafka."""
        batch = RecordBatch()
        for value in values:
            batch.append(None, value, self.source, 0, self._offset, None)
            self._offset += 1
        outcome: BatchOutcome = self.engine.process(batch)
        self.dead_letters.extend(outcome.dead_letters)
        return outcome.alerts

    def log_arrays(
        self,
        model: str,
        features: FloatArray,
        feature_names: Sequence[str],
        predictions: Sequence[float | str] | FloatArray,
        actuals: Sequence[float | str | None] | FloatArray | None = None,
        latencies_ms: FloatArray | None = None,
        timestamps: FloatArray | None = None,
    ) -> list[Alert]:
        """A block of one model's events as arrays: row i of `features` with prediction i
        (NaN features are missing values)."""
        x = np.asarray(features, dtype=np.float64)
        names = list(feature_names)
        events: list[dict[str, Any]] = []
        for i, row in enumerate(x.tolist()):
            values = {n: (None if v != v else v) for n, v in zip(names, row, strict=True)}
            event: dict[str, Any] = {"model": model, "features": values}
            event["prediction"] = _item(predictions[i])
            if actuals is not None and (a := _item(actuals[i])) is not None:
                event["actual"] = a
            if latencies_ms is not None:
                event["latency_ms"] = _item(latencies_ms[i])
            if timestamps is not None:
                event["timestamp"] = _item(timestamps[i])
            events.append(event)
        return self.log_many(events)

    # -- status --------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        """What `/status` serves for these models: windows, last results, firing alerts."""
        return self.engine.status()


def _item(value: Any) -> Any:
    """A plain Python value (numpy scalars become numbers, NaN becomes None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
