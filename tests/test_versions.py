"""Model versions under `version_policy: separate`: each model_version its own window,
judged against `<model>@<version>`'s reference where one exists; alerts, ids, /status,
metrics and the changelog per (model, version); the newest `max_versions` kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client import generate_latest

from stream_monitor.config.detector import DetectorSettings
from stream_monitor.decode.native import decode_native
from stream_monitor.decode.predictions import decode_batch
from stream_monitor.engine.core import Engine
from stream_monitor.labels.join import LabelJoin
from stream_monitor.reference.prepared import InvalidReference
from stream_monitor.sinks.prometheus import Metrics
from stream_monitor.state.models import StateTracker
from stream_monitor.state.restore import restore
from stream_monitor.tools.synthetic import SyntheticModel, interleave
from tests.helpers import batch_of, batches_of_events, example_generator, references
from tests.test_state import Changelog

BASE = SyntheticModel("m", n_features=6)
OTHER = SyntheticModel("other-population", n_features=6)  # another distribution, same names


def _as_version(events: list[dict[str, object]], version: str) -> list[dict[str, object]]:
    return [{**e, "model": "m", "model_version": version} for e in events]


def _settings(**options: object) -> DetectorSettings:
    given: dict[str, object] = {
        "window_size": 500,
        "check_every": 50,
        "input_drift_rule": "window",
        "version_policy": "separate",
        **options,
    }
    return DetectorSettings(**given)  # type: ignore[arg-type]


def _canary() -> list[dict[str, object]]:
    """v1 from the model's population, v2 (a canary, interleaved) from another one."""
    v1 = _as_version(BASE.events(0, 3000), "v1")
    v2 = _as_version(OTHER.events(0, 3000), "v2")
    return interleave([v1, v2])


def test_each_version_keeps_its_own_window_and_alerts() -> None:
    engine = Engine(_settings(), references([BASE], 2000))
    alerts = [a for b in batches_of_events(_canary(), 700) for a in engine.process(b).alerts]
    assert sorted(engine.models) == ["m@v1", "m@v2"]
    v1, v2 = engine.models["m@v1"], engine.models["m@v2"]
    assert v1.events_seen == v2.events_seen == 3000  # not 6000 in one window
    assert (v1.model_name, v1.version, v2.version) == ("m", "v1", "v2")
    drifted = {(a.model, a.model_version) for a in alerts if a.kind == "input_drift"}
    assert drifted == {("m", "v2")}  # the canary's population differs; v1's does not
    status = engine.status()["models"]
    assert isinstance(status, dict)
    assert status["m@v2"]["model"] == "m" and status["m@v2"]["model_version"] == "v2"
    assert status["m@v2"]["firing"] and not status["m@v1"]["firing"]


def test_a_shared_policy_mixes_the_versions_in_one_window() -> None:
    engine = Engine(_settings(version_policy="shared"), references([BASE], 2000))
    for batch in batches_of_events(_canary(), 700):
        engine.process(batch)
    assert list(engine.models) == ["m"] and engine.models["m"].events_seen == 6000


def test_a_version_is_judged_against_its_own_reference_where_one_exists() -> None:
    refs = references([BASE], 2000)
    refs["m@v2"] = references([OTHER], 2000)["other-population"]
    engine = Engine(_settings(), refs)
    alerts = [a for b in batches_of_events(_canary(), 700) for a in engine.process(b).alerts]
    assert engine.models["m@v2"].reference is refs["m@v2"]
    assert engine.models["m@v1"].reference is refs["m"]
    assert not [a for a in alerts if a.kind == "input_drift"]


def test_alert_ids_differ_between_versions_and_stay_as_they_were_without_versions() -> None:
    drifted = SyntheticModel("m", n_features=6, drift_start=600, drift_shift=2.0)
    events = drifted.events(0, 1500)
    ids = {}
    for version in ("v1", "v2"):
        engine = Engine(_settings(), references([BASE], 2000))
        tagged = _as_version(events, version)
        ids[version] = [
            a.alert_id for b in batches_of_events(tagged) for a in engine.process(b).alerts
        ]
    plain = [{k: v for k, v in e.items() if k != "model_version"} for e in events]
    for policy in ("separate", "shared"):
        engine = Engine(_settings(version_policy=policy), references([BASE], 2000))
        ids[policy] = [
            a.alert_id for b in batches_of_events(plain) for a in engine.process(b).alerts
        ]
    assert ids["v1"] and len(ids["v1"]) == len(ids["v2"])
    assert not set(ids["v1"]) & set(ids["v2"])
    assert ids["separate"] == ids["shared"]  # an unversioned stream keeps its ids


def test_only_the_newest_versions_are_kept_and_their_series_dropped() -> None:
    engine = Engine(_settings(max_versions=2), references([BASE], 2000))
    metrics = Metrics()
    for n, version in enumerate(("v1", "v2", "v3")):
        events = _as_version(BASE.events(n * 600, 600), version)
        for batch in batches_of_events(events, 600):
            batch.offsets = [o + n * 600 for o in batch.offsets]
            outcome = engine.process(batch)
            metrics.record(outcome)
        if version == "v3":
            assert outcome.dropped == ["m@v1"]
    assert sorted(engine.models) == ["m@v2", "m@v3"]
    text = generate_latest(metrics.registry).decode()
    assert 'model_version="v3"' in text and 'model_version="v2"' in text
    assert 'model_version="v1"' not in text


def test_only_the_keys_labelled_apart_get_an_identity() -> None:
    """A batch names the (model, version) of its version windows only, and a version
    pushed out is no longer looked up; a plain model's key is its label as it is."""
    engine = Engine(_settings(max_versions=2), references([BASE, OTHER], 2000))
    plain = [{k: v for k, v in e.items() if k != "model_version"} for e in OTHER.events(0, 900)]
    for n, version in enumerate(("v1", "v2", "v3")):
        events = interleave([_as_version(BASE.events(n * 300, 300), version), plain[n * 300 :]])
        (batch,) = batches_of_events(events[:600], 600)
        batch.offsets = [o + n * 600 for o in batch.offsets]
        outcome = engine.process(batch)
        assert outcome.identities == {f"m@{version}": ("m", version, "")}
        assert "other-population" in outcome.ok_counts
    assert engine.labelled_apart.keys == {"m@v2", "m@v3"}


def test_metrics_carry_the_version_label() -> None:
    engine = Engine(_settings(), references([BASE], 2000))
    metrics = Metrics()
    for batch in batches_of_events(_canary()[:1000], 500):
        metrics.record(engine.process(batch))
    text = generate_latest(metrics.registry).decode()
    assert (
        'stream_monitor_events_total{model="m",model_version="v2",segment="",status="ok"} 500.0'
        in text
    )
    assert 'stream_monitor_window_events{model="m",model_version="v1",segment=""} 500.0' in text
    latency = (
        'stream_monitor_prediction_latency_seconds_count{model="m",model_version="v1",segment=""}'
    )
    assert latency in text


def test_the_native_decoder_splits_versions_as_the_python_does() -> None:
    events = [*_canary()[:200], {"model": "m", "features": {}, "prediction": 1.0}]
    events[7]["model_version"] = ""  # an empty version is no version
    batch = batches_of_events(events, 1000)[0]
    python = decode_batch(batch, split_versions=True)
    assert list(python.by_model) == ["m@v1", "m@v2", "m"]
    schemas = {key: tuple(BASE.feature_names) for key in python.by_model}
    native = decode_native(batch, schemas, split_versions=True)
    assert list(native.by_model) == list(python.by_model)
    for key, model in native.by_model.items():
        assert model.events.index == python.by_model[key].index


@pytest.mark.parametrize("rule", ["window", "sequential"])
def test_a_restored_engine_continues_each_version(rule: str) -> None:
    settings = _settings(input_drift_rule=rule, max_versions=2)
    v3 = _as_version(SyntheticModel("m", 6, drift_start=300, drift_shift=2.0).events(0, 1500), "v3")
    events = _canary()[:3000] + v3
    batches = batches_of_events(events, 250)
    reference = Engine(settings, references([BASE], 2000))
    expected = [a for b in batches for a in reference.process(b).alerts]
    assert {a.model_version for a in expected} >= {"v2", "v3"}

    log = Changelog()
    engine, tracker = Engine(settings, references([BASE], 2000)), StateTracker(500)
    got = []
    for i, batch in enumerate(batches):
        outcome = engine.process(batch)
        got.extend(outcome.alerts)
        log.record(engine, tracker, outcome)
        if i % 5 == 4:  # come back from the changelog
            engine, tracker = Engine(settings, references([BASE], 2000)), StateTracker(500)
            restore(engine, log.read(), tracker)
            held = sorted(engine.models)
            assert len(held) <= 2 and held == sorted(reference_keys(i, batches, settings))
    assert [a.model_dump() for a in got] == [a.model_dump() for a in expected]


def reference_keys(last: int, batches: list, settings: DetectorSettings) -> list[str]:
    """The keys an uninterrupted engine holds after batch `last`."""
    engine = Engine(settings, references([BASE], 2000))
    for batch in batches[: last + 1]:
        engine.process(batch)
    return list(engine.models)


def test_labels_join_the_version_whose_prediction_they_name() -> None:
    engine = Engine(_settings(), references([BASE], 2000))
    join = LabelJoin(horizon_events=1000, horizon_seconds=1e9)
    engine.observe(join)
    events = _canary()[:400]
    for n, e in enumerate(events):
        e["event_id"] = f"e{n}"
        e.pop("actual", None)
    for batch in batches_of_events(events, 400):
        engine.process(batch)
    labels = [
        f'{{"model": "m", "event_id": "e{n}", "actual": 0.5}}'.encode() for n in range(len(events))
    ]
    outcome = join.apply(engine, batch_of(labels, start_offset=0))
    counts = outcome.label_counts
    assert counts == {("m@v1", "joined"): 200, ("m@v2", "joined"): 200}
    assert np.isfinite(engine.models["m@v2"].window.actual[:200]).all()  # type: ignore[union-attr]


def test_a_versions_reference_file_holds_the_models_events(tmp_path: Path) -> None:
    import orjson

    from stream_monitor.reference.loading import load_references

    for name, model, version in (("m", BASE, "v1"), ("m@v2", OTHER, "v2")):
        events = _as_version(model.reference(300), version)
        (tmp_path / f"{name}.jsonl").write_bytes(b"\n".join(orjson.dumps(e) for e in events))
    refs = load_references(tmp_path, 20)
    assert sorted(refs) == ["m", "m@v2"]
    (tmp_path / "m@v3.jsonl").write_bytes(orjson.dumps({**BASE.reference(1)[0], "model": "x"}))
    with pytest.raises(InvalidReference, match="names model 'x', but the file is for 'm@v3'"):
        load_references(tmp_path, 20)


def test_a_window_kept_for_every_version_continues_as_its_last_versions() -> None:
    """An upgrade from one window per model (or a switch from the shared policy): the
    restored window goes on as the window of the version it last saw, and once that key
    has records of its own, the old key is not restored any more."""
    events = _as_version(BASE.events(0, 1200), "v1")
    first, rest = batches_of_events(events[:700], 350), batches_of_events(events[700:], 250)
    shared = Engine(_settings(version_policy="shared"), references([BASE], 2000))
    log, tracker = Changelog(), StateTracker(500)
    for batch in first:
        outcome = shared.process(batch)
        log.record(shared, tracker, outcome)
    assert list(shared.models) == ["m"]

    engine, tracker = Engine(_settings(), references([BASE], 2000)), StateTracker(500)
    assert restore(engine, log.read(), tracker) == ["m@v1"]
    state = engine.models["m@v1"]
    assert (state.model_name, state.events_seen) == ("m", 700)  # not blind after the upgrade
    window = shared.models["m"].window
    assert window is not None and state.window is not None
    assert np.array_equal(state.window.features, window.features, equal_nan=True)
    for batch in rest:
        outcome = engine.process(batch)
        log.record(engine, tracker, outcome)
    again, tracker2 = Engine(_settings(), references([BASE], 2000)), StateTracker(500)
    assert restore(again, log.read(), tracker2) == ["m@v1"]  # the old key: superseded
    assert again.models["m@v1"].events_seen == 1200


def test_the_readme_example_alerts_for_the_canary_only(tmp_path: Path) -> None:
    import orjson

    from stream_monitor.cli import main

    generate = example_generator("versions")
    generate.main(["--out", str(tmp_path)])
    out = tmp_path / "alerts.jsonl"
    argv = ["replay", str(tmp_path / "events.jsonl"), "--reference", str(tmp_path / "reference")]
    assert main([*argv, "--out", str(out)]) == 0
    alerts = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert {(a["model"], a["model_version"]) for a in alerts} == {("scorer", "v2")}
    assert {a["kind"] for a in alerts} >= {"input_drift"}
    first = min(a["events_seen"] for a in alerts if a["kind"] == "input_drift")
    assert 1500 < first < 2000  # v2's own events: its drift starts at its event 1 500


def test_a_candidate_is_judged_against_its_baselines_live_window() -> None:
    """The candidate's traffic differs from the baseline's (another population); both are
    judged against the same reference too. The comparison's alert names the baseline."""
    comparison = {"m": {"compare_versions": {"baseline": "v1", "candidate": "v2"}}}
    engine = Engine(_settings(models=comparison), references([BASE], 2000))
    alerts = [a for b in batches_of_events(_canary(), 700) for a in engine.process(b).alerts]
    versus = [a for a in alerts if a.details.get("baseline_version") == "v1"]
    assert {(a.model_version, a.kind, a.status) for a in versus} >= {
        ("v2", "input_drift", "firing")
    }
    assert all(a.model_version == "v2" and a.test == "ks" for a in versus)
    assert all(a.score_kind == "neg_log10_p_value" for a in versus)
    status = engine.status()["models"]
    assert isinstance(status, dict)
    result = status["m@v2"]["results"]["input_drift/versus_baseline"]
    assert result["baseline_version"] == "v1" and result["healthy"] is False
    # scipy's test on the two windows' values, at the level of the false-alarm budget
    from scipy.stats import ks_2samp

    v1, v2 = engine.models["m@v1"].window, engine.models["m@v2"].window
    assert v1 is not None and v2 is not None
    p = min(
        ks_2samp(v2.features[:, j], v1.features[:, j], method="asymp").pvalue
        for j in range(v1.n_features)
    )
    assert result["p_value"] == p
    assert result["score"] == pytest.approx(-np.log10(max(p, 1e-300)))
    assert result["threshold"] == pytest.approx(-np.log10(50 / 1e7 / v1.n_features))


def test_the_same_traffic_raises_no_comparison_alert() -> None:
    comparison = {"m": {"compare_versions": {"baseline": "v1", "candidate": "v2"}}}
    engine = Engine(_settings(models=comparison), references([BASE], 2000))
    v1 = _as_version(BASE.events(0, 3000, seed=1), "v1")
    v2 = _as_version(BASE.events(0, 3000, seed=2), "v2")
    alerts = [
        a for b in batches_of_events(interleave([v1, v2]), 700) for a in engine.process(b).alerts
    ]
    assert not [a for a in alerts if "baseline_version" in a.details]
    assert engine.status()["models"]["m@v2"]["results"]["input_drift/versus_baseline"]["healthy"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ({"m": {"compare_versions": {"baseline": "v1", "candidate": "v1"}}}, "another version"),
        ({"m": {"compare_versions": {"baseline": "v1"}}}, "candidate"),
    ],
)
def test_a_wrong_comparison_fails_at_start_up(models: dict, message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        DetectorSettings(models=models)


def test_comparing_versions_needs_their_own_windows() -> None:
    from stream_monitor.config.loading import ConfigError, load_settings

    with pytest.raises(
        ConfigError, match=r"models\.m\.compare_versions needs version_policy separate"
    ):
        load_settings(
            {
                "version_policy": "shared",
                "models": {"m": {"compare_versions": {"baseline": "v1", "candidate": "v2"}}},
            }
        )
