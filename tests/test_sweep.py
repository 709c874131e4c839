"""`backtest --sweep`: settings validated like the configuration; detection delays and false
alarms as documented, on hand-made alerts and on a synthetic stream with a known change."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest

from stream_monitor.cli import main
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.config.loading import ConfigError
from stream_monitor.engine.core import Engine
from stream_monitor.offline.backtest import AlertMark, BacktestResult, ChangePoint
from stream_monitor.offline.sweep import parse_sweep, score_model, shadowed
from stream_monitor.tools.synthetic import SyntheticModel, interleave, to_jsonl
from tests.helpers import batches_of_events, references
from tests.report_helpers import ReportPage


def _mark(events_seen: int, status: str = "firing", kind: str = "input_drift") -> AlertMark:
    return AlertMark("a", kind, status, "warning", events_seen, events_seen / 100, 0.2, 0.1)


def _result(marks: list[AlertMark], changes: list[int], window: int = 500) -> BacktestResult:
    return BacktestResult(
        file=Path("x.jsonl"),
        events=10_000,
        invalid=0,
        seconds=1.0,
        series={},
        marks=marks,
        change_points=[ChangePoint("a", c, c / 100) for c in changes],
        events_seen={"a": 10_000},
        window_sizes={"a": window},
    )


def test_delays_and_false_alarms_follow_their_definitions() -> None:
    marks = [
        _mark(800),  # before any change: false alarm
        _mark(900, "resolved"),
        _mark(1100, kind="prediction_drift"),  # detects the first change unless filtered out
        _mark(1150, "resolved", kind="prediction_drift"),
        _mark(1200),  # detects the first change: 200 events, 2 s
        _mark(1500, "resolved"),
        _mark(1900),  # within the horizon (1000 + 2 x 500): neither detection nor false alarm
        _mark(2100, "resolved"),
        _mark(3500),  # past the horizon: false alarm
        _mark(3600, "resolved"),
        _mark(4999),  # before the second change: false alarm
        _mark(5000, "resolved"),  # ...resolved by the check right before the change
        _mark(6001),  # one event past the second change's horizon: false alarm; it is missed
    ]
    result = _result(marks, [1000, 5000])
    score = score_model("a", result, kinds=frozenset({"input_drift"}))
    assert score.horizon == 1000
    first, second = score.detections
    assert first.alert is not None and first.alert.events_seen == 1200
    assert first.delay_events == 200
    assert first.delay_seconds == pytest.approx(2.0)
    assert second.alert is None and second.delay_events is None
    assert second.delay_seconds is None
    assert score.false_alarms == 4
    assert score.firing == 6

    everything = score_model("a", result)  # all kinds: the prediction drift alert detects
    assert everything.detections[0].delay_events == 100
    assert everything.detections[0].alert is not None
    assert everything.detections[0].alert.kind == "prediction_drift"
    assert everything.false_alarms == 4

    wide = score_model("a", result, horizon=1001, kinds=frozenset({"input_drift"}))
    assert wide.detections[1].delay_events == 1001  # 6001 is now within the horizon
    assert wide.false_alarms == 3


def test_an_alert_still_firing_at_a_change_point_is_a_zero_delay() -> None:
    marks = [_mark(900), _mark(950, kind="prediction_drift"), _mark(1500)]
    score = score_model("a", _result(marks, [1000]), kinds=frozenset({"input_drift"}))
    (detection,) = score.detections
    assert detection.already_firing and detection.delay_events == 0
    assert detection.delay_seconds == 0.0
    assert detection.alert is not None and detection.alert.events_seen == 900
    assert score.false_alarms == 1  # it fired without a change; 1500 is within the horizon
    resolved = score_model("a", _result([_mark(900), _mark(990, "resolved"), _mark(1500)], [1000]))
    assert not resolved.detections[0].already_firing
    assert resolved.detections[0].delay_events == 500


def test_a_detection_belongs_to_the_latest_change_before_it() -> None:
    score = score_model("a", _result([_mark(1400)], [1000, 1300]))
    assert [d.delay_events for d in score.detections] == [None, 100]
    assert score.false_alarms == 0


def test_on_a_model_without_known_change_every_firing_alert_is_a_false_alarm() -> None:
    score = score_model("a", _result([_mark(100), _mark(200, "resolved"), _mark(300)], []))
    assert score.detections == []
    assert (score.false_alarms, score.firing) == (2, 2)


def test_sweep_specs_give_every_combination_validated() -> None:
    base = DetectorSettings()
    points = parse_sweep(["drift_threshold=0.05,0.1", "numeric-test=ks,psi"], base)
    assert [p.label for p in points] == [
        "drift_threshold=0.05, numeric_test=ks",
        "drift_threshold=0.05, numeric_test=psi",
        "drift_threshold=0.1, numeric_test=ks",
        "drift_threshold=0.1, numeric_test=psi",
    ]
    assert points[1].settings.drift_threshold == 0.05
    assert points[1].settings.numeric_test == "psi"
    assert points[1].settings.window_size == base.window_size
    assert base.drift_threshold == 0.1  # the base is not changed
    (unset,) = parse_sweep(["min_window=null"], DetectorSettings(min_window=10))
    assert unset.settings.min_window is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("input_drift_threshold=0.1", "input_drift_threshold: unknown option"),
        ("drift_threshold=0.1,2", "drift_threshold: Input should be less than or equal to 1"),
        ("numeric_test=ks,t", "numeric_test: Input should be "),
        ("window_size=-5", "window_size: Input should be greater than 0"),
        ("prediction_bins=10,20", "prediction_bins cannot be swept"),
        ("drift_threshold", "expected NAME=VALUE1,VALUE2"),
        ("drift_threshold=0.1,,0.2", "expected NAME=VALUE1,VALUE2"),
    ],
)
def test_a_wrong_sweep_names_the_field_and_the_reason(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match="invalid sweep") as caught:
        parse_sweep([spec], DetectorSettings())
    assert message in str(caught.value)


def test_a_wrong_sweep_stops_the_command_before_any_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"")
    report = tmp_path / "report"
    args = ["backtest", str(log), "--report", str(report), "--sweep", "drift_threshold=0,0.1"]
    assert main(args) == 2
    assert "drift_threshold: Input should be greater than 0 (got 0)" in capsys.readouterr().err
    assert not report.exists()


DRIFTING = SyntheticModel("drifting", n_features=5, drift_start=1500, drift_shift=0.75)
WINDOW = 500
STATIONARY = SyntheticModel("stationary", n_features=5)
THRESHOLDS = (0.05, 0.1, 0.2)


def _expected(threshold: float, events: list[dict[str, object]]) -> dict[str, object]:
    """From the engine's own input-drift alerts: the delay (0 if firing at the change, else
    the first firing within 2 windows after it) and the firing alerts outside that span."""
    settings = DetectorSettings(
        drift_threshold=threshold, window_size=WINDOW, input_drift_rule="window"
    )
    engine = Engine(settings, references([DRIFTING, STATIONARY]))
    alerts = [
        a
        for b in batches_of_events(events)
        for a in engine.process(b).alerts
        if a.kind == "input_drift"
    ]
    drifting = [a for a in alerts if a.model == "drifting"]
    before = [a.status for a in drifting if a.events_seen <= 1500]
    fired = [a.events_seen for a in drifting if a.status == "firing"]
    after = [n for n in fired if 1500 < n <= 1500 + 2 * WINDOW]
    delay = 0 if before[-1:] == ["firing"] else (after[0] - 1500 if after else None)
    return {
        "delay": delay,
        "drifting_false": len(fired) - len(after),
        "stationary_false": sum(
            1 for a in alerts if a.model == "stationary" and a.status == "firing"
        ),
        "already_firing": delay == 0,
    }


def test_a_sweep_on_a_known_change_point(tmp_path: Path) -> None:
    drifting = DRIFTING.events(0, 3500)
    drifting[1500]["change_point"] = True
    events = interleave([drifting, STATIONARY.events(0, 3500)])
    log = tmp_path / "events.jsonl"
    log.write_bytes(to_jsonl(events))
    (tmp_path / "ref").mkdir()
    for m in (DRIFTING, STATIONARY):
        (tmp_path / "ref" / f"{m.name}.jsonl").write_bytes(to_jsonl(m.reference(5000)))
    report = tmp_path / "report"
    sweep = "drift_threshold=" + ",".join(map(str, THRESHOLDS))
    args = ["backtest", str(log), "--reference", str(tmp_path / "ref"), "--report", str(report)]
    args += ["--window-size", str(WINDOW), "--input-drift-rule", "window"]
    assert main([*args, "--sweep", sweep, "--kinds", "input_drift"]) == 0

    data = orjson.loads((report / "sweep.json").read_bytes())
    assert data["kinds"] == ["input_drift"]
    assert [s["overrides"] for s in data["settings"]] == [
        {"drift_threshold": t} for t in THRESHOLDS
    ]
    delays = []
    for threshold, setting in zip(THRESHOLDS, data["settings"], strict=True):
        by_model = {m["model"]: m for m in setting["models"]}
        expected = _expected(threshold, events)
        (detection,) = by_model["drifting@v1"]["detections"]
        assert detection["change_events_before"] == 1500
        assert detection["change_at"] == "2026-01-01T00:00:15.000Z"
        assert detection["delay_events"] == expected["delay"]
        assert detection["already_firing"] == expected["already_firing"]
        if expected["delay"] is None:
            assert detection["delay_seconds"] is None
        elif expected["already_firing"]:
            assert detection["delay_seconds"] == 0
        else:  # events 10 ms apart, from the change event to the last event of the window
            assert detection["delay_seconds"] == pytest.approx((expected["delay"] - 1) / 100)
        assert by_model["drifting@v1"]["false_alarms"] == expected["drifting_false"]
        assert by_model["stationary@v1"]["detections"] == []
        assert by_model["stationary@v1"]["false_alarms"] == expected["stationary_false"]
        assert by_model["stationary@v1"]["horizon_events"] == 2 * WINDOW
        delays.append(detection["delay_events"])
    # a lower threshold detects no later
    assert None not in delays
    assert delays == sorted(delays) and delays[0] < delays[2]
    assert data["settings"][0]["models"][1]["false_alarms"] > 0  # 0.05 on a stationary model
    assert data["settings"][0]["models"][0]["false_alarms"] > 0

    page = ReportPage((report / "sweep.html").read_text("utf-8"))
    rows = page.rows("sweep")
    assert [(r["setting"], r["model"]) for r in rows] == [
        (f"drift_threshold={t}", m) for t in THRESHOLDS for m in ("drifting@v1", "stationary@v1")
    ]
    assert [r["delay (events)"] for r in rows[::2]] == [str(d) for d in delays]
    assert rows[0]["detected by"] == "input_drift"
    assert rows[1]["detected by"] == "—"  # the stationary model: no known change
    assert "sweep.html" in ReportPage((report / "index.html").read_text("utf-8")).links
    assert all(math.isfinite(s["events_per_second"]) for s in data["settings"])


def test_models_with_their_own_value_are_named() -> None:
    base = DetectorSettings.model_validate(
        {"models": {"m1": {"drift_threshold": 0.2}, "m2": {"numeric_test": "psi"}}}
    )
    points = parse_sweep(["drift_threshold=0.05,0.1", "check_every=10"], base)
    assert shadowed(base, points) == {"drift_threshold": ["m1"]}
    assert points[0].settings.for_model("m1").drift_threshold == 0.2  # the sweep leaves it
    assert points[0].settings.for_model("m2").drift_threshold == 0.05
