"""Prediction batches through the native decoder (`_native.decode_predictions`), with the
result of the Python path: `decode_batch` then, per model, `event_arrays`.

The native decoder validates every record as `decode_batch` does and reads the models it can
(known schema, numbers only) into arrays; the rest of the batch (class labels, RFC 3339
timestamps, string features, unknown models, and the few texts serde_json and orjson might
read differently) goes through `decode_batch` as a sub-batch, whose positions are mapped
back. The dead letters come out in batch order and the models in first-seen order, as
`decode_batch` of the whole batch gives them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from stream_monitor.arrays import FloatArray
from stream_monitor.decode.arrays import EventArrays, event_arrays
from stream_monitor.decode.predictions import ModelEvents, decode_batch
from stream_monitor.kernels import NativeModel, WindowFleet, decode_predictions
from stream_monitor.sources.records import DeadLetter, RecordBatch


@dataclass(slots=True)
class DecodedModel:
    """One model's valid events of a batch.

    `arrays` is `event_arrays(schemas[model], events)` for a model of the schemas (read by
    the native decoder or by the Python), None for a model not in them (its feature names
    are the caller's to choose). A model read natively has `events.index`, `event_ids` and
    `versions`, but `events.features` empty (its feature values are in `arrays.features`
    only) and its predictions, actuals, latencies and timestamps empty until
    `complete_events` fills them (floats: a JSON int as its float; None where absent or
    null); `arrays.predictions` and `arrays.actuals` are `LazyFloats`.
    """

    events: ModelEvents
    arrays: EventArrays | None
    native: bool  # read by the native decoder


@dataclass(slots=True)
class NativeBatch:
    by_model: dict[str, DecodedModel]  # in first-seen order; not the fleet's staged models
    dead_letters: list[DeadLetter]  # in batch order
    dead_letter_models: list[str]  # model of each dead letter when readable, else ""
    staged: bool = False  # the fleet holds fast events of its models for `ingest`


# Offered a model new to the caller (in neither the schemas nor the fleet) and a way to
# decode its first valid event: whether the caller admitted it to be read natively (its
# schema added to the schemas, or the model enrolled in the fleet).
Admit = Callable[[str, Callable[[], ModelEvents | None]], bool]


def decode_native(
    batch: RecordBatch,
    schemas: Mapping[str, tuple[str, ...]],
    fleet: WindowFleet | None = None,
    split_versions: bool = False,
    admit: Admit | None = None,
) -> NativeBatch:
    """The batch's dead letters and models, equal to `decode_batch(batch)` followed by
    `event_arrays(schemas[model], ...)` for each model of `schemas` (bit for bit). The fast
    events of the models enrolled in `fleet` stay in it, staged for `fleet.ingest`.

    With `admit`, the models new to the caller are offered to it first; if it admits one to
    be read natively, the batch is read again with its schema (a dict `schemas` and `fleet`
    are the caller's own, which the admission changed). Without it a new model's events
    of its first batch all went through the Python decoder, about 10 µs each.
    """
    wanted = schemas if isinstance(schemas, dict) else dict(schemas)
    decoded = decode_predictions(
        batch.values, batch.keys, batch.timestamps, wanted, fleet, split_versions
    )
    if admit is not None and decoded.unknown:
        taken = [
            admit(name, _first_events(batch, name, at, split_versions))
            for name, at in decoded.unknown
        ]
        if any(taken):
            decoded = decode_predictions(
                batch.values, batch.keys, batch.timestamps, wanted, fleet, split_versions
            )
    fast = dict(decoded.fast)
    positions = sorted(decoded.slow_positions + decoded.undecided_positions)
    python = _decode_positions(batch, positions, split_versions)
    demoted = [
        name
        for name in python.by_model
        if name in fast or (fleet is not None and fleet.staged(name))
    ]
    if demoted:  # an undecided record of a fast model: the model goes to the Python
        for name in demoted:
            if name in fast:
                positions.extend(fast.pop(name).positions.tolist())
            else:
                assert fleet is not None
                positions.extend(fleet.unstage(name))
        positions.sort()
        python = _decode_positions(batch, positions, split_versions)

    dead = [(i, DeadLetter(i, reason, detail), model) for i, reason, detail, model in decoded.dead]
    dead.extend(
        (d.index, d, model)
        for d, model in zip(python.dead_letters, python.dead_letter_models, strict=True)
    )
    dead.sort(key=lambda d: d[0])

    models: list[tuple[int, str, DecodedModel]] = []
    for name, columns in fast.items():
        models.append((int(columns.positions[0]), name, _native_model(name, columns)))
    for name, events in python.by_model.items():
        names = schemas.get(name)
        arrays = None if names is None else event_arrays(names, events)
        models.append((events.index[0], name, DecodedModel(events, arrays, native=False)))
    models.sort(key=lambda m: m[0])
    return NativeBatch(
        {name: model for _, name, model in models},
        [d for _, d, _ in dead],
        [model for _, _, model in dead],
        staged=fleet is not None and decoded.staged > 0,
    )


def _first_events(
    batch: RecordBatch, name: str, position: int, split_versions: bool
) -> Callable[[], ModelEvents | None]:
    """Decodes, when called, the record at `position` as `name`'s events (None if it
    reads as another model's: it does not, but the Python decoder decides)."""
    return lambda: _decode_positions(batch, [position], split_versions).by_model.get(name)


def _decode_positions(batch: RecordBatch, positions: list[int], split_versions: bool) -> _Decoded:
    """`decode_batch` of the records at `positions`, its positions those of `batch`."""
    if not positions:
        return _Decoded({}, [], [])
    sub = RecordBatch(
        keys=[batch.keys[p] for p in positions],
        values=[batch.values[p] for p in positions],
        timestamps=[batch.timestamps[p] for p in positions],
    )
    decoded = decode_batch(sub, split_versions)
    for events in decoded.by_model.values():
        events.index = [positions[i] for i in events.index]
    dead = [DeadLetter(positions[d.index], d.reason, d.detail) for d in decoded.dead_letters]
    return _Decoded(decoded.by_model, dead, decoded.dead_letter_models)


@dataclass(slots=True)
class _Decoded:
    by_model: dict[str, ModelEvents]
    dead_letters: list[DeadLetter]
    dead_letter_models: list[str]


class LazyFloats(Sequence[float | None]):
    """A float64 array as a sequence of Python floats (None for NaN with `nan_is_none`),
    made into a list on first use: a native model's predictions and actuals, which most
    batches never read one by one."""

    __slots__ = ("_array", "_list", "_nan_is_none")

    def __init__(self, array: FloatArray, nan_is_none: bool = False) -> None:
        self._array = array
        self._nan_is_none = nan_is_none
        self._list: list[float | None] | None = None

    def values(self) -> list[float | None]:
        if self._list is None:
            values: list[float | None] = self._array.tolist()
            if self._nan_is_none:
                nan = np.isnan(self._array)
                if nan.any():
                    for i in np.flatnonzero(nan).tolist():
                        values[i] = None
            self._list = values
        return self._list

    def __len__(self) -> int:
        return len(self._array)

    @overload
    def __getitem__(self, i: int) -> float | None: ...
    @overload
    def __getitem__(self, i: slice) -> list[float | None]: ...
    def __getitem__(self, i: int | slice) -> float | list[float | None] | None:
        return self.values()[i]

    def __iter__(self) -> Iterator[float | None]:
        return iter(self.values())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyFloats):
            return self.values() == other.values()
        return isinstance(other, list) and self.values() == other

    __hash__ = None  # type: ignore[assignment]


def _native_model(name: str, columns: NativeModel) -> DecodedModel:
    """A fast model's `ModelEvents` and `EventArrays` from the native columns."""
    prediction, actual = columns.prediction, columns.actual
    predictions = LazyFloats(prediction)
    actuals = LazyFloats(actual, nan_is_none=True)
    events = ModelEvents(name, index=columns.positions.tolist())
    events.versions = columns.versions
    events.event_ids = columns.event_ids
    arrays = EventArrays(
        list(range(len(events))),
        columns.features,
        prediction,
        actual,
        columns.latency_ms,
        columns.timestamp,
        columns.error,
        False,
        predictions,  # type: ignore[arg-type]  # floats: no class label
        actuals,
        [],
    )
    return DecodedModel(events, arrays, native=True)


def complete_events(model: DecodedModel) -> ModelEvents:
    """A native model's `ModelEvents` with its predictions, actuals, latencies and
    timestamps filled in (floats; None where absent or null), for the readers of those lists
    (the label join); the Python path's events as they are."""
    events = model.events
    if model.native and model.arrays is not None and not events.predictions:
        a = model.arrays
        events.predictions = list(LazyFloats(a.prediction).values())  # type: ignore[arg-type]
        events.actuals = list(LazyFloats(a.actual, nan_is_none=True).values())
        events.latencies = LazyFloats(a.latency_ms, nan_is_none=True).values()
        events.timestamps = LazyFloats(a.timestamp, nan_is_none=True).values()
    return events
