"""Session fixtures: one real Apache Kafka broker (the project's local script) per test run."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream_monitor.tools import local_broker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A single-node KRaft broker on free ports, started for this session and stopped after.

    STREAM_MONITOR_TEST_BOOTSTRAP points the tests at a broker that is already running.
    """
    external = os.environ.get("STREAM_MONITOR_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    port, controller_port = free_port(), free_port()
    data_dir: Path = tmp_path_factory.mktemp("kafka")
    local_broker.start(port, controller_port, data_dir)
    bootstrap = f"127.0.0.1:{port}"
    try:
        yield bootstrap
    finally:
        from tests.kafka_helpers import close_offset_readers

        close_offset_readers(bootstrap)  # before the broker goes: they would retry forever
        local_broker.stop(port, controller_port, data_dir)
