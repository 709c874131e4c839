"""What /readyz answers: whether this member is doing its job right now.

Ready means partitions assigned, their state restored, the brokers reachable and the consume
loop coming round. The loop's heartbeat matters because the client reports the brokers down
only from inside consume(): a loop blocked in a transactional call during an outage would
otherwise look ready until the call gives up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError

from stream_monitor.service.kafka_clients import FATAL_CODES, MISSING_CODES

log = logging.getLogger(__name__)

STALL_S = 10.0  # a consume loop not back for this long is not ready
REPEAT_S = 10.0  # the same connection warning at most this often


@dataclass(slots=True)
class Readiness:
    broker_up: bool = True
    restoring: tuple[str, ...] = ()  # the input partitions whose state is being restored
    fatal: str | None = None  # an unrecoverable client error: the process is ending
    heartbeat: float = field(default_factory=time.monotonic)
    _said: dict[str, float] = field(default_factory=dict)  # warning text -> when last said
    _repeats: dict[str, int] = field(default_factory=dict)  # ... and how often held back

    def beat(self) -> None:
        """The consume loop came round."""
        self.heartbeat = time.monotonic()

    def check(self, assigned: int, now: float | None = None) -> tuple[bool, str]:
        """(ready, reason) for /readyz."""
        if self.fatal:
            return False, f"fatal error: {self.fatal}"
        if not self.broker_up:
            return False, "brokers unreachable"
        if self.restoring:
            return False, f"restoring state of {', '.join(self.restoring)}"
        stalled = (time.monotonic() if now is None else now) - self.heartbeat
        if stalled > STALL_S:
            return False, f"consume loop blocked for {stalled:.0f} s (waiting on the brokers)"
        if not assigned:
            return False, "no partitions assigned yet"
        return True, f"{assigned} partitions assigned"

    def _say(self, text: str, now: float | None = None) -> None:
        """A connection warning, at most once per `REPEAT_S` for the same text (a broker that
        is away makes every client report it many times a second)."""
        at = time.monotonic() if now is None else now
        last = self._said.get(text)
        if last is not None and at - last < REPEAT_S:
            self._repeats[text] = self._repeats.get(text, 0) + 1
            return
        again = self._repeats.pop(text, 0)
        self._said[text] = at
        log.warning("kafka: %s%s", text, f" (and {again} times since)" if again else "")

    def client_error(self, err: Any, topics: Iterable[str | None], assigned_before: bool) -> bool:
        """Take a Kafka client error into account; True when every broker is down.

        Fatal errors, and a deleted topic of the monitor's once it ran, end the process.
        """
        code, text = err.code(), err.str()
        if err.fatal() or code in FATAL_CODES:
            self.fatal = text
        elif code in MISSING_CODES and assigned_before:
            for topic in topics:
                if topic and topic in text:
                    self.fatal = f"topic {topic} was deleted ({text})"
        elif code == KafkaError._ALL_BROKERS_DOWN:
            self.broker_up = False
            self._say(text)
            return True
        elif code == KafkaError._TRANSPORT:
            self._say(text)
        else:
            log.info("kafka: %s", text)
        return False
