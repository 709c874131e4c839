"""The demo tool: what it starts, and where it listens."""

from __future__ import annotations

from pathlib import Path

from stream_monitor.tools.demo import monitor_command


def test_the_demo_monitor_listens_on_this_machine_only() -> None:
    cmd = monitor_command("127.0.0.1:9092", Path("ref"), 9108)
    assert cmd[cmd.index("--metrics-host") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--metrics-port") + 1] == "9108"
