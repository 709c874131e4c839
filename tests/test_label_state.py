"""Durable label state: a run that loses its memory again and again, restored from the
changelog each time, joins and alerts exactly as an uninterrupted one."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import pytest

from stream_monitor.alerts.outcome import BatchOutcome
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.engine.core import Engine
from stream_monitor.labels.join import LabelJoin
from stream_monitor.labels.pending import PendingRing, id_hashes
from stream_monitor.sources.records import RecordBatch
from stream_monitor.state.label_rings import RingTracker, position_record, split
from stream_monitor.state.label_rings import restore as restore_rings
from stream_monitor.state.models import StateTracker, changelog_partition
from stream_monitor.state.restore import restore
from stream_monitor.tools.synthetic import SyntheticModel, interleave
from tests.helpers import batches_of_events, references
from tests.label_helpers import LABELS_TOPIC, label_batches, labels_of, without_actuals
from tests.test_state import Changelog

MODELS = [
    SyntheticModel("rises", n_features=4),  # its labels' error rises from event 2500
    SyntheticModel("steady", n_features=4),
    SyntheticModel("boot", n_features=4),  # no reference: bootstrapped from its events
]
SETTINGS = DetectorSettings(
    window_size=400, check_every=50, min_labeled_events=50, bootstrap_reference=600
)
HORIZON_EVENTS, HORIZON_SECONDS = 700, 30.0


def steps(seed: int) -> list[tuple[str, RecordBatch]]:
    """Prediction batches of random sizes, each followed by labels of earlier predictions
    (a random share of those not labelled yet, shuffled, some never)."""
    rng = random.Random(seed)
    events = interleave([m.events(0, 4000) for m in MODELS])
    truth = {e["event_id"]: lab for e, lab in zip(events, _labels(events), strict=True)}
    out: list[tuple[str, RecordBatch]] = []
    pos, waiting, offset = 0, [], 0
    while pos < len(events):
        size = rng.randint(30, 900)
        chunk = events[pos : pos + size]
        out.extend(("predictions", b) for b in batches_of_events(without_actuals(chunk), size))
        pos += size
        waiting.extend(e["event_id"] for e in chunk if rng.random() < 0.9)
        rng.shuffle(waiting)
        ready, waiting = waiting[: len(waiting) * 2 // 3], waiting[len(waiting) * 2 // 3 :]
        labels = [truth[i] for i in ready]
        if rng.random() < 0.2 and labels:
            labels.append(labels[0])  # a repeated label
        for batch in label_batches(labels, rng.randint(50, 700)):
            batch.offsets = [offset + i for i in range(len(batch))]
            offset += len(batch)
            out.append(("labels", batch))
    return out


def _labels(events: list[dict[str, object]]) -> list[dict[str, object]]:
    out = []
    for model in MODELS:
        mine = [e for e in events if e["model"] == model.name]
        shift = 3.0 if model.name == "rises" else 0.0
        out.extend(labels_of(mine, shift_from=2500, shift=shift))
    by_id = {x["event_id"]: x for x in out}
    return [by_id[e["event_id"]] for e in events]


@dataclass
class Member:
    """What the service keeps in memory for the engine and the join (lost in a crash)."""

    engine: Engine = field(default_factory=lambda: Engine(SETTINGS, references(MODELS[:2], 2000)))
    tracker: StateTracker = field(default_factory=lambda: StateTracker(SETTINGS.window_size))
    rings: RingTracker = field(default_factory=RingTracker)

    def __post_init__(self) -> None:
        self.join = LabelJoin(HORIZON_EVENTS, HORIZON_SECONDS)
        self.engine.observe(self.join)

    def step(self, kind: str, batch: RecordBatch, log: Changelog) -> BatchOutcome:
        """As ModelKeeper.process: the outcome and its state records."""
        labels = kind == "labels"
        outcome = self.join.apply(self.engine, batch) if labels else self.engine.process(batch)
        for model, n in outcome.ok_counts.items():
            self.tracker.appended(model, n)
        for model, rows in outcome.patched_rows.items():
            self.tracker.patched(model, rows)
        touched = [*outcome.ok_counts, *outcome.patched_rows]
        records = self.tracker.records(self.engine, touched)
        records += self.rings.records(self.join, touched)
        if labels:
            records.append(position_record(LABELS_TOPIC, 0, batch.offsets[-1] + 1))
        for r in records:
            assert changelog_partition(self.engine, r) == 0
        log.write(records)
        return outcome

    @classmethod
    def restored(cls, log: Changelog) -> tuple[Member, dict[int, int]]:
        member = cls()
        windows, rings, positions = split(log.read(), LABELS_TOPIC)
        restore(member.engine, windows, member.tracker)
        restore_rings(member.join, rings, member.rings)
        return member, positions


def _run(seed: int, crashes: int) -> tuple[Member, list[BatchOutcome], Changelog]:
    plan = steps(seed)
    crash_at = set(random.Random(seed + 1).sample(range(len(plan)), crashes))
    member, log, outcomes = Member(), Changelog(), []
    for i, (kind, batch) in enumerate(plan):
        outcomes.append(member.step(kind, batch, log))
        if i in crash_at:  # everything in memory is lost; back from the changelog
            member, positions = Member.restored(log)
            labelled = [b for k, b in plan[: i + 1] if k == "labels"]
            assert positions == ({0: labelled[-1].offsets[-1] + 1} if labelled else {})
    return member, outcomes, log


@pytest.mark.parametrize("seed", range(3))
def test_crashes_neither_lose_nor_repeat_a_label(seed: int) -> None:
    expected_member, expected, _ = _run(seed, crashes=0)
    member, got, log = _run(seed, crashes=12)
    alerts = [a.model_dump() for o in got for a in o.alerts]
    assert alerts == [a.model_dump() for o in expected for a in o.alerts]
    kinds = {(a["model"], a["kind"], a["status"]) for a in alerts}
    assert ("rises", "performance", "firing") in kinds  # the labels' error rise was seen
    assert ("rises", "concept_drift", "firing") in kinds
    assert [o.label_counts for o in got] == [o.label_counts for o in expected]
    statuses = {s for o in got for (_m, s) in o.label_counts}
    assert {"joined", "late", "unmatched"} <= statuses
    for name, state in expected_member.engine.models.items():
        other = member.engine.models[name]
        assert other.labels_joined == state.labels_joined > 0
        assert other.checks == state.checks
        if state.window is not None:
            assert other.window is not None
            assert np.array_equal(other.window.error, state.window.error, equal_nan=True)
            assert np.array_equal(other.window.actual, state.window.actual, equal_nan=True)
        a, b = expected_member.join.rings[name], member.join.rings[name]
        assert (a.total, a.newest, a.index) == (b.total, b.newest, b.index)
        for f, x in a.arrays().items():
            assert np.array_equal(x, b.arrays()[f]), f
    keys = [k for k in log.records if k.startswith(b"rises\x1f")]
    assert len(keys) <= 2 + 64 + 64 + 1 + 256  # bounded after compaction


def test_a_changed_horizon_keeps_what_still_fits() -> None:
    """Restored with another label_horizon_events, the newest pending predictions remain."""
    ring = PendingRing(100)
    ids = id_hashes([f"e{i}" for i in range(250)])
    zeros = np.zeros(250, np.uint64)
    ring.remember(ids, np.arange(250.0), zeros, np.arange(250.0), np.arange(250))
    ring.join(int(ids[240]), 240)
    join, tracker = LabelJoin(50, 1e9), RingTracker()
    join.rings["m"] = ring
    log = Changelog()
    log.write(tracker.records(join, ["m"]))
    smaller, small_tracker = LabelJoin(50, 1e9), RingTracker()
    restore_rings(smaller, log.read(), small_tracker)
    back = smaller.rings["m"]
    assert back.capacity == 50 and back.nbytes() == 50 * 50
    assert sorted(back.index) == sorted(int(ids[i]) for i in range(200, 250) if i != 240)
    assert small_tracker.progress["m"].generation == 0  # a full record comes next


def test_ring_changelog_bytes_are_bounded() -> None:
    """About 1.5 ring slots (50 bytes each) per remembered prediction, and a bounded number
    of keys, whatever the number of predictions."""
    model = SyntheticModel("steady", n_features=4)
    join, tracker, log = LabelJoin(2000, 1e9), RingTracker(), Changelog()
    engine = Engine(DetectorSettings(), references([model], 2000))
    engine.observe(join)
    events = without_actuals(model.events(0, 40_000))
    for batch in batches_of_events(events, 250):
        outcome = engine.process(batch)
        log.write(tracker.records(join, outcome.ok_counts))
    per_event = log.bytes_written / len(events)
    assert 50 < per_event < 2 * 50
    assert len(log.records) <= 1 + 256
