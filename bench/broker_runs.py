"""Shared pieces of the broker benchmarks: a local broker, a pre-filled topic, timed monitors.

Timing rule of every broker benchmark: a group of `stream-monitor run` processes is timed
from the moment all of them answer /readyz 200 (partitions assigned, state restored) to the
moment the group's committed offsets reach the end of the topic. Committed offsets are read
from the broker, not from the monitor's /metrics: scraping /metrics renders every model's
series while holding the monitor's GIL, so polling it would slow down what is measured.
"""

from __future__ import annotations

import atexit
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import confluent_kafka
import numpy as np
import orjson
from confluent_kafka import Producer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stream_monitor.tools import local_broker
from stream_monitor.tools.synthetic import SyntheticModel, to_jsonl
from tests.kafka_helpers import (
    MonitorProcess,
    close_offset_readers,
    committed,
    end_offsets,
    unique,
)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class Broker:
    """A broker to run against: started here on free ports, or an existing one."""

    bootstrap: str
    pid: int | None = None  # the broker's JVM when started here (CPU accounting)


@contextmanager
def broker(existing: str | None, extra_properties: str | None = None) -> Iterator[Broker]:
    """The given broker, or a local one (deploy/kafka-local) stopped on exit."""
    if existing:
        yield Broker(existing)
        return
    port, cport = free_port(), free_port()
    data = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
    local_broker.start(port, cport, data, extra_properties)
    bootstrap = f"127.0.0.1:{port}"
    try:
        pid_text = (data / "kafka.pid").read_text().strip()
        yield Broker(bootstrap, int(pid_text) if pid_text.isdigit() else None)
    finally:
        close_offset_readers(bootstrap)  # cached readers would retry a stopped broker forever
        local_broker.stop(port, cport, data)
        # the topics' data (gigabytes after a few runs) goes; its server.log stays
        shutil.rmtree(data / "logs", ignore_errors=True)


def workdir(prefix: str) -> Path:
    """A new directory for a bench's run: its monitors' logs and profiles stay after it, the
    references written under `ref/` (about 100 MB a run) are removed when the bench exits."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path / "ref", ignore_errors=True)
    return path


def write_references(models: Sequence[SyntheticModel], directory: Path, size: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for m in models:
        (directory / f"{m.name}.jsonl").write_bytes(to_jsonl(m.reference(size)))
    return directory


def produce_values(
    bootstrap: str,
    topic: str,
    records: Sequence[tuple[bytes, bytes]],
    partitions: Sequence[int] | None = None,
) -> None:
    """Produce (key, value) records; an explicit partition per record when given."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "enable.idempotence": True}
    )
    for i, (key, value) in enumerate(records):
        partition = -1 if partitions is None else partitions[i]  # -1: by the key's hash
        while True:
            try:
                producer.produce(topic, value, key, partition=partition)
                break
            except BufferError:
                producer.poll(0.1)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("pre-fill not acknowledged")


def committed_total(bootstrap: str, group: str, topic: str) -> int:
    return sum(max(o, 0) for o in committed(bootstrap, group, topic).values())


@dataclass
class GroupRun:
    """One timed run of a consumer group of monitors over a pre-filled topic."""

    members: int
    seconds: float
    events: int  # events committed between "all ready" and "all committed"
    committed_at_ready: int  # committed before all members were ready (not timed)
    monitor_cpu_s: list[float]
    broker_cpu_s: float
    assigned: list[list[str]]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "members": self.members,
            "seconds": round(self.seconds, 3),
            "events": self.events,
            "events_per_s": round(self.rate, 1),
            "committed_at_ready": self.committed_at_ready,
            "monitor_cpu_s": [round(c, 2) for c in self.monitor_cpu_s],
            "monitor_cores": round(sum(self.monitor_cpu_s) / self.seconds, 2),
            "broker_cpu_s": round(self.broker_cpu_s, 2),
            "broker_cores": round(self.broker_cpu_s / self.seconds, 2),
            "assigned": self.assigned,
            "load_average_1m_after": round(os.getloadavg()[0], 2),
            **self.extra,
        }


def _all_ready(monitors: Sequence[MonitorProcess], partitions: int) -> list[list[str]] | None:
    """The members' assignments once every member is ready and they cover the topic."""
    for m in monitors:
        if m.proc.poll() is not None:
            raise RuntimeError(f"monitor exited early:\n{m.log()}")
        if m.get("/readyz")[0] != 200:
            return None
    if len(monitors) == 1:
        return [[f"all {partitions}"]]
    assigned = [list(m.status().get("assigned_partitions", [])) for m in monitors]
    flat = [p for a in assigned for p in a]
    if len(flat) != partitions or len(set(flat)) != partitions:
        return None
    return assigned


def run_group(
    bootstrap: str,
    topic: str,
    total: int,
    partitions: int,
    reference: Path,
    workdir: Path,
    members: int = 1,
    extra_args: Sequence[str] = (),
    broker_pid: int | None = None,
    label: str = "monitor",
    poll_s: float = 0.02,
    on_ready: Callable[[list[MonitorProcess]], Callable[[], object]] | None = None,
    steady_after: int = 0,
) -> GroupRun:
    """Start `members` monitors in a fresh group and time them through the whole topic.

    `steady_after`: also time the stretch from the moment that many events are committed
    (e.g. every model's window full) to the end: `extra["steady_events_per_s"]`.

    `on_ready(monitors)` is called right after the timer starts (e.g. to attach a
    profiler) and returns a `stop` called when the last offset is committed, before the
    monitors stop; what `stop` returns is kept in `extra["on_ready"]`.
    """
    group, alerts = unique(f"bench-{label}"), unique("bench-alerts")
    monitors = [
        MonitorProcess(
            bootstrap, topic, alerts, group, reference, workdir / f"{group}-{i}.log", *extra_args
        )
        for i in range(members)
    ]
    try:
        deadline = time.monotonic() + 180
        assigned = None
        while assigned is None:
            if time.monotonic() > deadline:
                raise RuntimeError("monitors not ready in 180 s:\n" + monitors[0].log())
            time.sleep(0.01)
            assigned = _all_ready(monitors, partitions)
        started = time.monotonic()
        cpu0 = [cpu_seconds(m.proc.pid) for m in monitors]
        broker0 = cpu_seconds(broker_pid) if broker_pid else 0.0
        at_ready = committed_total(bootstrap, group, topic)
        stop = on_ready(monitors) if on_ready is not None else None
        deadline = time.monotonic() + 1800
        steady: tuple[float, int] | None = None
        while (done := committed_total(bootstrap, group, topic)) < total:
            if steady_after and steady is None and done >= steady_after:
                steady = (time.monotonic(), done)
            if time.monotonic() > deadline:
                raise RuntimeError("not all committed in 1800 s:\n" + monitors[0].log())
            for m in monitors:
                if m.proc.poll() is not None:
                    raise RuntimeError(f"monitor exited:\n{m.log()}")
            time.sleep(poll_s)
        ended = time.monotonic()
        seconds = ended - started
        cpu = [cpu_seconds(m.proc.pid) - c for m, c in zip(monitors, cpu0, strict=True)]
        broker_cpu = (cpu_seconds(broker_pid) - broker0) if broker_pid else 0.0
        hooked = stop() if stop is not None else None
    finally:
        for m in monitors:
            try:
                m.terminate(60)
            except subprocess.TimeoutExpired:
                m.kill()
    run = GroupRun(members, seconds, total - at_ready, at_ready, cpu, broker_cpu, assigned)
    if hooked is not None:
        run.extra["on_ready"] = hooked
    if steady is not None and ended > steady[0]:
        run.extra["steady_from_committed"] = steady[1]
        run.extra["steady_events_per_s"] = round((total - steady[1]) / (ended - steady[0]), 1)
    return run


def bare_child_rusage() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def partition_counts(bootstrap: str, topic: str) -> dict[int, int]:
    return dict(sorted(end_offsets(bootstrap, topic).items()))


def kafka_version() -> str:
    env = os.environ.get("KAFKA_VERSION")
    if env:
        return env
    text = local_broker.SCRIPT.read_text()
    found = re.search(r'KAFKA_VERSION="\$\{KAFKA_VERSION:-([^}]+)\}"', text)
    return found.group(1) if found else "unknown"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as fh:
        mem_kb = int(fh.readline().split()[1])
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    return {
        "machine": platform.machine(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.__version__,
        "librdkafka": confluent_kafka.libversion()[0],
        "numpy": np.__version__,
        "orjson": orjson.__version__,
        "kafka": kafka_version(),
        "java": (java.stderr.splitlines() or ["unknown"])[0],
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def table(header: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    """A markdown table: the first `left` columns left-aligned, the others right-aligned."""
    align = ["---"] * left + ["---:"] * (len(header) - left)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
