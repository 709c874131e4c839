"""Reference tables: CSV and Parquet files read into the prediction events that
`loading.prepare_from_events` takes. Every format goes through that one function, so the
same data prepares the same reference whichever file it came in.

A table's columns are the feature names and the event fields `prediction`, `actual`,
`latency_ms`, `model` and `model_version` (read, not used yet). A CSV has no types, so each
column's kind is decided from its cells: numbers when every non-empty cell is one (Python's
`float` of the stripped text), strings (categories, class labels) otherwise. Errors read
`file:row: column 'x': reason`, the row being the CSV line (the header is line 1) or the
Parquet row (from 1).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stream_monitor.reference.prepared import InvalidReference

FIELDS = ("prediction", "actual", "latency_ms", "model", "model_version")
PARQUET_INSTALL = "pip install 'stream-monitor[parquet]'"

Column = list[object]  # one Python value per row, as a JSON event would hold it (None: missing)

# the kinds of Parquet column each event field accepts (any kind is a feature)
_PARQUET_KINDS = {
    "actual": ("number", "bool", "null"),
    "latency_ms": ("number", "null"),
    "model": ("string", "null"),
    "model_version": ("string", "null"),
}


def read_csv_events(path: Path, model: str | None) -> list[dict[str, object]]:
    """The events of a CSV reference: `model` is the file's model (a directory's
    `<model>.csv`), or None when one file holds every model in its `model` column; then
    each model's columns are read from its own rows alone, as its own file would be."""
    names, cells, lines = _read_csv(path)
    table = dict(zip(names, cells, strict=True))
    events: list[dict[str, object]] = []
    for named, picked in _models(path, table.get("model"), lines, model).items():
        raw = {name: [column[i] for i in picked] for name, column in table.items()}
        rows = [lines[i] for i in picked]
        events.extend(_events(named, _csv_columns(path, raw, rows), one_file=model is None))
    return events


def _csv_columns(
    path: Path, raw: dict[str, list[str | None]], rows: Sequence[int]
) -> dict[str, Column]:
    """A model's cells as values: a column is numbers when every non-empty cell is one,
    strings otherwise; an actual is read as the predictions are (a number when they are
    numbers: then a cell that is not one is an error; a label when they are labels)."""
    columns = {name: _as_numbers(cells) or _as_text(cells) for name, cells in raw.items()}
    numeric_predictions = _as_numbers(raw["prediction"]) is not None
    for name in ("actual", "latency_ms", "model", "model_version"):
        if name not in raw:
            continue
        cells = raw[name]
        if name == "latency_ms" or (name == "actual" and numeric_predictions):
            if _as_numbers(cells) is None:
                bad = next(i for i, c in enumerate(cells) if c is not None and _number(c) is None)
                why = " (the predictions are numbers)" if name == "actual" else ""
                raise InvalidReference(
                    f"{path}:{rows[bad]}: column {name!r}: {cells[bad]!r} is not a number{why}"
                )
        else:
            columns[name] = _as_text(cells)
    return columns


def _read_csv(path: Path) -> tuple[list[str], list[list[str | None]], list[int]]:
    """The header, each column's stripped cells (None when empty) and each row's line."""
    lines: list[int] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            try:
                header = next(reader, None)
                if not header:
                    raise InvalidReference(f"{path}: no reference events (the file is empty)")
                names = [name.strip() for name in header]
                _check_names(f"{path}:1", names)
                cells: list[list[str | None]] = [[] for _ in names]
                for row in reader:
                    if not row:  # a blank line
                        continue
                    if len(row) != len(names):
                        raise InvalidReference(f"{path}:{reader.line_num}: {_misfit(row, names)}")
                    for column, cell in zip(cells, row, strict=True):
                        column.append(cell.strip() or None)
                    lines.append(reader.line_num)
            except csv.Error as exc:
                raise InvalidReference(f"{path}:{reader.line_num}: {exc}") from None
    except OSError as exc:
        raise InvalidReference(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InvalidReference(f"{path}: not UTF-8 text ({exc.reason})") from None
    if not lines:
        raise InvalidReference(f"{path}: no reference events (only a header)")
    return names, cells, lines


def _misfit(row: Sequence[str], names: Sequence[str]) -> str:
    """Why a row does not fit the header: the first column it lacks or the first cell too many."""
    counts = f"(the row has {len(row)} cells, the header {len(names)} columns)"
    if len(row) < len(names):
        return f"column {names[len(row)]!r}: no cell {counts}"
    return f"column {len(names) + 1}: not in the header {counts}"


def _number(cell: str | None) -> float | None:
    """A cell's number; None when empty or not a number."""
    if cell is None:
        return None
    try:
        return float(cell)
    except ValueError:
        return None


def _as_numbers(cells: Sequence[str | None]) -> Column | None:
    """The cells as floats (None where empty), or None when a non-empty cell is not a number."""
    out: Column = []
    for cell in cells:
        value = _number(cell)
        if value is None and cell is not None:
            return None
        out.append(value)
    return out


def _as_text(cells: Sequence[str | None]) -> Column:
    """The cells as strings (None where empty): categories, class labels, model names."""
    return list(cells)


def read_parquet_events(path: Path, model: str | None) -> list[dict[str, object]]:
    """The events of a Parquet reference (`model` as in `read_csv_events`). pyarrow is an
    optional dependency: it is imported here, only when a Parquet reference is read."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidReference(
            f"{path}: reading a Parquet reference needs pyarrow, which is not installed: "
            f"{PARQUET_INSTALL}"
        ) from None
    try:
        # not pq.read_table: its dataset layer fails on a duplicated name with an obscure
        # message, and the duplicate is better named like the CSV's
        with pq.ParquetFile(path) as file:
            table = file.read()
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise InvalidReference(f"{path}: not a readable Parquet file ({exc})") from None
    names = [str(name) for name in table.column_names]
    _check_names(str(path), names)
    if table.num_rows == 0:
        raise InvalidReference(f"{path}: no reference events (no rows)")
    rows = range(1, table.num_rows + 1)
    columns: dict[str, Column] = {}
    kinds: dict[str, str] = {}
    for i, name in enumerate(names):
        column = table.column(i)
        kinds[name] = kind = _parquet_kind(column.type)
        if kind == "unsupported":
            raise InvalidReference(
                f"{path}: column {name!r}: type {column.type} is not supported "
                "(numbers, strings and bools are)"
            )
        if kind == "decimal":  # read as JSON would have it: a float
            column = column.cast(pa.float64())
            kinds[name] = "number"
        columns[name] = list(column.to_pylist())
    for name, accepted in _PARQUET_KINDS.items():
        if name not in columns or kinds[name] in accepted:
            continue
        if name == "actual" and kinds["prediction"] == "string":
            continue  # the predictions are class labels: so are the actuals
        bad = next((i for i, value in enumerate(columns[name]) if value is not None), None)
        if bad is None:
            continue  # every value missing
        expected = "a string" if name.startswith("model") else "a number"
        raise InvalidReference(
            f"{path}:{rows[bad]}: column {name!r}: {columns[name][bad]!r} is a {kinds[name]}, "
            f"not {expected} (the column's type is {table.column(name).type})"
        )
    events: list[dict[str, object]] = []
    for named, picked in _models(path, columns.get("model"), rows, model).items():
        chosen = {name: [values[i] for i in picked] for name, values in columns.items()}
        events.extend(_events(named, chosen, one_file=model is None))
    return events


def _parquet_kind(dtype: Any) -> str:
    """A Parquet column's kind as an event field would have it: number, bool, string, null,
    decimal (read as float) or unsupported."""
    import pyarrow.types as types

    if types.is_integer(dtype) or types.is_floating(dtype):
        return "number"
    if types.is_decimal(dtype):
        return "decimal"
    if types.is_boolean(dtype):
        return "bool"
    if types.is_null(dtype):
        return "null"
    if types.is_dictionary(dtype):
        dtype = dtype.value_type
    if types.is_string(dtype) or types.is_large_string(dtype):
        return "string"
    return "unsupported"


def _check_names(where: str, names: Sequence[str]) -> None:
    """A header every row can be read by: named, unique columns, one of them `prediction`."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        if not name:
            raise InvalidReference(f"{where}: column {i}: has no name")
        if name in seen:
            raise InvalidReference(
                f"{where}: column {name!r}: named twice (columns {seen[name]} and {i})"
            )
        seen[name] = i
    if "prediction" not in seen:
        found = ", ".join(repr(name) for name in names)
        raise InvalidReference(f"{where}: column 'prediction': missing; the columns found: {found}")


def _models(
    path: Path, models: Sequence[object] | None, rows: Sequence[int], model: str | None
) -> dict[str, list[int]]:
    """Each model's row indices: by the `model` column when one file holds every model (each
    row must name one), all rows for the file's model otherwise (a row naming another model
    is an error)."""
    if model is None and models is None:
        raise InvalidReference(
            f"{path}: column 'model': missing (needed when one file holds the references)"
        )
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        named = str(models[i]) if models is not None and models[i] else None  # "": missing
        if model is not None and named is not None and named != model:
            raise InvalidReference(
                f"{path}:{row}: column 'model': {named!r}, but the file is for {model!r}"
            )
        key = named or model
        if key is None:
            raise InvalidReference(
                f"{path}:{row}: column 'model': empty (needed when one file holds the references)"
            )
        groups.setdefault(key, []).append(i)
    return groups


def _events(model: str, columns: dict[str, Column], one_file: bool) -> list[dict[str, object]]:
    """One model's rows as events. In a file holding every model, a feature column with no
    value in this model's rows belongs to another model: it is left out, as a JSONL event
    would leave it out, rather than reported as a feature always missing."""
    features = [
        name
        for name, values in columns.items()
        if name not in FIELDS and not (one_file and all(v is None for v in values))
    ]
    extra = [name for name in ("actual", "latency_ms", "model_version") if name in columns]
    events: list[dict[str, object]] = []
    for i in range(len(columns["prediction"])):
        event: dict[str, object] = {
            "model": model,
            "features": {name: columns[name][i] for name in features},
            "prediction": columns["prediction"][i],
        }
        for name in extra:
            event[name] = columns[name][i]
        events.append(event)
    return events
