"""Alerts written as JSON lines to a file (replay, backtest, the in-process API)."""

from __future__ import annotations

from typing import IO

from stream_monitor.alerts.contract import Alert


class JsonlAlertWriter:
    """Alerts as JSON lines (what `replay` writes)."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self.count = 0

    def write(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            self._out.write(alert.to_json() + b"\n")
            self.count += 1
