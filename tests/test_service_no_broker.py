"""`run` with no broker at its address: a clear line every few seconds (not librdkafka's
twenty a second), and Ctrl-C obeyed within 5 s with exit code 0."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from stream_monitor.service.readiness import REPEAT_S, Readiness
from stream_monitor.tools.synthetic import SyntheticModel


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_no_broker_says_so_quietly_and_stops_at_once(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stream_monitor",
                "run",
                "--bootstrap-servers",
                "127.0.0.1:1",
                "--metrics-port",
                "0",
                "--metrics-host",
                "127.0.0.1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait(
                lambda: b"no Kafka broker answers at 127.0.0.1:1" in log.read_bytes(),
                60,
                "the waiting line",
            )
            proc.send_signal(signal.SIGINT)
            sent = time.monotonic()
            code = proc.wait(timeout=30)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
    lines = log.read_text().splitlines()
    assert code == 0 and took < 5.0, (code, took, lines)
    assert not [line for line in lines if line.startswith("%")]  # librdkafka's own lines
    assert len(lines) <= 12, lines  # a dozen lines, not hundreds


def test_a_repeated_connection_warning_is_said_once_per_interval(caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    caplog.set_level(logging.WARNING, logger="stream_monitor.service.readiness")
    health = Readiness()
    for i in range(50):  # fifty reports within a second
        health._say("broker down", now=100.0 + i * 0.02)
    health._say("broker down", now=100.0 + REPEAT_S + 1)
    said = [r.getMessage() for r in caplog.records]
    assert said == ["kafka: broker down", "kafka: broker down (and 49 times since)"]


def test_a_stop_while_the_references_load_ends_the_process_cleanly(tmp_path: Path) -> None:
    """SIGTERM as soon as the first reference is read, seconds before the service exists
    (the rest load, their charts are designed): exit code 0, not death by the signal."""
    refs = tmp_path / "ref"
    refs.mkdir()
    for i in range(30):
        model = SyntheticModel(f"m{i:02d}", n_features=8)
        lines = [orjson.dumps(e) for e in model.reference(5000)]
        (refs / f"{model.name}.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "stream_monitor", "run"),
                *("--bootstrap-servers", "127.0.0.1:1", "--reference", str(refs)),
                *("--metrics-port", "0", "--metrics-host", "127.0.0.1"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait(lambda: b"reference m00:" in log.read_bytes(), 60, "the first reference")
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert code == 0, log.read_text()[-2000:]
    assert "received SIGTERM" in log.read_text()
