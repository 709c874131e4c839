"""The replay progress line: on a terminal only, at most every `interval` seconds."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from stream_monitor.cli import main
from stream_monitor.offline.progress import Progress
from stream_monitor.tools.synthetic import SyntheticModel, to_jsonl


class FakeStream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_terminal_gets_rate_share_and_eta() -> None:
    stream, clock = FakeStream(tty=True), FakeClock()
    progress = Progress(stream, total_bytes=1000, label="replay", clock=clock)
    clock.now += 0.5
    progress.update(100, 250)
    line = stream.getvalue()
    assert line.startswith("\r")
    # 100 events in 0.5 s; a quarter of the file in 0.5 s leaves 1.5 s
    assert "replay: 100 events" in line
    assert "200 events/s" in line
    assert "25% of 0.0 MB" in line
    assert "ETA 0:02" in line
    clock.now += 1.5
    progress.close(400, 1000)
    final = stream.getvalue()[len(line) :]
    assert "100%" in final and "in 0:02" in final and "ETA" not in final
    assert final.endswith("\n")


def test_redraws_at_most_every_interval() -> None:
    stream, clock = FakeStream(tty=True), FakeClock()
    progress = Progress(stream, total_bytes=10_000, interval=0.25, clock=clock)
    progress.update(10, 10)  # no time has passed since the start
    assert stream.getvalue() == ""
    clock.now += 0.3
    progress.update(20, 20)
    drawn = stream.getvalue()
    assert drawn.count("\r") == 1
    for _ in range(100):  # a hundred batches within 0.2 s: no redraw
        clock.now += 0.002
        progress.update(30, 30)
    assert stream.getvalue() == drawn
    clock.now += 0.1
    progress.update(40, 40)
    assert stream.getvalue().count("\r") == 2


def test_a_shorter_line_blanks_what_the_longer_one_left() -> None:
    stream, clock = FakeStream(tty=True), FakeClock()
    progress = Progress(stream, total_bytes=10**9, clock=clock)
    clock.now += 1
    progress.update(10**6, 10**8)
    first = stream.getvalue()
    clock.now += 1
    progress.update(10**6, 5 * 10**8)  # a lower rate: a shorter line
    second = stream.getvalue()[len(first) :]
    assert len(second.rstrip()) < len(first)  # the new text is shorter...
    assert len(second) == len(first)  # ...and padded over the old one


@pytest.mark.parametrize("stream", [FakeStream(tty=False), object()])
def test_nothing_is_written_when_not_a_terminal(stream: object) -> None:
    clock = FakeClock()
    progress = Progress(stream, total_bytes=1000, clock=clock)  # type: ignore[arg-type]
    for i in range(10):
        clock.now += 1
        progress.update(i * 100, i * 100)
    progress.close(1000, 1000)
    assert not progress.enabled
    if isinstance(stream, FakeStream):
        assert stream.getvalue() == ""


def _stream_file(tmp_path: Path) -> tuple[Path, Path]:
    model = SyntheticModel("m", n_features=3)
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "m.jsonl").write_bytes(to_jsonl(model.reference(1000)))
    log = tmp_path / "events.jsonl"
    log.write_bytes(to_jsonl(model.events(0, 1500)))
    return log, tmp_path / "ref"


def _command(name: str, log: Path, ref: Path, tmp_path: Path) -> list[str]:
    target = ["--out", str(tmp_path / "alerts.jsonl")]
    if name == "backtest":
        target = ["--report", str(tmp_path / "report")]
    return [name, str(log), "--reference", str(ref), "--window-size", "500", *target]


@pytest.mark.parametrize("command", ["replay", "backtest"])
def test_commands_show_progress_on_a_terminal_only(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, ref = _stream_file(tmp_path)
    size_mb = log.stat().st_size / 1e6
    terminal = FakeStream(tty=True)
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(_command(command, log, ref, tmp_path)) == 0
    shown = terminal.getvalue()
    assert f"\r{command}: 1,500 events" in shown
    assert f"100% of {size_mb:,.1f} MB" in shown

    piped = FakeStream(tty=False)
    monkeypatch.setattr(sys, "stderr", piped)
    assert main(_command(command, log, ref, tmp_path)) == 0
    assert "\r" not in piped.getvalue()
    assert "events/s" not in piped.getvalue()
