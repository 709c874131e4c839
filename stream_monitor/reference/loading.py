"""References from files: a directory of `<model>.jsonl` or one JSONL file whose events carry
`model`; every error names the file, the line and the reason."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from stream_monitor.decode.common import decode_event_line
from stream_monitor.detectors.categorical import CategoricalReference
from stream_monitor.reference.prepared import InvalidReference, PreparedReference


def _numeric(value: object) -> float:
    """A feature or prediction value as float; None and non-numbers are missing (NaN)."""
    if type(value) is float or type(value) is int or type(value) is bool:
        return float(value)
    return math.nan


def prepare_from_events(
    model: str,
    events: Iterable[dict[str, object]],
    bins: int,
    source: str,
    keep_rows: bool = False,
) -> PreparedReference:
    """Prepare a reference from prediction events in the contract's schema (§1)."""
    rows: list[dict[str, object]] = []
    names: dict[str, None] = {}
    categorical: dict[str, None] = {}
    preds: list[float] = []
    raw_predictions: list[object] = []
    for n, event in enumerate(events, start=1):
        feats = event.get("features")
        if not isinstance(feats, dict):
            raise InvalidReference(f"{source}: event {n} has no features object")
        for name, value in feats.items():
            if isinstance(value, str | bool):
                categorical[name] = None
            elif name not in names:
                names[name] = None
        rows.append(feats)
        raw_predictions.append(event.get("prediction"))
        preds.append(_numeric(raw_predictions[-1]))
    if not rows:
        raise InvalidReference(f"{source}: no reference events for model {model!r}")
    feature_names = sorted(n for n in names if n not in categorical)
    matrix = np.array(
        [[_numeric(r.get(name)) for name in feature_names] for r in rows], dtype=np.float64
    )
    prepared = PreparedReference.from_arrays(
        model,
        feature_names,
        matrix.reshape(len(rows), len(feature_names)),
        np.array(preds, dtype=np.float64),
        bins,
    )
    if keep_rows:
        prepared.rows = matrix.reshape(len(rows), len(feature_names))
    if categorical:
        prepared.categorical = CategoricalReference.from_events(sorted(categorical), rows)
        prepared.notes.extend(prepared.categorical.notes)
    labels = [p for p in raw_predictions if isinstance(p, str)]
    if labels:
        prepared.classes = CategoricalReference.prepare(["prediction"], [labels])
        prepared.notes = [n for n in prepared.notes if "no numeric predictions" not in n]
    return prepared


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    try:
        with path.open("rb") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    events.append(decode_event_line(line))
                except ValueError as exc:
                    raise InvalidReference(f"{path}:{lineno}: {exc}") from None
    except OSError as exc:
        raise InvalidReference(f"{path}: {exc.strerror or exc}") from None
    return events


def load_references(path: Path, bins: int, keep_rows: bool = False) -> dict[str, PreparedReference]:
    """Load `<model>.jsonl` files from a directory, or one JSONL file whose events carry `model`."""
    grouped: dict[str, list[dict[str, object]]] = {}
    sources: dict[str, str] = {}
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise InvalidReference(f"{path}: no <model>.jsonl files in the reference directory")
        for file in files:
            model = file.stem
            events = _read_jsonl(file)
            for n, event in enumerate(events, start=1):
                named = event.get("model")
                if named is not None and named != model:
                    raise InvalidReference(
                        f"{file}: event {n} names model {named!r}, but the file is for {model!r}"
                    )
            grouped[model] = events
            sources[model] = str(file)
    else:
        for n, event in enumerate(_read_jsonl(path), start=1):
            named = event.get("model")
            if not isinstance(named, str) or not named:
                raise InvalidReference(f"{path}: event {n} has no model field (needed in one file)")
            grouped.setdefault(named, []).append(event)
            sources[named] = str(path)
        if not grouped:
            raise InvalidReference(f"{path}: the reference file holds no events")
    return {
        model: prepare_from_events(model, events, bins, sources[model], keep_rows)
        for model, events in grouped.items()
    }
