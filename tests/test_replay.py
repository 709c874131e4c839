"""`stream-monitor replay`: the engine over a JSONL file gives the alerts the engine gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_monitor.cli import main
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.engine.core import Engine
from stream_monitor.offline import replay
from stream_monitor.tools.synthetic import SyntheticModel, interleave, to_jsonl
from tests.helpers import batches_of_events, references


def test_replay_writes_the_engines_alerts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []

    class Recording(Engine):  # the real engine, and the threads it was given
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            threads.append(self._native.fleet.threads)

    monkeypatch.setattr(replay, "Engine", Recording)
    models = [
        SyntheticModel("a", drift_start=3000, drift_end=6000, drift_shift=2.0),
        SyntheticModel("b"),
    ]
    events = interleave([m.events(0, 8000) for m in models])
    (tmp_path / "ref").mkdir()
    for m in models:
        (tmp_path / "ref" / f"{m.name}.jsonl").write_bytes(to_jsonl(m.reference(5000)))
    log = tmp_path / "events.jsonl"
    log.write_bytes(to_jsonl(events) + b"not json\n")  # a bad line is skipped, not fatal
    out = tmp_path / "alerts.jsonl"
    args = ["replay", str(log), "--reference", str(tmp_path / "ref"), "--out", str(out)]
    assert main([*args, "--native-threads", "2"]) == 0
    assert threads == [2]  # the option reaches the engine; the alerts are those of one thread
    replayed = [orjson.loads(line) for line in out.read_bytes().splitlines()]

    engine = Engine(DetectorSettings(), references(models), native_threads=1)
    expected = [a for b in batches_of_events(events) for a in engine.process(b).alerts]
    assert [a["alert_id"] for a in replayed] == [a.alert_id for a in expected]
    assert [
        (a["model"], a["kind"], a["status"]) for a in replayed if a["kind"] == "input_drift"
    ] == [("a", "input_drift", "firing"), ("a", "input_drift", "resolved")]
    assert replayed[0]["source"]["topic"] == "events.jsonl"


def test_calibrated_mode_sets_each_models_threshold_from_its_reference(tmp_path: Path) -> None:
    import numpy as np

    from stream_monitor.reference.calibration import calibrate_max_ks_threshold

    model = SyntheticModel("a", n_features=5, drift_start=3000, drift_shift=1.0)
    reference = model.reference(4000)
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "a.jsonl").write_bytes(to_jsonl(reference))
    log = tmp_path / "events.jsonl"
    log.write_bytes(to_jsonl(model.events(0, 5000)))
    out = tmp_path / "alerts.jsonl"
    assert (
        main(
            [
                "replay",
                str(log),
                "--reference",
                str(tmp_path / "ref"),
                "--out",
                str(out),
                "--calibrate-false-alarm-events",
                "1e6",
                "--input-drift-rule",
                "window",
            ]
        )
        == 0
    )
    alerts = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    fired = [a for a in alerts if a["kind"] == "input_drift"]
    names = model.feature_names
    rows = np.array([[e["features"][n] for n in names] for e in reference])  # type: ignore[index]
    expected = calibrate_max_ks_threshold(rows, 1000, 100, 1e6).threshold
    assert fired and fired[0]["threshold"] == expected
    assert 3000 < fired[0]["events_seen"] <= 4000
