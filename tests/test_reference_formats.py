"""References as CSV and Parquet: the same data prepares the same reference as JSONL, and
every unusable table is refused with its file, row, column and reason."""

from __future__ import annotations

import csv
import dataclasses
import math
import re
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stream_monitor.kernels import ResidualSubspace
from stream_monitor.reference.loading import load_references
from stream_monitor.reference.prepared import InvalidReference, PreparedReference
from stream_monitor.tools.synthetic import to_jsonl

NUMERIC = ("x0", "x1", "x2")
LABELS = ("bird", "cat", "dog")


def _events(seed: int, n: int, labels: bool) -> list[dict[str, object]]:
    """Random reference events: numeric features with missing values, a categorical one,
    numeric or class-label predictions, actuals and latencies (some missing)."""
    rng = np.random.default_rng(seed)
    events: list[dict[str, object]] = []
    for _ in range(n):
        feats: dict[str, object] = {
            name: None if rng.random() < 0.1 else float(rng.normal(j, 1 + j))
            for j, name in enumerate(NUMERIC)
        }
        feats["colour"] = None if rng.random() < 0.05 else str(rng.choice(["red", "green", "blue"]))
        prediction: object
        actual: object
        if labels:
            prediction, actual = str(rng.choice(LABELS)), str(rng.choice(LABELS))
        else:
            prediction, actual = float(rng.normal()), float(rng.normal())
        events.append(
            {
                "features": feats,
                "prediction": prediction,
                "actual": None if rng.random() < 0.2 else actual,
                "latency_ms": float(rng.gamma(2.0, 5.0)),
            }
        )
    return events


def _columns(events: list[dict[str, object]], model: str | None) -> dict[str, list[object]]:
    """The events as table columns (a feature absent from an event is an empty cell); a
    `model` column when `model` is given."""
    feats = [e["features"] for e in events]
    names = list(dict.fromkeys(name for f in feats if isinstance(f, dict) for name in f))
    columns: dict[str, list[object]] = {
        name: [f.get(name) if isinstance(f, dict) else None for f in feats] for name in names
    }
    for name in ("prediction", "actual", "latency_ms"):
        columns[name] = [e.get(name) for e in events]
    if model is not None:
        columns["model"] = [model] * len(events)
    return columns


def _merged(*tables: dict[str, list[object]]) -> dict[str, list[object]]:
    """Tables one after the other; a column some table lacks is empty in its rows."""
    names = list(dict.fromkeys(name for table in tables for name in table))
    sizes = [len(next(iter(table.values()))) for table in tables]
    return {
        name: [v for t, n in zip(tables, sizes, strict=True) for v in t.get(name, [None] * n)]
        for name in names
    }


def _write_csv(path: Path, columns: dict[str, list[object]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows(zip(*columns.values(), strict=True))  # None is written as ""
    return path


def _write_parquet(path: Path, columns: dict[str, list[object]]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def _write_jsonl(path: Path, events: list[dict[str, object]]) -> Path:
    path.write_bytes(to_jsonl(events))
    return path


def _assert_same(a: object, b: object, where: str) -> None:
    """Recursive equality of prepared references: arrays by value (NaN equal to NaN)."""
    assert type(a) is type(b), where
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray)
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), where
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        for f in dataclasses.fields(a):
            _assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, ResidualSubspace):  # native: its arrays through its getters
        for name in ("mean", "scale", "components", "sorted_errors"):
            _assert_same(getattr(a, name), getattr(b, name), f"{where}.{name}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple)
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert isinstance(b, dict)
        assert list(a) == list(b), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert a == b, where


@pytest.mark.parametrize(("seed", "labels"), [(1, False), (2, False), (3, True)])
def test_jsonl_csv_and_parquet_of_the_same_data_prepare_the_same_reference(
    tmp_path: Path, seed: int, labels: bool
) -> None:
    events = _events(seed, 400, labels)
    columns = _columns(events, None)
    for suffix in ("jsonl", "csv", "parquet"):
        (tmp_path / suffix).mkdir()
    _write_jsonl(tmp_path / "jsonl" / "m.jsonl", events)
    _write_csv(tmp_path / "csv" / "m.csv", columns)
    _write_parquet(tmp_path / "parquet" / "m.parquet", columns)
    loaded: dict[str, PreparedReference] = {
        suffix: load_references(tmp_path / suffix, 20, keep_rows=True)["m"]
        for suffix in ("jsonl", "csv", "parquet")
    }
    base = loaded["jsonl"]
    assert base.feature_names == NUMERIC
    assert base.categorical is not None and base.categorical.feature_names == ("colour",)
    assert (base.classes is not None) == labels
    assert (base.prediction_edges is None) == labels
    assert base.projection is not None  # enough complete rows: the multivariate chart too
    assert any("missing in" in note for note in base.notes)
    for suffix in ("csv", "parquet"):
        _assert_same(base, loaded[suffix], suffix)


def test_one_table_holds_every_model_in_its_model_column(tmp_path: Path) -> None:
    """Each model is read from its own rows: its own column kinds (numbers for one, class
    labels for another), and another model's feature columns (empty in its rows) left out."""
    a, b, c = _events(4, 150, False), _events(5, 120, True), _events(6, 130, False)
    for event in c:
        feats = event["features"]
        assert isinstance(feats, dict)
        feats["only_c"] = feats.pop("colour")
    (tmp_path / "dir").mkdir()
    _write_jsonl(tmp_path / "dir" / "a.jsonl", a)  # formats mixed across models
    _write_csv(tmp_path / "dir" / "b.csv", _columns(b, None))
    _write_parquet(tmp_path / "dir" / "c.parquet", _columns(c, None))
    by_model = load_references(tmp_path / "dir", 20)
    assert by_model["c"].categorical is not None
    assert by_model["c"].categorical.feature_names == ("only_c",)
    merged = _merged(
        *(_columns(events, name) for name, events in zip("abc", (a, b, c), strict=True))
    )
    # a Parquet column has one type: class labels and numbers cannot share `prediction`
    numeric = _merged(_columns(a, "a"), _columns(c, "c"))
    for path, models in (
        (_write_csv(tmp_path / "all.csv", merged), "abc"),
        (_write_parquet(tmp_path / "all.parquet", numeric), "ac"),
    ):
        one_file = load_references(path, 20)
        assert sorted(one_file) == list(models)
        for name in models:
            _assert_same(by_model[name], one_file[name], f"{path.name}:{name}")


def test_csv_cells_decide_each_column_kind(tmp_path: Path) -> None:
    """A column with one non-number is categorical; empty cells are missing; spaces around
    cells and a byte-order mark are not part of the values; numeric labels are numbers."""
    text = "\ufeffsize , code,prediction,actual\n 1.5 ,A1, 1,0\n,7,0,\n2e1,,1,1\n"
    (tmp_path / "m.csv").write_text(text, encoding="utf-8")
    ref = load_references(tmp_path, 20)["m"]
    assert ref.feature_names == ("size",)
    assert ref.sorted_columns[0].tolist() == [1.5, 20.0]
    assert ref.categorical is not None and ref.categorical.feature_names == ("code",)
    assert ref.categorical.tables[0].categories == ("7", "A1")
    assert ref.categorical.tables[0].missing == 1
    assert ref.classes is None and ref.sorted_predictions.tolist() == [0.0, 1.0, 1.0]


def test_class_labels_take_actuals_as_labels(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("x,prediction,actual\n1,cat,abc\n2,dog,\n")
    ref = load_references(tmp_path, 20)["m"]
    assert ref.classes is not None and ref.classes.tables[0].categories == ("cat", "dog")


HEADER_AND_ROW_ERRORS = [
    ("a,b\n1,2\n", "m.csv:1", "column 'prediction': missing; the columns found: 'a', 'b'"),
    ("a,prediction,latency_ms\n1,2,3\n4,5\n", "m.csv:3", "column 'latency_ms': no cell"),
    ("a,prediction\n1,2\n3,4,5\n", "m.csv:3", "column 3: not in the header"),
    ("a,a,prediction\n1,2,3\n", "m.csv:1", "column 'a': named twice (columns 1 and 2)"),
    (",a,prediction\n0,1,2\n", "m.csv:1", "column 1: has no name"),
    ("a,prediction,latency_ms\n1,2,3\n1,2,abc\n", "m.csv:3", "column 'latency_ms': 'abc' is not"),
    ("a,prediction,latency_ms\n1,2,\n\n1,2,abc\n", "m.csv:4", "column 'latency_ms': 'abc'"),
    ("a,prediction,actual\n1,2,3\n1,2,abc\n", "m.csv:3", "column 'actual': 'abc' is not a number"),
    ("a,prediction,model\n1,2,m\n1,2,other\n", "m.csv:3", "column 'model': 'other', but the file"),
    ("", "m.csv", "no reference events"),
    ("a,prediction\n", "m.csv", "no reference events"),
]


@pytest.mark.parametrize(("content", "where", "reason"), HEADER_AND_ROW_ERRORS)
def test_unusable_csv_names_file_row_column_and_reason(
    tmp_path: Path, content: str, where: str, reason: str
) -> None:
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(InvalidReference, match=re.escape(f"{tmp_path / where}")) as err:
        load_references(tmp_path, 20)
    assert reason in str(err.value)


def test_one_csv_without_or_with_an_empty_model_cell(tmp_path: Path) -> None:
    path = tmp_path / "all.csv"
    path.write_text("a,prediction\n1,2\n")
    with pytest.raises(InvalidReference, match=r"all\.csv: column 'model': missing"):
        load_references(path, 20)
    path.write_text("a,prediction,model\n1,2,m\n1,2,\n")
    with pytest.raises(InvalidReference, match=r"all\.csv:3: column 'model': empty"):
        load_references(path, 20)


def test_two_formats_of_one_model_name_both_files(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("a,prediction\n1,2\n")
    _write_jsonl(tmp_path / "m.jsonl", [{"features": {"a": 1}, "prediction": 2}])
    with pytest.raises(InvalidReference) as err:
        load_references(tmp_path, 20)
    assert str(tmp_path / "m.csv") in str(err.value)
    assert str(tmp_path / "m.jsonl") in str(err.value)
    assert "model 'm' has two references" in str(err.value)


@pytest.mark.parametrize(
    ("table", "where", "reason"),
    [
        (
            pa.table({"a": [1.0]}),
            "m.parquet",
            "column 'prediction': missing; the columns found: 'a'",
        ),
        (
            pa.table({"a": [1.0, 2.0], "prediction": [1.0, 2.0], "latency_ms": ["3", "abc"]}),
            "m.parquet:1",
            "column 'latency_ms': '3' is a string, not a number (the column's type is string)",
        ),
        (
            pa.table({"a": [1.0, 2.0], "prediction": [1.0, 2.0], "actual": [None, "abc"]}),
            "m.parquet:2",
            "column 'actual': 'abc' is a string, not a number",
        ),
        (
            pa.Table.from_arrays(
                [pa.array([1.0]), pa.array([2.0]), pa.array([3.0])], ["a", "a", "prediction"]
            ),
            "m.parquet",
            "column 'a': named twice",
        ),
        (
            pa.table({"t": pa.array([0], pa.date32()), "prediction": [1.0]}),
            "m.parquet",
            "column 't': type date32[day] is not supported",
        ),
        (
            pa.table({"a": pa.array([], pa.float64()), "prediction": pa.array([], pa.float64())}),
            "m.parquet",
            "no reference events",
        ),
    ],
)
def test_unusable_parquet_names_file_row_column_and_reason(
    tmp_path: Path, table: pa.Table, where: str, reason: str
) -> None:
    pq.write_table(table, tmp_path / "m.parquet")
    with pytest.raises(InvalidReference, match=re.escape(f"{tmp_path / where}:")) as err:
        load_references(tmp_path, 20)
    assert reason in str(err.value)


def test_parquet_bools_and_strings_are_categorical(tmp_path: Path) -> None:
    table = {"on": [True, False, None], "x": [1, 2, 3], "prediction": [0.5, 0.25, 1]}
    _write_parquet(tmp_path / "m.parquet", table)
    ref = load_references(tmp_path, 20)["m"]
    assert ref.feature_names == ("x",)
    assert ref.categorical is not None and ref.categorical.tables[0].categories == (False, True)


def test_parquet_without_pyarrow_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_parquet(tmp_path / "m.parquet", {"a": [1.0], "prediction": [2.0]})
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(InvalidReference) as err:
        load_references(tmp_path, 20)
    assert str(tmp_path / "m.parquet") in str(err.value)
    assert "needs pyarrow" in str(err.value)
    assert "pip install 'stream-monitor[parquet]'" in str(err.value)
