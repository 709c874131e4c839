"""A last resort against client calls that block far beyond their timeout."""

from __future__ import annotations

import logging
import os
import threading
import time

log = logging.getLogger(__name__)


class Watchdog:
    """Ends the process when a guarded call outlives its limit (a blocked client call)."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self._armed_at: float | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._watch, name="watchdog", daemon=True).start()

    def __enter__(self) -> None:
        with self._lock:
            self._armed_at = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._armed_at = None

    def _watch(self) -> None:
        while True:
            time.sleep(1.0)  # a coarse clock is enough for a limit of minutes
            with self._lock:
                late = self._armed_at is not None and (
                    time.monotonic() - self._armed_at > self.limit_s
                )
            if late:
                log.critical(
                    "a Kafka transaction call is blocked for over %.0f s: exiting so that the "
                    "supervisor restarts the process (exactly-once is preserved)",
                    self.limit_s,
                )
                logging.shutdown()
                os._exit(3)
