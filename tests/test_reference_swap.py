"""A reference replaced while the engine runs: the published record format, the swap
(window re-ranked, charts afresh, alerts naming the new reference), and a restore after a
swap that no record followed, which must go on as the live swap did."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from stream_monitor.config.detector import DetectorSettings
from stream_monitor.config.loading import load_settings
from stream_monitor.engine.core import Engine
from stream_monitor.reference import published
from stream_monitor.reference.loading import prepare_from_events
from stream_monitor.service.reference_source import ReferenceSource
from stream_monitor.state.models import StateTracker
from stream_monitor.state.restore import restore
from stream_monitor.tools.synthetic import SyntheticModel
from stream_monitor.window.ring import ModelWindow, WindowBlock
from tests.helpers import batches_of_events
from tests.test_state import Changelog

MODEL = SyntheticModel("m", n_features=5)
SHIFTED = SyntheticModel("m", n_features=5, drift_start=0, drift_shift=1.0)


def _reference(events: list[dict[str, object]]) -> dict:
    return {"m": prepare_from_events("m", events, 20, "test")}


def test_published_records_assemble_to_the_same_text_and_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(published, "CHUNK_BYTES", 1000)
    events = MODEL.reference(200)
    manifest, records = published.records("m", "v2", events, "m.jsonl", "2026-12-06T00:00:00Z")
    assert manifest.key == "m@v2" and manifest.chunks == len(records) - 1 > 2
    assert manifest.reference_id == prepare_from_events("m", events, 20, "t").reference_id
    assembler = published.Assembler()
    assert [assembler.add(k, v) for k, v in records][-1] == "m@v2"
    text = assembler.text(assembler.manifests["m@v2"])
    assert text is not None and published.reference_id(text) == manifest.reference_id
    again = prepare_from_events("m@v2", published.events_of(text), 20, "topic")
    assert again.reference_id == manifest.reference_id
    # a chunk altered or missing: no text, the reference in use is kept
    altered = published.Assembler()
    for k, v in records:
        altered.add(k, v.replace(b"1", b"2") if k.endswith(b":1") else v)
    assert altered.text(altered.manifests["m@v2"]) is None
    partial = published.Assembler()
    for k, v in records[1:]:
        partial.add(k, v)
    assert partial.text(partial.manifests["m@v2"]) is None
    with pytest.raises(published.BadRecord, match="neither a chunk nor a reference"):
        partial.add(b"other", b"x")
    assert partial.add(records[-1][0], None) == "m@v2" and "m@v2" not in partial.manifests


def test_the_id_is_the_datas_whatever_the_format() -> None:
    events = MODEL.reference(50)
    as_ints = [{**e, "prediction": 1} for e in events]
    as_floats = [{**e, "prediction": 1.0, "event_id": "x", "actual": None} for e in events]
    assert published.reference_id(published.canonical_text(as_ints)) == published.reference_id(
        published.canonical_text(as_floats)
    )


def test_a_swap_keeps_the_window_looked_up_in_the_new_reference() -> None:
    old, new = _reference(MODEL.reference(3000)), _reference(SHIFTED.events(0, 3000, seed=7))
    engine = Engine(DetectorSettings(window_size=500, check_every=50), old)
    for batch in batches_of_events(MODEL.events(0, 800), 400):
        engine.process(batch)
    state = engine.models["m@v1"]
    before = state.window
    assert before is not None
    assert engine.replace_references(new) == ["m@v1"]
    after = state.window
    assert after is not None and state.reference is new["m"]
    assert np.array_equal(after.features, before.features, equal_nan=True)
    assert (after.head, after.count, state.events_seen) == (before.head, before.count, 800)
    fresh = ModelWindow(500, new["m"], 5)
    order = (np.arange(500) + after.head) % 500  # oldest first
    fresh.append(
        WindowBlock(
            before.features[order],
            before.prediction[order],
            before.actual[order],
            before.latency_ms[order],
            before.timestamp[order],
            new["m"],
        ),
        0,
        500,
    )
    assert np.array_equal(np.sort(after.ks_key, axis=0), np.sort(fresh.ks_key, axis=0))
    alerts = []
    for batch in batches_of_events(MODEL.events(800, 1200), 400):
        alerts += engine.process(batch).alerts
    assert alerts and {a.reference_id for a in alerts} == {new["m"].reference_id}
    assert engine.status()["models"]["m@v1"]["reference"]["reference_id"] == new["m"].reference_id  # type: ignore[index]


@pytest.mark.parametrize("rule", ["window", "sequential"])
def test_a_restore_after_an_unrecorded_swap_goes_on_as_the_swap_did(rule: str) -> None:
    """The owner swapped and died before its next commit: its successor, with the new
    reference, restores the last record (judged by the old one) and must give the alerts
    the owner would have given."""
    settings = DetectorSettings(window_size=500, check_every=50, input_drift_rule=rule)
    old, new = _reference(MODEL.reference(3000)), _reference(SHIFTED.events(0, 3000, seed=7))
    first, rest = MODEL.events(0, 1000), MODEL.events(1000, 1500)

    live, log, tracker = Engine(settings, old), Changelog(), StateTracker(500)
    for batch in batches_of_events(first, 250):
        outcome = live.process(batch)
        log.record(live, tracker, outcome)
    live.replace_references(new)
    expected = [a for b in batches_of_events(rest, 250) for a in live.process(b).alerts]
    assert expected  # the shifted reference makes the old population drift

    successor = Engine(settings, new)
    assert restore(successor, log.read(), StateTracker(500)) == ["m@v1"]
    got = [a for b in batches_of_events(rest, 250) for a in successor.process(b).alerts]
    assert [a.model_dump() for a in got] == [a.model_dump() for a in expected]


def test_a_categorical_window_starts_afresh() -> None:
    def with_country(events: list[dict[str, object]], cats: list[str]) -> list[dict[str, object]]:
        return [
            {**e, "features": {**e["features"], "country": cats[i % len(cats)]}}  # type: ignore[dict-item]
            for i, e in enumerate(events)
        ]

    old = {
        "m": prepare_from_events("m", with_country(MODEL.reference(2000), ["FR", "DE"]), 20, "t")
    }
    new = {"m": prepare_from_events("m", with_country(MODEL.reference(2000), ["US"]), 20, "t")}
    engine = Engine(DetectorSettings(window_size=300), old)
    for batch in batches_of_events(with_country(MODEL.events(0, 400), ["FR", "DE"]), 200):
        engine.process(batch)
    engine.replace_references(new)
    window = engine.models["m@v1"].window
    assert window is not None and window.count == 0 and engine.models["m@v1"].events_seen == 400


def test_sighup_reads_the_files_again(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    ref.mkdir()
    path = ref / "m.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in MODEL.reference(300)))
    settings = load_settings({"reference": str(ref)})
    from stream_monitor.reference.loading import load_references

    source = ReferenceSource(settings, load_references(ref, 20))
    assert source.changes() is None  # nothing asked, nothing read
    source.reload_requested = True
    assert source.changes() is None  # the same files: the same ids, no swap
    first = source.files["m"].reference_id
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in SHIFTED.events(0, 300)))
    source.reload_requested = True
    changed = source.changes()
    assert changed is not None and changed["m"].reference_id not in (None, first)
    kept = source.files["m"].reference_id
    path.write_bytes(b"{not json\n")
    source.reload_requested = True
    assert source.changes() is None and source.files["m"].reference_id == kept
