"""The version policy on the real broker, across a SIGKILL and a restart: each version's
window continues from the changelog, and the alerts equal the engine's over the stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_monitor.config.detector import DetectorSettings
from stream_monitor.engine.core import Engine
from stream_monitor.tools.synthetic import SyntheticModel, interleave
from tests.helpers import batches_of_events, references
from tests.kafka_helpers import (
    MonitorProcess,
    committed,
    create_topics,
    event_records,
    produce,
    read_topic,
    unique,
    wait_for,
)
from tests.test_kafka_e2e import write_references

pytestmark = pytest.mark.kafka

OPTIONS = ("--version-policy", "separate", "--window-size", "500", "--check-every", "50")


def _stream() -> list[dict[str, object]]:
    """v1 of model m from its own population; v2 (canary, interleaved) drifts at 1500."""
    v1 = SyntheticModel("m", n_features=6).events(0, 3000)
    v2 = SyntheticModel("m", n_features=6, drift_start=1500, drift_shift=2.0).events(0, 3000)
    return interleave(
        [[{**e, "model_version": "v1"} for e in v1], [{**e, "model_version": "v2"} for e in v2]]
    )


def test_versions_keep_their_windows_across_a_kill_and_a_restart(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic, alerts, group = unique("predictions"), unique("alerts"), unique("group")
    create_topics(kafka_bootstrap, [topic], partitions=1)
    events = _stream()
    ref = write_references(tmp_path / "ref", [SyntheticModel("m", n_features=6)])
    produce(kafka_bootstrap, topic, event_records(events[:3000]))

    def done(n: int) -> bool:
        return sum(max(o, 0) for o in committed(kafka_bootstrap, group, topic).values()) >= n

    first = MonitorProcess(kafka_bootstrap, topic, alerts, group, ref, tmp_path / "1.log", *OPTIONS)
    wait_for(lambda: done(2000) or first.proc.poll() is not None, 120, "2000 events committed")
    assert first.proc.poll() is None, first.log()
    first.kill()  # no goodbye: the second run restores each version from the changelog
    produce(kafka_bootstrap, topic, event_records(events[3000:]))
    second = MonitorProcess(
        kafka_bootstrap, topic, alerts, group, ref, tmp_path / "2.log", *OPTIONS
    )
    try:
        wait_for(lambda: done(len(events)) or second.proc.poll() is not None, 180, "all committed")
        models = second.status()["models"]
        assert {k: (v["model"], v["model_version"]) for k, v in models.items()} == {
            "m@v1": ("m", "v1"),
            "m@v2": ("m", "v2"),
        }
        assert models["m@v1"]["events_seen"] == models["m@v2"]["events_seen"] == 3000
        key = ("model", "m"), ("model_version", "v2"), ("segment", "")
        series = ("stream_monitor_window_events", key)
        # a committed batch's metrics are recorded when the member next stops waiting for
        # records (its commit overlaps that wait): shortly after the offsets
        metrics = wait_for(
            lambda: (lambda m: m if series in m else None)(second.metrics()), 30, "its metrics"
        )
        assert metrics[series] == 500
    finally:
        assert second.terminate() == 0, second.log()

    got = [orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, alerts, timeout=60)]
    settings = DetectorSettings(version_policy="separate", window_size=500, check_every=50)
    engine = Engine(settings, references([SyntheticModel("m", n_features=6)]))
    expected: list[dict[str, Any]] = [
        a.as_dict() for b in batches_of_events(events) for a in engine.process(b).alerts
    ]
    assert {(a["model_version"], a["kind"]) for a in expected} >= {("v2", "input_drift")}
    assert all(a["model_version"] == "v2" for a in expected if a["kind"] == "input_drift")

    def strip(a: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in a.items() if k != "source"}

    assert [strip(a) for a in got] == [strip(a) for a in expected]
