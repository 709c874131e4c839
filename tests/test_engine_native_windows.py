"""The native core writes the windows of the models it can (engine/native_windows.py) and the
engine decides exactly as when the Python writes them: the same alerts, checks, counts,
dead letters and latency histograms, and windows equal array for array, whatever the
batch sizes, odd records, bootstrap references, PSI bins or check cadence."""

from __future__ import annotations

import random

import numpy as np
import orjson
import pytest

from stream_monitor.alerts.outcome import LATENCY_BUCKETS_SECONDS, BatchOutcome
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.engine.core import Engine
from stream_monitor.engine.observers import EngineObserver
from stream_monitor.tools.synthetic import SyntheticModel, interleave
from tests.engine_sameness import WINDOW_COLUMNS, assert_same_models, run_batches
from tests.helpers import batch_of, references

DRIFTING = SyntheticModel("fraud", drift_start=2500, drift_end=5000, drift_shift=2.0)
STEADY = SyntheticModel("churn", n_features=7)
BOOTSTRAPPED = SyntheticModel("no-reference", n_features=5)


def _odd(event: dict[str, object], rng: random.Random) -> bytes:
    """An event the fast path cannot take as it is: a dead letter, a record the Python
    decodes, a missing or infinite value."""
    e = dict(event)
    features = dict(e["features"])  # type: ignore[call-overload]
    kind = rng.randrange(7)
    if kind == 0:
        features["f00"] = "1.25"  # a number as a string: read by the Python
    elif kind == 1:
        features["f01"] = {"x": 1}  # a bad_type dead letter of its model
    elif kind == 2:
        e["timestamp"] = "2027-01-02T03:04:05+00:00"  # RFC 3339: the Python's
    elif kind == 3:
        features["f02"] = None  # missing
    elif kind == 4:
        return orjson.dumps(e)[:-3]  # not JSON
    elif kind == 5:
        e["model_version"] = f"v{rng.randrange(3)}"
    else:
        return orjson.dumps({**e, "features": features}).replace(b'"f03":', b'"f03":1e999,"x":')
    e["features"] = features
    return orjson.dumps(e)


def _stream(seed: int, events: int = 4000) -> list[bytes]:
    rng = random.Random(seed)
    streams = [m.events(0, events, seed=seed) for m in (DRIFTING, STEADY, BOOTSTRAPPED)]
    merged = interleave(streams)
    rng.shuffle(merged[: len(merged) // 3])  # uneven runs of one model early on
    return [_odd(e, rng) if rng.random() < 0.02 else orjson.dumps(e) for e in merged]


def _latency_histogram(outcomes: list[BatchOutcome]) -> dict[str, tuple[list[int], float]]:
    """Per model: counts per bucket and the sum of seconds, whichever way they came."""
    bounds = np.array(LATENCY_BUCKETS_SECONDS)
    out: dict[str, tuple[list[int], float]] = {}
    for o in outcomes:
        rows: list[tuple[str, np.ndarray, float]] = []
        for model, ms in o.latencies_ms.items():
            seconds = ms / 1000.0
            counts = np.bincount(np.searchsorted(bounds, seconds), minlength=bounds.size + 1)
            rows.append((model, counts, float(seconds.sum())))
        for binned in o.latency_counts:
            for i, model in enumerate(binned.models):
                rows.append((model, binned.counts[i], float(binned.sums[i])))
        for model, counts, total in rows:
            have, s = out.get(model, ([0] * (bounds.size + 1), 0.0))
            out[model] = ([a + int(b) for a, b in zip(have, counts, strict=True)], s + total)
    return out


class _Checks(EngineObserver):
    """Reads only the checks: the native windows stay on."""

    def __init__(self) -> None:
        self.scores: list[tuple[str, str, float]] = []

    def checked(self, result, ctx, alert) -> None:  # type: ignore[no-untyped-def]
        self.scores.append((ctx.model, result.kind, result.score))


@pytest.mark.parametrize(
    "seed,sizes,numeric_test,rule,versions",
    [
        (1, [500], "ks", "window", "separate"),
        (2, [137, 1, 64], "ks", "both", "separate"),
        (3, [1000, 3], "psi", "sequential", "separate"),
        (4, [250], "jensenshannon", "window", "separate"),
        (5, [333, 2], "ks", "page_hinkley", "separate"),  # the default rule, Page-Hinkley
        # one window for every version: each model's version follows its events' (the
        # decoder's columns, reused from batch to batch, carry their versions run by run)
        (6, [90, 7, 311], "ks", "both", "shared"),
    ],
)
def test_native_and_python_windows_give_the_same_engine(
    seed: int, sizes: list[int], numeric_test: str, rule: str, versions: str
) -> None:
    values = _stream(seed)
    settings = DetectorSettings(
        version_policy=versions,
        bootstrap_reference=700,
        check_every=50,
        window_size=400,
        numeric_test=numeric_test,
        input_drift_rule="sequential" if rule == "page_hinkley" else rule,
        concept_detector="page_hinkley" if rule == "page_hinkley" else "adwin",
        page_hinkley_threshold=5.0,
    )
    refs = references([DRIFTING, STEADY], n=2000)
    # up to three threads whatever the machine's cores: a batch's models run side by side
    # when they have 64 events a thread to share (`fleet.rs`), on one thread below
    native = Engine(settings, refs, native_threads=3)
    python = Engine(settings, refs, native_windows=False)
    assert native._native.fleet.threads == 3
    seen_native, seen_python = _Checks(), _Checks()
    native.observe(seen_native)
    python.observe(seen_python)
    got, want = run_batches(native, values, sizes), run_batches(python, values, sizes)

    suffix = "@v1" if versions == "separate" else ""
    assert all(native.writes_natively(f"{m}{suffix}") for m in ("fraud", "churn", "no-reference"))
    assert native._native.fleet.side_by_side > 0  # and the small batches ran on one thread
    assert not any(python.writes_natively(m) for m in python.models)
    assert sum(len(o.latency_counts) for o in got) > 0
    assert seen_native.scores == seen_python.scores and len(seen_native.scores) > 100
    alerts = [a.model_dump() for o in got for a in o.alerts]
    assert alerts == [a.model_dump() for o in want for a in o.alerts]
    assert any(a["model"] == "fraud" for a in alerts)
    assert any(a["test"] == "cusum" for a in alerts) == (rule != "window")
    for g, w in zip(got, want, strict=True):
        assert g.dead_letters == w.dead_letters
        assert g.dead_letter_models == w.dead_letter_models
        assert g.ok_counts == w.ok_counts
        assert g.windows == w.windows
        assert g.check_counts == w.check_counts
        assert list(g.checks) == list(w.checks)
    assert _latency_histogram(got) == _latency_histogram(want)
    assert_same_models(native, python)
    for name, model in native.models.items():
        other = python.models[name]
        mine, theirs = model.window, other.window
        if mine is None or theirs is None:  # both: compared above
            continue
        for tally in ("missing_count", "nonfinite_count", "outside_count", "bin_counts"):
            assert np.array_equal(getattr(mine, tally), getattr(theirs, tally)), (name, tally)
        assert model.errors.changed == other.errors.changed
        assert model.errors.detector is not None and other.errors.detector is not None
        assert model.errors.detector.state() == other.errors.detector.state()
        if rule != "window" and model.reference is not None:
            assert model.charts is not None and other.charts is not None
            assert model.charts.state() == other.charts.state()


def test_an_observer_of_events_turns_the_native_windows_off() -> None:
    class Events(EngineObserver):
        def events_taken(self, taken) -> None:  # type: ignore[no-untyped-def]
            pass

    engine = Engine(DetectorSettings(), references([STEADY], n=500))
    engine.process(batch_of([orjson.dumps(e) for e in STEADY.events(0, 10)]))
    assert engine.writes_natively("churn@v1")
    engine.observe(Events())
    assert not engine.writes_natively("churn@v1")
    engine.process(batch_of([orjson.dumps(e) for e in STEADY.events(10, 10)]))
    assert not engine.writes_natively("churn@v1") and engine.models["churn@v1"].events_seen == 20


def test_a_model_leaves_the_fleet_with_its_partition() -> None:
    engine = Engine(DetectorSettings(), references([STEADY], n=500))
    engine.process(batch_of([orjson.dumps(e) for e in STEADY.events(0, 10)]))
    assert engine.writes_natively("churn@v1")
    engine.forget_partitions({("predictions", 0)})
    assert not engine.writes_natively("churn@v1") and "churn@v1" not in engine.models


def test_models_with_the_same_features_share_one_schema() -> None:
    twins = [SyntheticModel("a"), SyntheticModel("b")]
    engine = Engine(DetectorSettings(window_size=200), references([*twins, STEADY], n=1000))
    streams = [m.events(0, 10, seed=1) for m in (*twins, STEADY)]
    engine.process(batch_of([orjson.dumps(e) for e in interleave(streams)]))
    fleet = engine._native.fleet
    assert len(fleet) == 3 and fleet.schemas == 2  # the twins' names are one schema
    engine._native.forget("a@v1")
    assert len(fleet) == 2 and fleet.schemas == 2
    engine._native.forget("churn@v1")
    assert len(fleet) == 1 and fleet.schemas == 1  # a schema leaves with its last model


def test_two_models_cannot_be_enrolled_over_one_window() -> None:
    """The fleet writes a window's arrays through plain slices: it refuses a model whose
    arrays overlap another's (native/src/spans.rs), naming the array."""
    twins = [SyntheticModel("a"), SyntheticModel("b")]
    engine = Engine(DetectorSettings(window_size=200), references(twins, n=500))
    streams = [m.events(0, 10, seed=1) for m in twins]
    engine.process(batch_of([orjson.dumps(e) for e in interleave(streams)]))
    a, b = engine.models["a@v1"], engine.models["b@v1"]
    b.window = a.window
    with pytest.raises(ValueError, match=r"features: the array's memory .* overlaps"):
        engine._native.enrol(b)
    assert engine.writes_natively("a@v1") and not engine.writes_natively("b@v1")
    engine.process(batch_of([orjson.dumps(e) for e in twins[0].events(10, 10, seed=1)]))
    assert a.events_seen == 20


def test_models_sharing_one_reference_are_written_as_with_their_own() -> None:
    """A reference's values are only read: models holding one reference object share it in
    the fleet, and their windows are those of models holding copies of it."""
    twins = [SyntheticModel("a"), SyntheticModel("b")]
    one = references([twins[0]], n=500)["a"]
    shared = {"a": one, "b": one}
    own = {"a": references([twins[0]], n=500)["a"], "b": references([twins[0]], n=500)["a"]}
    values = [orjson.dumps(e) for e in interleave([m.events(0, 300, seed=1) for m in twins])]
    windows = []
    for refs in (shared, own):
        engine = Engine(DetectorSettings(window_size=200), refs)
        for i in range(0, len(values), 150):
            engine.process(batch_of(values[i : i + 150]))
        assert engine.writes_natively("a@v1") and engine.writes_natively("b@v1")
        windows.append({k: engine.models[k].window for k in ("a@v1", "b@v1")})
    for key in ("a@v1", "b@v1"):
        for column in WINDOW_COLUMNS:
            left, right = getattr(windows[0][key], column), getattr(windows[1][key], column)
            np.testing.assert_array_equal(left, right, err_msg=f"{key} {column}")


def test_an_array_reshaped_in_place_is_refused_not_written() -> None:
    engine = Engine(DetectorSettings(window_size=200), references([STEADY], n=500))
    engine.process(batch_of([orjson.dumps(e) for e in STEADY.events(0, 10)]))
    window = engine.models["churn@v1"].window
    assert window is not None
    window.features.resize((201, window.n_features), refcheck=False)
    with pytest.raises(RuntimeError, match="features: the array was reshaped or reallocated"):
        engine.process(batch_of([orjson.dumps(e) for e in STEADY.events(10, 10)]))


def test_many_models_give_the_same_engine_on_one_thread_and_on_three() -> None:
    """With many models a batch's runs go through a pipeline of chunks (native/src/runs.rs):
    taken, run on helper threads and given back in order. Checks fall mid-batch for some
    models and not others; everything the batch returns, in its order, and every window
    are those of one thread."""
    models = [
        SyntheticModel(f"m{i:02d}", n_features=3 + i % 4, drift_start=900, drift_shift=1.5)
        for i in range(40)
    ]
    rng = random.Random(7)
    merged = interleave([m.events(0, 60 + 25 * (i % 5), seed=i) for i, m in enumerate(models)])
    rng.shuffle(merged)
    values = [_odd(e, rng) if rng.random() < 0.01 else orjson.dumps(e) for e in merged]
    settings = DetectorSettings(check_every=20, window_size=60, input_drift_rule="both")
    refs = references(models, n=300)
    one = Engine(settings, refs, native_threads=1)
    three = Engine(settings, refs, native_threads=3)
    sizes = [700, 64, 1000, 5]
    got, want = run_batches(three, values, sizes), run_batches(one, values, sizes)
    assert three._native.fleet.side_by_side > 0 and one._native.fleet.side_by_side == 0
    assert sum(len(o.checks) for o in got) > 40
    for g, w in zip(got, want, strict=True):
        assert [a.model_dump() for a in g.alerts] == [a.model_dump() for a in w.alerts]
        assert list(g.ok_counts.items()) == list(w.ok_counts.items())
        assert list(g.windows.items()) == list(w.windows.items())
        assert list(g.checks) == list(w.checks)
        assert g.check_counts == w.check_counts
        assert g.dead_letters == w.dead_letters
    assert_same_models(three, one)
