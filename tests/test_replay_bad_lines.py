"""`stream-monitor replay` names the lines it cannot use by file and line number (from 1,
blank lines counted, across several files and batches): the first five in the log, every
one in the `--bad-lines` file."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from stream_monitor.cli import main

GOOD = b'{"model": "a", "features": {"x": 1.0}, "prediction": 0.5}'

# (line, reason of its dead letter or None for a good or blank line)
ONE = [
    (GOOD, None),
    (b"", None),
    (b'{"a"', "not_json"),
    (GOOD, None),
    (b"not json", "not_json"),
    (b"", None),
    (b"[1]", "not_object"),
]
TWO = [
    (b"", None),
    (b"", None),
    (b'{"features": {"x": 1.0}, "prediction": 0.5}', "missing_model"),
    (GOOD, None),
    (b"\xff\xfe", "not_json"),
    (GOOD[:-1] + b', "timestamp": "zz"}', "bad_type"),
    (GOOD, None),
]


def _write(path: Path, lines: list[tuple[bytes, str | None]]) -> list[tuple[str, int, str]]:
    """Writes the lines; returns (file, line number, reason) of each bad one."""
    path.write_bytes(b"".join(line + b"\n" for line, _ in lines))
    return [(str(path), n, reason) for n, (_, reason) in enumerate(lines, 1) if reason]


def _replay(tmp_path: Path, *extra: str) -> tuple[int, list[tuple[str, int, str]]]:
    expected = _write(tmp_path / "one.jsonl", ONE) + _write(tmp_path / "two.jsonl", TWO)
    argv = ["replay", str(tmp_path / "one.jsonl"), str(tmp_path / "two.jsonl")]
    code = main([*argv, "--out", str(tmp_path / "alerts.jsonl"), *extra])
    return code, expected


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "stream_monitor"]


@pytest.mark.parametrize("batch_size", ["1", "2", "1000"])
def test_the_bad_lines_file_names_every_line_of_every_file(tmp_path: Path, batch_size: str) -> None:
    bad = tmp_path / "bad.jsonl"
    code, expected = _replay(tmp_path, "--bad-lines", str(bad), "--batch-size", batch_size)
    assert code == 0
    rows = [orjson.loads(line) for line in bad.read_bytes().splitlines()]
    assert [(r["file"], r["line"], r["reason"]) for r in rows] == expected
    assert [set(r) for r in rows] == [{"file", "line", "reason", "detail", "value"}] * len(rows)
    by_place = {(Path(r["file"]).name, r["line"]): r for r in rows}
    assert by_place["one.jsonl", 3]["value"] == '{"a"'
    assert by_place["one.jsonl", 3]["detail"] == (
        "not valid JSON (unexpected end of data at column 5)"
    )
    assert by_place["two.jsonl", 5]["value"] == "\ufffd\ufffd"  # the raw bytes, replaced
    assert by_place["two.jsonl", 5]["detail"] == "not valid JSON (invalid UTF-8 at column 1)"
    assert by_place["two.jsonl", 6]["detail"] == "timestamp 'zz' is not RFC 3339"
    assert all(r["detail"] for r in rows)


def test_the_log_shows_the_first_five_and_how_many_more(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="stream_monitor")
    code, expected = _replay(tmp_path)
    assert code == 0 and len(expected) == 6
    messages = _messages(caplog)
    shown = [m for m in messages if m.startswith(str(tmp_path)) or m.startswith("...")]
    assert len(shown) == 6 and shown[-1] == "... and 1 more"
    for (file, line, reason), message in zip(expected[:5], shown, strict=False):
        assert message.startswith(f"{file}:{line}: {reason}: ")
    assert shown[0] == f"{tmp_path / 'one.jsonl'}:3: not_json: " + (
        "not valid JSON (unexpected end of data at column 5)"
    )
    [summary] = [m for m in messages if m.startswith("replayed ")]
    assert "(6 invalid; --bad-lines FILE lists them all)" in summary
    assert not (tmp_path / "bad.jsonl").exists()


def test_no_more_line_when_five_or_fewer(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="stream_monitor")
    expected = _write(tmp_path / "one.jsonl", ONE)
    bad = tmp_path / "bad.jsonl"
    argv = ["replay", str(tmp_path / "one.jsonl"), "--out", str(tmp_path / "a.jsonl")]
    assert main([*argv, "--bad-lines", str(bad)]) == 0
    messages = _messages(caplog)
    shown = [m for m in messages if m.startswith(str(tmp_path)) or m.startswith("...")]
    assert [m.split(": ")[0] for m in shown] == [f"{f}:{n}" for f, n, _ in expected]
    [summary] = [m for m in messages if m.startswith("replayed ")]
    assert f"({len(expected)} invalid, listed in {bad})" in summary
    assert len(bad.read_bytes().splitlines()) == len(expected)


def test_a_clean_replay_writes_an_empty_bad_lines_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="stream_monitor")
    (tmp_path / "ok.jsonl").write_bytes(GOOD + b"\n\n" + GOOD + b"\n")
    bad = tmp_path / "bad.jsonl"
    argv = ["replay", str(tmp_path / "ok.jsonl"), "--out", str(tmp_path / "a.jsonl")]
    assert main([*argv, "--bad-lines", str(bad)]) == 0
    assert bad.read_bytes() == b""
    [summary] = [m for m in _messages(caplog) if m.startswith("replayed ")]
    assert "(0 invalid)" in summary


def test_an_unwritable_bad_lines_file_stops_before_the_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ok.jsonl").write_bytes(GOOD + b"\n")
    out = tmp_path / "a.jsonl"
    argv = ["replay", str(tmp_path / "ok.jsonl"), "--out", str(out)]
    assert main([*argv, "--bad-lines", str(tmp_path / "no" / "bad.jsonl")]) == 2
    assert "cannot write" in capsys.readouterr().err
