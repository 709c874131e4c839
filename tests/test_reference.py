"""Reference loading and validation: clear messages for what cannot be used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from stream_monitor.cli import main
from stream_monitor.reference.loading import load_references
from stream_monitor.reference.prepared import InvalidReference, PreparedReference
from stream_monitor.tools.synthetic import SyntheticModel, to_jsonl


def _write(path: Path, events: list[dict[str, object]]) -> Path:
    path.write_bytes(to_jsonl(events))
    return path


def test_directory_of_model_files_and_single_file_agree(tmp_path: Path) -> None:
    a, b = SyntheticModel("a", n_features=3), SyntheticModel("b", n_features=3)
    (tmp_path / "dir").mkdir()
    _write(tmp_path / "dir" / "a.jsonl", a.reference(300))
    _write(tmp_path / "dir" / "b.jsonl", b.reference(300))
    _write(tmp_path / "all.jsonl", a.reference(300) + b.reference(300))
    from_dir = load_references(tmp_path / "dir", 20)
    from_file = load_references(tmp_path / "all.jsonl", 20)
    assert sorted(from_dir) == sorted(from_file) == ["a", "b"]
    for name in ("a", "b"):
        assert from_dir[name].feature_names == ("f00", "f01", "f02")
        for x, y in zip(from_dir[name].sorted_columns, from_file[name].sorted_columns, strict=True):
            assert np.array_equal(x, y)
            assert np.all(np.diff(x) >= 0)  # prepared once: sorted


def test_constant_missing_and_small_references_are_reported(tmp_path: Path) -> None:
    events = [
        {"features": {"x": 1.0, "y": float(i), "z": None if i % 2 else 2.0}, "prediction": 0.1 * i}
        for i in range(50)
    ]
    _write(tmp_path / "m.jsonl", events)
    ref = load_references(tmp_path, 20)["m"]
    notes = " | ".join(ref.notes)
    assert "'x' is constant" in notes
    assert "'z' is missing in 25 of 50" in notes
    assert "only 50 reference events" in notes


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"features": {"a": 1}, "prediction": 1}\nnot json\n', "m.jsonl:2"),
        (b"[1, 2]\n", "m.jsonl:1"),
        (b'{"prediction": 1}\n', "no features object"),
        (b'{"model": "other", "features": {}, "prediction": 1}\n', "names model 'other'"),
    ],
)
def test_unusable_reference_names_file_line_and_reason(
    tmp_path: Path, content: bytes, message: str
) -> None:
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "m.jsonl").write_bytes(content)
    with pytest.raises(InvalidReference, match=message):
        load_references(tmp_path / "ref", 20)


def test_empty_directory_and_file_without_model(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidReference, match=r"no <model>\.jsonl files"):
        load_references(tmp_path / "empty", 20)
    path = tmp_path / "one.jsonl"
    path.write_bytes(orjson.dumps({"features": {"a": 1}, "prediction": 1}) + b"\n")
    with pytest.raises(InvalidReference, match="has no model field"):
        load_references(path, 20)


def test_bad_reference_stops_the_start_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "m.jsonl").write_bytes(b"{broken\n")
    assert main(["run", "--reference", str(tmp_path), "--bootstrap-servers", "127.0.0.1:1"]) == 2
    assert "m.jsonl:1" in capsys.readouterr().err


def test_cdf_counts_are_both_binary_searches_ties_and_edges_included() -> None:
    """`cdf_counts` finds #{r < x} from #{r <= x} where x is a reference value; it must
    equal both searches for every kind of value: ties, values between, beyond either end,
    NaN, +-inf, and features with one or no finite reference value."""
    rng = np.random.default_rng(3)
    m = 400
    ref = np.column_stack(
        [
            rng.integers(0, 6, m).astype(float),  # heavy ties
            rng.normal(size=m),  # no ties
            np.full(m, 2.5),  # constant
            np.where(np.arange(m) == 7, 1.0, np.nan),  # one finite value
            np.full(m, np.nan),  # none
        ]
    )
    prepared = PreparedReference.from_arrays(
        "m", ["a", "b", "c", "d", "e"], ref, rng.normal(size=m), 10
    )
    probe = np.concatenate([ref[:50], rng.normal(0, 3, (50, 5)), rng.integers(-1, 7, (50, 5))])
    probe[::7, :] = np.nan
    probe[1::11, :] = np.inf
    probe[2::13, :] = -np.inf
    right, left = prepared.cdf_counts(probe)
    for j in range(5):
        col = np.sort(ref[:, j][np.isfinite(ref[:, j])])
        assert np.array_equal(right[:, j], np.searchsorted(col, probe[:, j], side="right"))
        assert np.array_equal(left[:, j], np.searchsorted(col, probe[:, j], side="left"))
    assert np.count_nonzero(right != left) > 50  # the tie branch was taken
