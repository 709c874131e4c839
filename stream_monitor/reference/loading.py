"""References from files: a directory of `<model>.jsonl`, `<model>.csv` or `<model>.parquet`,
or one such file whose events (rows) carry `model`; every error names the file, the line
and the reason. CSV and Parquet are read into events (`tables`), so every format is
prepared by `prepare_from_events`."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from stream_monitor.decode.common import decode_event_line
from stream_monitor.detectors.categorical import CategoricalReference
from stream_monitor.reference.prepared import InvalidReference, PreparedReference
from stream_monitor.reference.published import canonical_text, reference_id
from stream_monitor.reference.tables import read_csv_events, read_parquet_events

FORMATS = (".jsonl", ".csv", ".parquet")  # the suffixes a reference directory is read for


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
    events_list = list(events)
    for n, event in enumerate(events_list, start=1):
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
    prepared.reference_id = reference_id(canonical_text(events_list))
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


def read_reference_events(path: Path, model: str) -> list[dict[str, object]]:
    """One model's reference events from a file of any format (`reference publish`): the
    events that name another model are left out."""
    events = [e for e in _read_events(path, model) if e.get("model") in (None, model)]
    if not events:
        raise InvalidReference(f"{path}: no reference events for model {model!r}")
    return events


def _read_events(path: Path, model: str | None) -> list[dict[str, object]]:
    """A file's events, read by its suffix; `model` is the file's model in a directory, None
    when one file holds every model. Any suffix but .csv and .parquet is JSONL, as it was
    before the other formats."""
    if path.suffix == ".csv":
        return read_csv_events(path, model)
    if path.suffix == ".parquet":
        return read_parquet_events(path, model)
    return _read_jsonl(path)


def _model_files(path: Path) -> list[Path]:
    """A reference directory's files, one per model: two formats of one model are an error,
    since which one to use would be a guess."""
    files = sorted(file for suffix in FORMATS for file in path.glob(f"*{suffix}"))
    if not files:
        raise InvalidReference(
            f"{path}: no <model>.jsonl files (nor <model>.csv or <model>.parquet) in the "
            "reference directory"
        )
    seen: dict[str, Path] = {}
    for file in files:
        if file.stem in seen:
            raise InvalidReference(
                f"{path}: model {file.stem!r} has two references, {seen[file.stem]} and "
                f"{file}: keep one"
            )
        seen[file.stem] = file
    return files


def load_references(path: Path, bins: int, keep_rows: bool = False) -> dict[str, PreparedReference]:
    """Load `<model>.<jsonl|csv|parquet>` files from a directory (`<model>@<version>.<ext>`:
    a version's own reference), or one such file whose events carry `model`."""
    grouped: dict[str, list[dict[str, object]]] = {}
    sources: dict[str, str] = {}
    if path.is_dir():
        for file in _model_files(path):
            model = file.stem
            events = _read_events(file, model)
            for n, event in enumerate(events, start=1):
                named = event.get("model")
                # `<model>@<version>.<ext>`, `<stream>#<segment>.<ext>`: the model's events
                own = model.startswith((f"{named}@", f"{named}#"))  # a version's, a segment's
                if named is not None and named != model and not own:
                    raise InvalidReference(
                        f"{file}: event {n} names model {named!r}, but the file is for {model!r}"
                    )
            grouped[model] = events
            sources[model] = str(file)
    else:
        for n, event in enumerate(_read_events(path, None), start=1):
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
