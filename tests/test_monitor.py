"""The in-process API: the same alerts and status as `replay` on the same events."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import numpy as np
import pytest

from stream_monitor import Monitor
from stream_monitor.alerts.contract import Alert
from stream_monitor.alerts.results import CheckContext, CheckResult
from stream_monitor.cli import main
from stream_monitor.engine.observers import EngineObserver
from stream_monitor.tools.synthetic import SyntheticModel, interleave, to_jsonl

ROOT = Path(__file__).resolve().parent.parent
MODELS = [
    SyntheticModel("a", drift_start=3000, drift_end=6000, drift_shift=2.0),
    SyntheticModel("b", n_features=4),
]


@pytest.fixture()
def stream(tmp_path: Path) -> tuple[Path, Path, list[dict[str, object]]]:
    events = interleave([m.events(0, 8000, seed=4) for m in MODELS])
    refdir = tmp_path / "ref"
    refdir.mkdir()
    for m in MODELS:
        (refdir / f"{m.name}.jsonl").write_bytes(to_jsonl(m.reference(3000)))
    log = tmp_path / "events.jsonl"
    log.write_bytes(to_jsonl(events))
    return log, refdir, events


def test_alerts_equal_replays_byte_for_byte(
    stream: tuple[Path, Path, list[dict[str, object]]], tmp_path: Path
) -> None:
    log, refdir, events = stream
    out = tmp_path / "alerts.jsonl"
    argv = ["replay", str(log), "--reference", str(refdir), "--out", str(out)]
    assert main([*argv, "--latency-p99-threshold-ms", "40"]) == 0
    replayed = out.read_bytes().splitlines()
    assert len(replayed) >= 3

    monitor = Monitor.from_files(refdir, source=log.name, latency_p99_threshold_ms=40)
    got: list[Alert] = []
    sizes = iter([1, 7, 500, 13, 2000] * 100)  # batching must not matter
    at = 0
    while at < len(events):
        n = next(sizes)
        got += monitor.log_many(events[at : at + n])
        at += n
    assert [a.to_json() for a in got] == replayed
    status = monitor.status()["models"]
    assert isinstance(status, dict) and status["a@v1"]["events_seen"] == 8000


def test_feature_arrays_give_the_alerts_of_event_dicts() -> None:
    model = MODELS[0]
    ref = model.arrays(0, 3000, seed=9)
    names = [f"f{j:02d}" for j in range(model.n_features)]
    by_arrays = Monitor.from_arrays("a", ref["features"], names, ref["prediction"])
    by_dicts = Monitor.from_arrays("a", ref["features"], names, ref["prediction"])
    live = model.arrays(0, 6000, seed=5)
    alerts = by_arrays.log_arrays(
        "a", live["features"], names, live["prediction"], live["actual"], live["latency_ms"]
    )
    events = [
        {
            "model": "a",
            "features": dict(zip(names, row, strict=True)),
            "prediction": float(live["prediction"][i]),
            "actual": float(live["actual"][i]),
            "latency_ms": float(live["latency_ms"][i]),
        }
        for i, row in enumerate(live["features"].tolist())
    ]
    assert [a.to_json() for a in alerts] == [a.to_json() for a in by_dicts.log_many(events)]
    assert any(a.kind == "input_drift" for a in alerts)


def test_settings_come_from_the_yaml_of_run(tmp_path: Path) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(
        "window_size: 300\ncheck_every: 50\nmodels:\n  a:\n    drift_threshold: 0.5\n"
    )
    refdir = tmp_path / "ref"
    refdir.mkdir()
    (refdir / "a.jsonl").write_bytes(to_jsonl(MODELS[0].reference(1000)))
    monitor = Monitor.from_files(refdir, config, check_every=25)
    assert (monitor.settings.window_size, monitor.settings.check_every) == (300, 25)
    monitor.log_many(MODELS[0].events(0, 400))
    entry = monitor.status()["models"]["a@v1"]
    assert entry["checks"] == 400 // 25 and entry["results"]["input_drift"]["threshold"] == 0.5
    with pytest.raises(TypeError):
        Monitor(settings=monitor.settings, window_size=10)


def test_bad_events_are_dead_letters_and_the_rest_goes_on() -> None:
    monitor = Monitor.from_arrays("a", np.zeros((200, 1)), ["x"], np.zeros(200), window_size=100)
    bad = [
        {"model": "a", "prediction": 1.0},
        {"model": "a", "features": {"x": "?"}, "prediction": 1},
    ]
    assert monitor.log_many([*bad, {"model": "a", "features": {"x": 0.0}, "prediction": 0.0}]) == []
    assert [d.reason for d in monitor.dead_letters] == ["missing_features", "bad_type"]
    assert monitor.status()["models"]["a"]["events_seen"] == 1


def test_an_observer_sees_every_check() -> None:
    class Count(EngineObserver):
        def __init__(self) -> None:
            self.kinds: list[str] = []

        def checked(self, result: CheckResult, ctx: CheckContext, alert: Alert | None) -> None:
            self.kinds.append(result.kind)

    monitor = Monitor.from_arrays("a", np.zeros((200, 1)), ["x"], np.zeros(200), check_every=10)
    seen = Count()
    monitor.observe(seen)
    monitor.log_many([{"model": "a", "features": {"x": 0.0}, "prediction": 0.0}] * 35)
    assert len(seen.kinds) == 3 * 6  # three checks of six kinds


def test_the_readme_example_runs() -> None:
    """The README's in-process section is a doctest."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"## In-process monitoring\n(.*?)\n## ", text, re.S)
    assert section is not None
    blocks = re.findall(r"```python\n(.*?)```", section.group(1), re.S)
    assert blocks and all(">>>" in b for b in blocks)
    parser = doctest.DocTestParser()
    test = parser.get_doctest("\n".join(blocks), {}, "README", "README.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0 and runner.tries > 3
