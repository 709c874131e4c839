"""A JSONL line that is not JSON is placed by its column after `path:lineno`, never by
orjson's own "line N column M (char K)", which counts within the one line parsed; the
dead letter of a Kafka record keeps the decoder's own words."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stream_monitor.decode.common import decode_event_line, line_detail
from stream_monitor.decode.predictions import decode_batch
from stream_monitor.reference.loading import load_references
from stream_monitor.reference.prepared import InvalidReference
from tests.helpers import batch_of

GOOD = b'{"features": {"x": 1.0}, "prediction": 0.5}'


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"a"\n', "not valid JSON (unexpected end of data at column 5)"),
        (b'{"a"\r\n', "not valid JSON (unexpected end of data at column 5)"),
        (b"not json\n", "not valid JSON (invalid literal, expected 'null' at column 1)"),
        (b'{"a": 1,}\n', "not valid JSON (trailing comma is not allowed at column 8)"),
        # the column counts characters, not bytes: "é" is two bytes
        (
            '{"é": 1} x\n'.encode(),
            "not valid JSON (unexpected content after document at column 10)",
        ),
        # orjson places invalid UTF-8 at 0; the first bad byte is after 7 characters here
        (b'{"\xc3\xa9": "\xff"}\n', "not valid JSON (invalid UTF-8 at column 8)"),
        (b"[1, 2]\n", "expected a JSON object, got list"),
    ],
)
def test_a_bad_line_is_placed_by_its_column(line: bytes, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        decode_event_line(line)
    assert str(caught.value) == message
    assert "line" not in str(caught.value)


def test_a_good_line_with_its_line_ending_is_read() -> None:
    assert decode_event_line(GOOD + b"\r\n") == orjson.loads(GOOD)


def test_a_reference_file_names_file_line_and_column(tmp_path: Path) -> None:
    lines = [GOOD, b"", GOOD, b"", b"", GOOD, b'{"features": {"x"']  # line 7, after blanks
    (tmp_path / "m.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(InvalidReference) as caught:
        load_references(tmp_path, 20)
    path = tmp_path / "m.jsonl"
    assert str(caught.value) == f"{path}:7: not valid JSON (unexpected end of data at column 18)"


def test_a_kafka_records_dead_letter_keeps_its_detail() -> None:
    """The dead-letter topic's detail is orjson's own text, as before."""
    value = b'{"features": {"x"'
    with pytest.raises(orjson.JSONDecodeError) as orjson_error:
        orjson.loads(value)
    decoded = decode_batch(batch_of([value], [b"m"]))
    [dead] = decoded.dead_letters
    assert (dead.reason, dead.detail) == ("not_json", f"value is not JSON: {orjson_error.value}")
    assert "line 1 column 18 (char 17)" in dead.detail


def test_the_file_wording_of_a_dead_letter() -> None:
    """Shown after `file:line`, a not_json dead letter is worded as a reference line is;
    other reasons keep their detail."""
    wording = "not valid JSON (unexpected end of data at column 18)"
    assert line_detail("not_json", "serde's words", b'{"features": {"x"') == wording
    assert line_detail("bad_type", "model must be a string", b"{}") == "model must be a string"
    assert line_detail("not_json", "kept", b"{}") == "kept"  # orjson reads it: no other words
