"""Replay equals live: the same events through `run` on the broker and through `replay`.

The events are produced, in file order, to a topic of one partition and written to a JSONL
file named after the topic: the replay then numbers its lines as the broker numbers its
offsets, so even each alert's `source` (topic, partition, offset of the event that
completed the check) must come out the same, not only its id, scores and features.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from stream_monitor.tools.synthetic import SyntheticModel, interleave
from tests.kafka_helpers import (
    MonitorProcess,
    create_topics,
    produce,
    read_alerts,
    unique,
    wait_for,
)
from tests.test_kafka_e2e import write_references

pytestmark = pytest.mark.kafka

MODELS = [
    SyntheticModel("fraud-scorer", n_features=8, drift_start=2500, drift_end=5000, drift_shift=2.0),
    SyntheticModel("eta-regressor", n_features=8),
    SyntheticModel("churn", n_features=8, drift_start=4000, drift_shift=1.5),
]
BAD_LINE = b"{not json"  # a dead letter takes a line in the file and an offset in the topic


def test_replay_gives_the_alerts_run_published(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic, alerts_topic = unique("predictions"), unique("alerts")
    events = interleave([m.events(0, 6000) for m in MODELS])
    lines = [orjson.dumps(e) for e in events]
    lines.insert(len(lines) // 2, BAD_LINE)
    keys = [
        b"churn" if line == BAD_LINE else str(orjson.loads(line)["model"]).encode()
        for line in lines
    ]
    create_topics(kafka_bootstrap, [topic], partitions=1)
    produce(kafka_bootstrap, topic, list(zip(keys, lines, strict=True)))
    file = tmp_path / topic  # named after the topic: its line numbers are the offsets
    file.write_bytes(b"\n".join(lines) + b"\n")
    refs = write_references(tmp_path / "ref", MODELS)

    monitor = MonitorProcess(
        kafka_bootstrap, topic, alerts_topic, unique("group"), refs, tmp_path / "m.log"
    )
    try:
        valid = len(events)
        wait_for(lambda: monitor.events_committed() >= valid, 180, "every event committed")
        live = read_alerts(kafka_bootstrap, alerts_topic)
    finally:
        assert monitor.terminate() == 0, monitor.log()

    out = tmp_path / "replayed.jsonl"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "stream_monitor",
            "replay",
            str(file),
            "--reference",
            str(refs),
            "--out",
            str(out),
        ],
        check=True,
        timeout=300,
    )
    replayed = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    replayed.sort(key=lambda a: (a["model"], a["events_seen"]))

    assert {a["model"] for a in live} == {"fraud-scorer", "churn"}  # the drifting ones
    assert {a["status"] for a in live} == {"firing", "resolved"}
    assert [a["alert_id"] for a in replayed] == [a["alert_id"] for a in live]
    assert replayed == live  # every field: scores, features, window, source, details
    assert all(a["source"]["topic"] == topic for a in live)
