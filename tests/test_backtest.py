"""`stream-monitor backtest`: every check recorded, change points located, the report drawn
for the shipped real stream and consistent with `replay` on the same file."""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson
import pytest

from stream_monitor.alerts.results import CheckResult
from stream_monitor.cli import main
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.decode.predictions import decode_batch
from stream_monitor.engine.core import Engine
from stream_monitor.offline.backtest import ChangePoint, run_backtest
from stream_monitor.offline.report import file_stem
from stream_monitor.reference.loading import load_references
from stream_monitor.tools.synthetic import SyntheticModel, interleave, to_jsonl
from tests.helpers import batch_of, batches_of_events, example_generator, references
from tests.report_helpers import ReportPage

ROOT = Path(__file__).resolve().parent.parent
NILE = ROOT / "examples" / "nile"
NILE_ARGS = [
    str(NILE / "nile-flow.jsonl"),
    "--reference",
    str(NILE / "reference"),
    "--config",
    str(NILE / "monitor.yaml"),
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def nile_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, object]]]:
    """The report of the shipped Nile stream, and the alerts `replay` gives for it."""
    tmp = tmp_path_factory.mktemp("nile")
    assert main(["backtest", *NILE_ARGS, "--report", str(tmp / "report")]) == 0
    assert main(["replay", *NILE_ARGS, "--out", str(tmp / "replayed.jsonl")]) == 0
    replayed = [orjson.loads(line) for line in (tmp / "replayed.jsonl").read_bytes().splitlines()]
    return tmp / "report", replayed


def test_the_shipped_stream_is_small_and_marks_its_documented_change() -> None:
    files = [p for p in NILE.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 2_000_000
    events = [orjson.loads(line) for line in (NILE / "nile-flow.jsonl").read_bytes().splitlines()]
    assert len(events) == 98  # 1873-1970: the first two years only feed the lags
    marked = [e for e in events if e.get("change_point") is True]
    assert [e["event_id"] for e in marked] == ["nile-1899"]
    refs = load_references(NILE / "reference", 20)
    assert list(refs) == ["nile-flow"]
    assert refs["nile-flow"].events == 26  # the training years 1873-1898
    # the documented change: the flow's level drops by far more than its spread
    flows = np.array([e["actual"] for e in events])
    before, after = flows[:26], flows[26:]
    assert before.mean() - after.mean() > 1.5 * before.std()


def test_the_published_report_is_what_the_code_gives_now(
    nile_report: tuple[Path, list[dict[str, object]]],
) -> None:
    """docs/backtest (linked from the README) holds the alerts this code publishes for the
    shipped stream, byte for byte: a change to the checks or the alert format shows here."""
    report, _replayed = nile_report
    shipped = ROOT / "docs" / "backtest" / "alerts.jsonl"
    assert (report / "alerts.jsonl").read_bytes() == shipped.read_bytes()


def test_the_report_of_the_real_stream_has_valid_plots(
    nile_report: tuple[Path, list[dict[str, object]]],
) -> None:
    from matplotlib.image import imread

    report, _ = nile_report
    pngs = sorted(report.glob("*.png"))
    assert [p.name for p in pngs] == ["nile-flow@ols-1873-1898.png"]  # per version
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert len(data) > 20_000
        pixels = imread(png)
        height, width = pixels.shape[:2]
        assert width >= 800 and height >= 600
        assert float(pixels[..., :3].std()) > 0.05  # lines and text, not a blank canvas
    page = ReportPage((report / "index.html").read_text("utf-8"))
    assert sorted(page.images) == [p.name for p in pngs]
    assert all((report / src).is_file() for src in page.images)


def test_the_summary_table_counts_what_replay_publishes(
    nile_report: tuple[Path, list[dict[str, object]]],
) -> None:
    report, replayed = nile_report
    assert replayed, "the shipped stream must raise alerts"
    written = (report / "alerts.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["alert_id"] for line in written] == [a["alert_id"] for a in replayed]
    counts = Counter(
        (f"{a['model']}@{a['model_version']}", a["kind"], a["status"]) for a in replayed
    )
    rows = ReportPage((report / "index.html").read_text("utf-8")).rows("summary")
    shown = {(r["model"], r["kind"]) for r in rows}
    assert {(m, k) for m, k, _ in counts} <= shown
    for row in rows:
        key = (row["model"], row["kind"])
        assert int(row["firing"]) == counts[(*key, "firing")], row
        assert int(row["resolved"]) == counts[(*key, "resolved")], row
        assert row["events seen"] == "98"
        first = next(
            (
                a
                for a in replayed
                if (f"{a['model']}@{a['model_version']}", a["kind"], a["status"])
                == (*key, "firing")
            ),
            None,
        )
        if first is None:
            assert row["first detection (event time)"] == "—"
            continue
        assert int(row["first detection (events seen)"]) == first["events_seen"]
        shown_at = datetime.fromisoformat(row["first detection (event time)"])
        assert shown_at == datetime.fromisoformat(str(first["detected_at"]))
    input_drift = next(r for r in rows if r["kind"] == "input_drift")
    assert int(input_drift["firing"]) >= 1


def test_the_report_measures_the_delay_after_the_documented_change(
    nile_report: tuple[Path, list[dict[str, object]]],
) -> None:
    report, replayed = nile_report
    (row,) = ReportPage((report / "index.html").read_text("utf-8")).rows("changes")
    assert row["model"] == "nile-flow@ols-1873-1898"
    assert row["known change (event time)"] == "1899-01-01T00:00:00Z"
    assert row["events before it"] == "26"
    first = min(
        (a for a in replayed if a["status"] == "firing" and int(str(a["events_seen"])) > 26),
        key=lambda a: int(str(a["events_seen"])),
    )
    assert row["detected by"] == first["kind"]
    assert int(row["delay (events)"]) == int(str(first["events_seen"])) - 26


def _checks_by_batch(
    events: list[dict[str, object]], models: list[SyntheticModel], size: int
) -> Iterator[tuple[str, list[CheckResult]]]:
    settings = DetectorSettings(window_size=200, check_every=50)
    engine = Engine(settings, references(models, 2000))
    for batch in batches_of_events(events, size):
        yield from engine.process(batch).checks.items()


def test_every_check_is_recorded_not_only_the_last_of_a_batch(tmp_path: Path) -> None:
    model = SyntheticModel("m", n_features=4, drift_start=500, drift_shift=1.0)
    events = model.events(0, 1000)
    log = tmp_path / "events.jsonl"
    log.write_bytes(to_jsonl(events))
    settings = DetectorSettings(window_size=200, check_every=50)
    result = run_backtest(log, settings, references([model], 2000), batch_size=1000)
    series = result.series["m@v1"]["input_drift"]
    assert series.events == list(range(50, 1001, 50))  # 20 checks in one batch
    assert series.times == [events[k - 1]["timestamp"] for k in series.events]
    assert series.tests == ["ks"]
    # the same scores as the engine's one-check-per-batch outcomes
    expected = [
        r.score
        for name, results in _checks_by_batch(events, [model], 50)
        for r in results
        if name == "m@v1" and r.kind == "input_drift"
    ]
    judged = [s for s in series.scores if not math.isnan(s)]
    assert series.judged == len(judged) == 17  # from the first full window (200 events)
    assert judged == expected[3:]
    assert series.thresholds[3:] == [0.1] * 17


def test_change_points_are_located_in_their_models_valid_events(tmp_path: Path) -> None:
    a, b = SyntheticModel("a", n_features=3), SyntheticModel("b", n_features=3)
    ea, eb = a.events(0, 600), b.events(0, 600)
    ea[300]["change_point"] = True
    ea[100]["change_point"] = False  # not a mark
    eb[50]["event_id"] = '"change_point": true'  # the text, not the field
    lines = to_jsonl(interleave([ea, eb])).splitlines()
    # bad records of model a before its change point: not among its events
    lines[10:10] = [b"not json", b'{"model": "a", "prediction": 1.0}']
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"\n".join(lines) + b"\n")
    result = run_backtest(log, DetectorSettings(window_size=100), references([a, b]), 7)
    assert result.change_points == [ChangePoint("a@v1", 300, float(str(ea[300]["timestamp"])))]
    assert result.invalid == 2
    assert result.events_seen == {"a@v1": 600, "b@v1": 600}


def test_the_decoder_accepts_the_change_point_field_and_unknown_fields() -> None:
    event = {"model": "a", "features": {"x": 1.0}, "prediction": 0.5}
    values = [orjson.dumps({**event, "change_point": True, "note": {"any": ["thing"]}})]
    decoded = decode_batch(batch_of(values))
    assert decoded.dead_letters == []
    assert len(decoded.by_model["a"]) == 1


def test_plot_file_names_are_safe_and_unique() -> None:
    taken: set[str] = set()
    names = [file_stem(m, taken) for m in ["fraud/scorer", "fraud_scorer", "Fraud_Scorer", ".."]]
    assert names == ["fraud_scorer", "fraud_scorer-2", "Fraud_Scorer-3", "model"]


def test_without_matplotlib_the_command_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` fails
    assert main(["backtest", *NILE_ARGS, "--report", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "matplotlib" in err and "stream-monitor[report]" in err
    assert not (tmp_path / "r").exists()


def test_unknown_alert_kinds_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["backtest", *NILE_ARGS, "--report", str(tmp_path / "r"), "--kinds", "input_drift,drift"]
    assert main(args) == 2
    assert "unknown ['drift']" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["replay", "backtest"])
def test_a_missing_input_file_is_a_clear_error(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = ["--report", str(tmp_path / "r")] if command == "backtest" else []
    assert main([command, str(tmp_path / "nowhere.jsonl"), *target]) == 2
    assert f"no such file: {tmp_path / 'nowhere.jsonl'}" in capsys.readouterr().err


def test_the_generator_rebuilds_the_shipped_files_from_the_dataset(tmp_path: Path) -> None:
    """The dataset's 100 flows are all in the shipped stream (1871 and 1872 as the first
    event's lags), so the generator can be checked without the package that ships them."""
    generate = example_generator("nile")
    events = [orjson.loads(line) for line in (NILE / "nile-flow.jsonl").read_bytes().splitlines()]
    first = events[0]["features"]
    flows = [first["flow_lag2"], first["flow_lag1"], *(e["actual"] for e in events)]
    rows = [f"{1871 + i},{flow:g}" for i, flow in enumerate(flows)]
    csv = tmp_path / "nile.csv"
    csv.write_text("year,volume\n" + "\n".join(rows) + "\n")
    assert generate.main(["--csv", str(csv), "--out", str(tmp_path / "out")]) == 0
    for name in ("nile-flow.jsonl", "reference/nile-flow.jsonl"):
        assert (tmp_path / "out" / name).read_bytes() == (NILE / name).read_bytes(), name


def test_the_charts_are_recorded_drawn_and_credited_with_their_detection(tmp_path: Path) -> None:
    # the default rule: the sequential alert counts as the detection, its series is the
    # charts' evidence at each check, and the report draws it with the estimated start
    model = SyntheticModel("m", n_features=6, drift_start=1500, drift_shift=1.0, drift_features=1)
    events = model.events(0, 3000)
    events[1500]["change_point"] = True
    log = tmp_path / "events.jsonl"
    log.write_bytes(to_jsonl(events))
    refdir = tmp_path / "ref"
    refdir.mkdir()
    (refdir / "m.jsonl").write_bytes(to_jsonl(model.reference(5000)))
    report = tmp_path / "report"
    assert main(["backtest", str(log), "--reference", str(refdir), "--report", str(report)]) == 0
    page = ReportPage((report / "index.html").read_text("utf-8"))
    rows = {r["kind"]: r for r in page.rows("summary")}
    assert rows["input_drift/sequential"]["firing"] == "1"
    assert rows["input_drift/sequential"]["test"] == "cusum"
    assert rows["input_drift"]["firing"] == "0"  # the window test informs, no alert
    (change,) = page.rows("changes")
    assert change["detected by"] == "input_drift"
    assert 0 < int(change["delay (events)"]) < 150
    assert (report / "m@v1.png").read_bytes().startswith(PNG_SIGNATURE)
    settings = DetectorSettings()
    result = run_backtest(log, settings, load_references(refdir, 20), batch_size=500)
    series = result.series["m@v1"]["input_drift/sequential"]
    assert series.events == list(range(100, 3001, 100)) and set(series.thresholds) == {1.0}
    (mark,) = [m for m in result.marks if m.status == "firing"]
    assert mark.key == "input_drift/sequential" and mark.start_event is not None
    assert 1400 <= mark.start_event <= 1510 and mark.start_time is not None
