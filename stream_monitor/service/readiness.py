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


@dataclass(slots=True)
class Readiness:
    broker_up: bool = True
    restoring: bool = False
    fatal: str | None = None  # an unrecoverable client error: the process is ending
    heartbeat: float = field(default_factory=time.monotonic)

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
            return False, "restoring state"
        stalled = (time.monotonic() if now is None else now) - self.heartbeat
        if stalled > STALL_S:
            return False, f"consume loop blocked for {stalled:.0f} s (waiting on the brokers)"
        if not assigned:
            return False, "no partitions assigned yet"
        return True, f"{assigned} partitions assigned"

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
            log.warning("kafka: %s", text)
            return True
        elif code == KafkaError._TRANSPORT:
            log.warning("kafka: %s", text)
        else:
            log.info("kafka: %s", text)
        return False
