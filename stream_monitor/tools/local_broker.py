"""The local single-node broker of `deploy/kafka-local/` (demo and tests): find, start, stop."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "kafka-local" / "kafka-local.sh"


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def reachable(bootstrap_servers: str, timeout: float = 5.0) -> bool:
    """Whether a Kafka broker answers a metadata request (a closed port is asked nothing)."""
    from confluent_kafka.admin import AdminClient

    host, _, port = bootstrap_servers.split(",")[0].rpartition(":")
    if not _port_open(host.strip("[]") or "127.0.0.1", int(port)):
        return False
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "socket.timeout.ms": 3000})
    try:
        admin.list_topics(timeout=timeout)
    except Exception:
        return False
    return True


def _env(
    port: int, controller_port: int, data_dir: Path | None, extra_properties: str | None = None
) -> dict[str, str]:
    env = dict(os.environ, KAFKA_PORT=str(port), KAFKA_CONTROLLER_PORT=str(controller_port))
    if data_dir is not None:
        env["KAFKA_LOCAL_DIR"] = str(data_dir)
    if extra_properties is not None:
        env["KAFKA_EXTRA_PROPERTIES"] = extra_properties
    return env


def start(
    port: int = 9092,
    controller_port: int = 9093,
    data_dir: Path | None = None,
    extra_properties: str | None = None,
) -> None:
    """Start the broker with the project script (fetches Kafka's jars on first use).

    `extra_properties`: lines appended to server.properties (e.g. a SASL listener).
    """
    if not SCRIPT.exists():
        raise FileNotFoundError(
            f"{SCRIPT} not found: run from a checkout of stream-monitor, or start a broker"
        )
    env = _env(port, controller_port, data_dir, extra_properties)
    subprocess.run(["bash", str(SCRIPT), "start"], env=env, check=True)


def stop(port: int = 9092, controller_port: int = 9093, data_dir: Path | None = None) -> None:
    subprocess.run(
        ["bash", str(SCRIPT), "stop"], env=_env(port, controller_port, data_dir), check=False
    )
