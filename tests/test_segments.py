"""Segments: `segment_by: [country]` keeps windows per frequent value, the rest pooled as
`other`; the segment in alerts, /status and metrics; the routing restored exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client import generate_latest

from stream_monitor.config.detector import DetectorSettings
from stream_monitor.engine.core import Engine
from stream_monitor.reference.loading import prepare_from_events
from stream_monitor.sinks.prometheus import Metrics
from stream_monitor.state.models import StateTracker
from stream_monitor.state.restore import restore
from stream_monitor.tools.synthetic import SyntheticModel
from tests.helpers import batches_of_events, example_generator
from tests.test_state import Changelog

MODEL = SyntheticModel("m", n_features=4)
RARE = [f"R{i}" for i in range(12)]


def _country(rng: np.random.Generator) -> str:
    u = rng.random()
    return "FR" if u < 0.55 else "DE" if u < 0.85 else str(rng.choice(RARE))


def _stream(n: int, drift_from: int, seed: int = 1) -> list[dict[str, object]]:
    """FR 55 %, DE 30 %, twelve rare countries; DE's inputs shift by 2 sd from event
    `drift_from` of the stream."""
    rng = np.random.default_rng(seed)
    shifted = SyntheticModel("m", n_features=4, drift_start=0, drift_shift=2.0)
    calm, moved = MODEL.events(0, n, seed=seed), shifted.events(0, n, seed=seed)
    out = []
    for i in range(n):
        country = _country(rng)
        event = moved[i] if country == "DE" and i >= drift_from else calm[i]
        out.append({**event, "features": {**event["features"], "country": country}})  # type: ignore[dict-item]
    return out


def _settings(**options: object) -> DetectorSettings:
    given: dict[str, object] = {
        "window_size": 300,
        "check_every": 50,
        "models": {"m": {"segment_by": ["country"], "max_segments": 2, "segment_min_events": 50}},
        **options,
    }
    return DetectorSettings(**given)  # type: ignore[arg-type]


def _references() -> dict:
    rng = np.random.default_rng(9)
    events = [
        {**e, "features": {**e["features"], "country": _country(rng)}}  # type: ignore[dict-item]
        for e in MODEL.reference(4000)
    ]
    return {"m": prepare_from_events("m", events, 20, "test")}


def test_each_frequent_value_has_its_window_and_the_rest_is_pooled() -> None:
    engine = Engine(_settings(), _references())
    events = _stream(6000, drift_from=3000)
    alerts = [a for b in batches_of_events(events, 500) for a in engine.process(b).alerts]
    assert sorted(engine.models) == ["m@v1#country=DE", "m@v1#country=FR", "m@v1#other"]
    de = engine.models["m@v1#country=DE"]
    assert (de.model_name, de.stream, de.segment) == ("m", "m@v1", "country=DE")
    seen = sum(m.events_seen for m in engine.models.values())
    assert seen == 6000  # every event in exactly one window
    drift = [a for a in alerts if a.kind == "input_drift" and a.status == "firing"]
    assert drift and {a.segment for a in drift} == {"country=DE"}
    assert all(a.model == "m" and a.model_version == "v1" for a in drift)
    status = engine.status()["models"]
    assert isinstance(status, dict) and status["m@v1#country=DE"]["segment"] == "country=DE"
    assert '"segment":"country=DE"' in drift[0].to_json().decode()


def test_the_segment_is_a_metrics_label() -> None:
    engine, metrics = Engine(_settings(), _references()), Metrics()
    for batch in batches_of_events(_stream(2000, drift_from=10**6), 500):
        metrics.record(engine.process(batch))
    text = generate_latest(metrics.registry).decode()
    for segment in ("country=FR", "country=DE", "other"):
        series = f'stream_monitor_window_events{{model="m",model_version="v1",segment="{segment}"}}'
        assert series in text


def test_segments_do_not_depend_on_batch_sizes() -> None:
    events = _stream(3000, drift_from=1500)
    runs = []
    for size in (1000, 37):
        engine = Engine(_settings(), _references())
        alerts = [a for b in batches_of_events(events, size) for a in engine.process(b).alerts]
        runs.append(sorted((a.segment or "", a.events_seen, a.kind, a.to_json()) for a in alerts))
    # each segment's alerts, as each model's: their order across segments within one batch
    # follows the batch
    assert runs[0] == runs[1] and runs[0]


@pytest.mark.parametrize("crash_every", [3, 7])
def test_a_restored_engine_routes_and_alerts_as_an_uninterrupted_one(crash_every: int) -> None:
    settings = _settings(input_drift_rule="both")
    events = _stream(5000, drift_from=2500, seed=4)
    batches = batches_of_events(events, 130)
    reference = Engine(settings, _references())
    expected = [a for b in batches for a in reference.process(b).alerts]
    assert any(a.segment == "country=DE" for a in expected)

    log, engine, tracker = Changelog(), Engine(settings, _references()), StateTracker(300)
    got = []
    for i, batch in enumerate(batches):
        outcome = engine.process(batch)
        got.extend(outcome.alerts)
        log.record(engine, tracker, outcome)
        if i % crash_every == crash_every - 1:  # the counts of the values not admitted too
            engine, tracker = Engine(settings, _references()), StateTracker(300)
            restore(engine, log.read(), tracker)
    assert [a.model_dump() for a in got] == [a.model_dump() for a in expected]
    assert sorted(engine.models) == sorted(reference.models)


def test_a_value_waits_for_its_events_before_it_gets_a_window() -> None:
    settings = _settings(models={"m": {"segment_by": ["country"], "segment_min_events": 400}})
    engine = Engine(settings, _references())
    for batch in batches_of_events(_stream(1000, drift_from=10**6), 500):
        engine.process(batch)
    # FR reaches 400 events within the first 1000 (55 %); DE (30 %) does not
    assert sorted(engine.models) == ["m@v1#country=FR", "m@v1#other"]


def test_the_readme_example_alerts_for_germany_only(tmp_path: Path) -> None:
    import orjson

    from stream_monitor.cli import main

    root = Path(__file__).parents[1] / "examples" / "segments"
    generate = example_generator("segments")
    generate.main(["--out", str(tmp_path)])
    out = tmp_path / "alerts.jsonl"
    args = ["replay", str(tmp_path / "events.jsonl"), "--reference", str(tmp_path / "reference")]
    assert main([*args, "--config", str(root / "monitor.yaml"), "--out", str(out)]) == 0
    alerts = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert {a["segment"] for a in alerts} == {"country=DE"}
    assert {a["kind"] for a in alerts} >= {"input_drift"}


def test_a_segments_own_reference_file_is_used(tmp_path: Path) -> None:
    import orjson

    from stream_monitor.reference.loading import load_references

    for name in ("m", "m@v1#country=FR"):
        rows = [{**e, "model": "m"} for e in MODEL.reference(300)]
        (tmp_path / f"{name}.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in rows))
    refs = load_references(tmp_path, 20)
    engine = Engine(_settings(), refs)
    for batch in batches_of_events(_stream(1500, drift_from=10**6), 500):
        engine.process(batch)
    fr, de = engine.models["m@v1#country=FR"], engine.models["m@v1#country=DE"]
    assert fr.reference is not None and de.reference is not None
    assert fr.reference.model == "m@v1#country=FR" and de.reference.model == "m"


def test_a_revoked_partition_takes_its_segments_and_their_routing() -> None:
    engine = Engine(_settings(), _references())
    for batch in batches_of_events(_stream(1000, drift_from=10**6), 500):
        engine.process(batch)
    assert len(engine.models) == 3 and engine.segments.routers
    engine.forget_partitions({("predictions", 0)})
    assert not engine.models and not engine.segments.routers and not engine.segments.of_key
    assert engine.keys_of("m") == []


def test_a_segmented_streams_records_are_decoded_once_per_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A segmented stream is never read natively (its segments need the decoded values):
    once known, its first record is not decoded again to offer it for admission."""
    import stream_monitor.decode.native as native_decode

    read: list[int] = []
    real = native_decode.decode_batch

    def counted(batch, split_versions=False):  # type: ignore[no-untyped-def]
        read.append(len(batch))
        return real(batch, split_versions)

    monkeypatch.setattr(native_decode, "decode_batch", counted)
    engine = Engine(_settings(), _references())
    first, second = batches_of_events(_stream(1000, drift_from=1000), 500)
    engine.process(first)
    assert read == [1, 500]  # its first record, to see that it is segmented; then all
    read.clear()
    engine.process(second)
    assert read == [500]
