"""References published to the compacted references topic, on the real broker: every member
swaps to them, and a member killed after the swap changes nothing in the alerts (its
successor judges the restored windows against the same reference)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_monitor.config.loading import load_settings
from stream_monitor.reference.published import canonical_text, reference_id
from stream_monitor.service.reference_publish import publish_reference
from stream_monitor.tools.synthetic import SyntheticModel, interleave
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

MODELS = [SyntheticModel(f"m{i:02d}", n_features=6) for i in range(8)]
PHASE = 2500  # events per model before the new reference, and after it
FAST_GROUP = ("--kafka", "session.timeout.ms=6000", "--kafka", "heartbeat.interval.ms=1000")


def _new_reference(model: SyntheticModel) -> list[dict[str, object]]:
    """A reference from a population shifted by 1 sd: the old one's traffic drifts."""
    shifted = SyntheticModel(model.name, n_features=6, drift_start=0, drift_shift=1.0)
    return shifted.events(0, 6000, seed=99)


def _alerts(bootstrap: str, topic: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for msg in read_topic(bootstrap, topic, timeout=60):
        alert = orjson.loads(msg.value())
        out.setdefault(alert["model"], []).append({k: v for k, v in alert.items() if k != "source"})
    return out


def _reference_ids(members: list[MonitorProcess]) -> dict[str, str | None]:
    ids: dict[str, str | None] = {}
    for member in members:
        for key, model in member.status().get("models", {}).items():
            ids[key] = (model.get("reference") or {}).get("reference_id")
    return ids


def test_a_published_reference_survives_a_kill_alike(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic, refs_topic = unique("predictions"), unique("references")
    create_topics(kafka_bootstrap, [topic], partitions=6)
    ref_dir = write_references(tmp_path / "ref", MODELS)
    produce(kafka_bootstrap, topic, event_records(interleave([m.events(0, PHASE) for m in MODELS])))
    total = PHASE * len(MODELS)

    def done(group: str, n: int) -> bool:
        return sum(max(o, 0) for o in committed(kafka_bootstrap, group, topic).values()) >= n

    runs: dict[str, tuple[str, str, list[MonitorProcess]]] = {}
    for run, size in (("calm", 1), ("killed", 2)):
        group, alerts = unique(f"group-{run}"), unique(f"alerts-{run}")
        members = [
            MonitorProcess(
                kafka_bootstrap,
                topic,
                alerts,
                group,
                ref_dir,
                tmp_path / f"{run}{i}.log",
                "--references-topic",
                refs_topic,
                "--instance-id",
                f"{run}{i}",
                *FAST_GROUP,
            )
            for i in range(size)
        ]
        runs[run] = (group, alerts, members)
    try:
        for group, _alerts_topic, _members in runs.values():
            wait_for(lambda g=group: done(g, total), 180, "the first phase committed")
        settings = load_settings(
            {"bootstrap_servers": kafka_bootstrap, "references_topic": refs_topic}
        )
        # the swapped models: all those of the member to be killed, and one of the other's
        group, _alerts_topic, members = runs["killed"]

        def held_apart() -> list[set[str]]:
            return [set(m.status().get("models", {})) for m in members]

        # the events may all be committed by the first member before the second joins: the
        # second then holds its models once it has restored them from the changelog
        wait_for(
            lambda: all(held_apart()) and not set.intersection(*held_apart()),
            60,
            "each member holding its own models",
        )
        held = held_apart()
        assert held[0] and held[1] and not held[0] & held[1]
        assert [m.status()["restoring_partitions"] for m in members] == [[], []]
        swapped = [m for m in MODELS if f"{m.name}@v1" in held[1]]
        swapped.append(next(m for m in MODELS if f"{m.name}@v1" in held[0]))
        published = {}
        for model in swapped:
            path = tmp_path / f"new-{model.name}.jsonl"
            events = _new_reference(model)
            path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
            manifest = publish_reference(settings, model.name, path)
            assert manifest.reference_id == reference_id(canonical_text(events))
            assert manifest.chunks >= 2  # 6000 x 6 events: more than one chunk
            published[f"{model.name}@v1"] = manifest.reference_id
        for _group, _alerts_topic, ms in runs.values():
            wait_for(
                lambda ms=ms: all(_reference_ids(ms).get(k) == v for k, v in published.items()),
                60,
                "every member judging by the published references",
            )
        # killed after its swap, before any event judged by the new references: no record
        # says it swapped; its successor restores records of the old references
        members[1].kill()
        produce(
            kafka_bootstrap,
            topic,
            event_records(interleave([m.events(PHASE, PHASE) for m in MODELS])),
        )
        wait_for(lambda: done(group, total + total // 3), 180, "a third of the second phase")
        joined_at = sum(max(o, 0) for o in committed(kafka_bootstrap, group, topic).values())
        members.append(  # a member joins: models move with records of the new references
            MonitorProcess(
                kafka_bootstrap,
                topic,
                runs["killed"][1],
                group,
                ref_dir,
                tmp_path / "killed2.log",
                "--references-topic",
                refs_topic,
                "--instance-id",
                "killed2",
                *FAST_GROUP,
            )
        )
        for group, _alerts_topic, _members in runs.values():
            wait_for(lambda g=group: done(g, 2 * total), 240, "every event committed")
        # the other member may commit the last events before the new one has restored the
        # models of its partitions (a slow start): it holds them once it has
        wait_for(
            lambda: bool(members[2].status().get("models")), 60, "the new member holding models"
        )
        moved = set(members[2].status().get("models", {}))
        assert moved  # the new member took models over
        calm_status = _reference_ids(runs["calm"][2])
        assert {k: calm_status[k] for k in published} == published
    finally:
        for _group, _alerts_topic, members in runs.values():
            for member in members:
                if member.proc.poll() is None:
                    assert member.terminate() == 0, member.log()
    calm = _alerts(kafka_bootstrap, runs["calm"][1])
    killed = _alerts(kafka_bootstrap, runs["killed"][1])
    drifted = {m.name for m in swapped}
    assert set(calm) == drifted  # judged against the shifted reference: drift
    assert all(a["reference_id"] == published[f"{name}@v1"] for name in calm for a in calm[name])
    assert killed == calm
    n = sum(len(a) for a in calm.values())
    kinds = sorted({a["kind"] for v in calm.values() for a in v})
    print(  # the figures of the closing note (pytest -s)
        f"\nkill-and-compare: {len(MODELS)} models, {2 * total} events on 6 partitions; "
        f"{len(published)} references published after event {total} "
        f"({sorted(published.values())}); a member killed then, holding {sorted(held[1])}; "
        f"a member joined at {joined_at} events committed, taking {sorted(moved)}; "
        f"alerts: undisturbed {n}, killed group {sum(len(a) for a in killed.values())}, "
        f"equal field for field: {killed == calm}; kinds {kinds}"
    )


def test_the_publish_command(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stream_monitor.cli import main
    from stream_monitor.reference.published import Assembler

    topic = unique("references")
    good = tmp_path / "scorer.csv"
    rows = MODELS[0].reference(200)
    names = MODELS[0].feature_names
    good.write_text(
        ",".join([*names, "prediction"])
        + "\n"
        + "".join(
            ",".join(str(r["features"][n]) for n in names) + f",{r['prediction']}\n"  # type: ignore[index]
            for r in rows
        )
    )
    args = ["reference", "publish", "scorer", str(good), "--version", "v4"]
    kafka = ["--bootstrap-servers", kafka_bootstrap, "--references-topic", topic]
    assert main([*args, *kafka]) == 0
    said = capsys.readouterr().out
    expected = reference_id(canonical_text(rows))
    assert f"published scorer@v4: {expected} (200 events, 1 chunks)" in said
    assembler = Assembler()
    for msg in read_topic(kafka_bootstrap, topic):
        assembler.add(msg.key(), msg.value())
    assert assembler.manifests["scorer@v4"].reference_id == expected
    assert main(args) == 2  # no references topic: says so
    assert "references_topic" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"features": {"a": 1}, "prediction": 1}\n{oops\n')
    assert main(["reference", "publish", "scorer", str(bad), *kafka]) == 2
    assert f"{bad}:2: not valid JSON" in capsys.readouterr().err
