"""Compact references: counts within their bound, KS within e/m of scipy, the rest unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from scipy.stats import ks_2samp

from stream_monitor.arrays import FloatArray
from stream_monitor.cli import main
from stream_monitor.config.detector import DetectorSettings
from stream_monitor.detectors.ks import as_scipy_default, ks_keys, ks_pvalue, ks_statistic
from stream_monitor.engine.core import Engine
from stream_monitor.reference import summary as reference_summary
from stream_monitor.reference.compact import compact_references
from stream_monitor.reference.prepared import InvalidReference, PreparedReference
from stream_monitor.reference.summary import ReferenceSummary, bound
from stream_monitor.tools.synthetic import SyntheticModel, to_jsonl
from tests.helpers import batches_of_events, references


def _prepared(ref: FloatArray) -> PreparedReference:
    names = [f"x{j}" for j in range(ref.shape[1])]
    return PreparedReference.from_arrays("m", names, ref, np.zeros(ref.shape[0]), 10)


def _ks(prepared: PreparedReference, window: FloatArray) -> FloatArray:
    right, left = prepared.cdf_counts(window)
    keys = ks_keys(right, left, ~np.isfinite(window), prepared.key_bits)
    raw, sizes = ks_statistic(np.asfortranarray(keys), prepared.sizes, prepared.key_bits)
    return as_scipy_default(raw, prepared.sizes, sizes)


def _tied_data(rng: np.random.Generator, m: int, n: int) -> tuple[FloatArray, FloatArray]:
    """Reference and shifted window with ties (rounded, integer, constant) and missing values."""
    ref = np.round(rng.normal(size=(m, 5)) * 10, 1)
    ref[:, 1] = rng.integers(0, 400, m)  # many ties, more distinct values than knots
    ref[:, 2] = rng.integers(0, 7, m)  # few distinct values: the summary is exact
    ref[:, 3] = 3.0  # constant
    ref[rng.random((m, 5)) < 0.05] = np.nan
    win = np.round(rng.normal(0.3, 1.2, size=(n, 5)) * 10, 1)
    win[:, 1] = rng.integers(-20, 420, n)
    win[:, 2] = rng.integers(-1, 8, n)
    win[:, 3] = rng.choice([2.0, 3.0, 4.0], n)
    win[rng.random((n, 5)) < 0.05] = np.nan
    return ref, win


def test_ks_from_the_summary_is_within_its_bound_of_scipy_on_many_seeds() -> None:
    worst = 0.0
    for seed in range(60):
        rng = np.random.default_rng(seed)
        m, n = int(rng.integers(300, 4000)), int(rng.integers(20, 1200))
        q = int(rng.choice([8, 32, 100]))
        ref, win = _tied_data(rng, m, n)
        exact = _prepared(ref)
        compact = exact.compacted(q)
        assert compact.summary is not None
        ours, theirs = _ks(exact, win), _ks(compact, win)
        for j in range(ref.shape[1]):
            a, b = ref[:, j], win[:, j]
            scipy_stat = ks_2samp(a[np.isfinite(a)], b[np.isfinite(b)]).statistic
            assert ours[j] == scipy_stat  # the exact mode stays bit for bit
            limit = compact.summary.ks_bound[j]
            assert limit <= bound(compact.sizes, q) + 1e-15  # the a-priori bound holds
            assert abs(theirs[j] - scipy_stat) <= limit + 1e-12
            if limit > 0:
                worst = max(worst, abs(theirs[j] - scipy_stat) / limit)
        assert compact.summary.max_error[2] == compact.summary.max_error[3] == 0
        assert theirs[2] == ours[2] and theirs[3] == ours[3]  # few distinct values: exact
    assert worst > 0.5  # the bound is not loose on these streams


def test_the_bound_is_attained_by_a_window_at_the_top_of_the_widest_gap() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(5000, 1))
    compact = _prepared(ref).compacted(50)
    assert compact.summary is not None
    s = compact.summary
    gap = int(np.argmax(s.below[0, 1 : s.n_knots[0]] - s.between[0, 1 : s.n_knots[0]])) + 1
    col = np.sort(ref[:, 0])
    x = col[int(s.below[0, gap]) - 1]  # the gap's last reference value: R(x) = b
    window = np.array([[x]])
    exact = ks_2samp(ref[:, 0], window[:, 0]).statistic
    assert s.max_error[0] == int(np.ceil((s.below[0, gap] - s.upto[0, gap - 1]) / 2))
    assert abs(_ks(compact, window)[0] - exact) == pytest.approx(s.ks_bound[0], abs=1e-12)


@pytest.mark.parametrize("points", [2, 5, 64])
def test_counts_are_monotone_exact_at_knots_and_ends_and_within_max_error(points: int) -> None:
    rng = np.random.default_rng(points)
    col = np.sort(np.round(rng.exponential(size=900), 1))
    exact = _prepared(col[:, None])
    s = ReferenceSummary.build([col], points)
    grid = np.unique(np.concatenate([col, (col[1:] + col[:-1]) / 2, [col[0] - 1, col[-1] + 1]]))
    grid = np.concatenate([grid, [np.inf, -np.inf, np.nan]])[:, None]
    right, left = s.cdf_counts(grid)
    true_right, true_left = exact.cdf_counts(grid)
    assert np.all(np.abs(right - true_right) <= s.max_error[0])
    assert np.all(np.abs(left - true_left) <= s.max_error[0])
    assert np.any(np.abs(right - true_right) == s.max_error[0])  # the stored error is reached
    finite = np.isfinite(grid[:, 0])
    assert np.all(np.diff(right[finite, 0]) >= 0) and np.all(np.diff(left[finite, 0]) >= 0)
    assert np.all(left <= right)
    at_knots = np.isin(grid[:, 0], s.knots[0])
    assert np.array_equal(right[at_knots], true_right[at_knots])
    assert np.array_equal(left[at_knots], true_left[at_knots])
    outside = (grid[:, 0] < col[0]) | (grid[:, 0] > col[-1]) | ~finite
    assert np.array_equal(right[outside], true_right[outside])  # 0 below, m above, NaN -> m
    assert np.array_equal(left[outside], true_left[outside])
    assert s.max_error[0] <= np.ceil((np.ceil((col.size - 1) / (points - 1)) - 1) / 2)


def test_broadcast_and_binary_search_look_ups_agree() -> None:
    rng = np.random.default_rng(7)
    ref = np.round(rng.normal(size=(3000, 4)), 2)
    s = ReferenceSummary.build([np.sort(ref[:, j]) for j in range(4)], 40)
    values = np.round(rng.normal(size=(600, 4)) * 1.5, 2)
    values[::17] = np.nan
    values[::29, 1] = np.inf
    big = s.cdf_counts(values)  # 600 * 4 * 40 comparisons: binary search
    assert values.shape[0] * 4 * s.knots.shape[1] > reference_summary.BROADCAST_MAX
    for start in range(0, 600, 50):  # 50 rows: one broadcast comparison
        small = s.cdf_counts(values[start : start + 50])
        assert np.array_equal(small[0], big[0][start : start + 50])
        assert np.array_equal(small[1], big[1][start : start + 50])


def test_small_empty_and_constant_columns_stay_exact() -> None:
    col_small = np.sort(np.random.default_rng(1).normal(size=30))
    s = ReferenceSummary.build([col_small, np.empty(0), np.full(50, 2.5)], 100)
    assert s.max_error.tolist() == [0, 0, 0]
    values = np.array([[col_small[4], 1.0, 2.5], [-9.0, np.nan, 3.0], [0.1234, -np.inf, 2.0]])
    right, left = s.cdf_counts(values)
    for j, col in enumerate([col_small, np.empty(0), np.full(50, 2.5)]):
        assert right[:, j].tolist() == np.searchsorted(col, values[:, j], "right").tolist()
        assert left[:, j].tolist() == np.searchsorted(col, values[:, j], "left").tolist()


def test_compact_reference_is_small_and_keeps_sizes_p_values_and_bins() -> None:
    rng = np.random.default_rng(11)
    ref = rng.normal(size=(10_000, 20))
    exact = _prepared(ref)
    compact = exact.compacted(100, with_bins=True)
    assert exact.nbytes() - compact.nbytes() > 1_500_000  # the 1.6 MB of sorted columns go
    assert compact.summary is not None and compact.summary.nbytes <= 100 * 20 * 21
    assert np.array_equal(compact.sizes, exact.sizes) and compact.key_bits == exact.key_bits
    win = rng.normal(0.1, 1, size=(1000, 20))
    stat = _ks(compact, win)
    p = ks_pvalue(stat, compact.sizes, np.full(20, 1000))
    scipy_p = [ks_2samp(ref[:, j], win[:, j], method="asymp").pvalue for j in range(20)]
    assert np.all(np.abs(stat - _ks(exact, win)) <= compact.summary.ks_bound + 1e-12)
    # p-values use the original size m: those of the exact statistic, moved by the error only
    same = ks_pvalue(_ks(exact, win), exact.sizes, np.full(20, 1000))
    assert np.allclose(same, scipy_p, rtol=1e-9)
    assert np.all((p > 0) & (p <= 1))
    assert np.array_equal(compact.numeric().edges, exact.numeric().edges)
    assert np.array_equal(compact.numeric().bin_counts, exact.numeric().bin_counts)
    with pytest.raises(InvalidReference, match="without bins"):
        exact.compacted(100).numeric()


def _engine_checks(
    settings: DetectorSettings, compact: bool
) -> tuple[dict[str, list[float]], dict[str, object], list[str]]:
    models = [SyntheticModel("a", n_features=6, drift_start=600)]
    refs = references(models, 3000)
    if compact:
        refs = compact_references(refs, settings)
    engine = Engine(settings, refs)
    events = models[0].events(0, 1500)
    for e in events[::50]:  # some values far out of the reference's range
        e["features"]["f00"] = 1e6  # type: ignore[index]
    scores: dict[str, list[float]] = {}
    quality: dict[str, object] = {}
    for batch in batches_of_events(events, 250):
        for result in engine.process(batch).checks.get("a@v1", []):
            if result.kind == "input_drift":
                scores.setdefault("scores", []).extend(f.score for f in result.features())
            if result.kind == "data_quality":
                quality[str(len(quality))] = (result.score, result.details)
    return scores, quality, engine.models["a@v1"].notes


def test_engine_with_compact_reference_ks_within_bound_quality_and_psi_unchanged() -> None:
    ks = DetectorSettings(window_size=500, check_every=250, reference_summary=64)
    exact_scores, exact_quality, _ = _engine_checks(ks, compact=False)
    scores, quality, notes = _engine_checks(ks, compact=True)
    limit = bound(np.array([3000]), 64)
    diffs = np.abs(np.array(scores["scores"]) - np.array(exact_scores["scores"]))
    assert len(diffs) == 6 * 5 and np.all(diffs <= limit) and np.any(diffs > 0)
    assert quality == exact_quality  # out of range: min and max are knots, so exact
    assert any("summarised by at most 64 points" in n for n in notes)
    psi = DetectorSettings(
        window_size=500, check_every=250, numeric_test="psi", reference_summary=64
    )
    assert _engine_checks(psi, compact=True)[0] == _engine_checks(psi, compact=False)[0]


def test_settings_per_model_and_tests_that_need_the_whole_column() -> None:
    settings = DetectorSettings.model_validate(
        {
            "reference_summary": 32,
            "models": {
                "b": {"reference_summary": 0},
                "c": {"numeric_test": "wasserstein"},
                "d": {"drift_rule": "gate", "gate_effect": "wasserstein"},
            },
        }
    )
    models = [SyntheticModel(name, n_features=3) for name in "abcd"]
    refs = compact_references(references(models, 500), settings)
    assert refs["a"].summary is not None and not refs["a"].sorted_columns[0].size
    assert refs["b"].summary is None  # 0: exact for this model
    for name in "cd":
        assert refs[name].summary is None
        assert any("wasserstein reads the whole" in n for n in refs[name].notes)
    with pytest.raises(ValueError, match="reference_summary"):
        DetectorSettings(reference_summary=-1)
    assert DetectorSettings().reference_summary is None


def test_replay_and_bootstrap_use_the_compact_reference(tmp_path: Path) -> None:
    """--reference-summary reaches the loaded references (replay, run) and the references
    a model bootstraps from its first events; the KS scores stay within the bound."""
    model = SyntheticModel("a", n_features=6, drift_start=3000, drift_shift=2.0)
    events = model.events(0, 5000)
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "a.jsonl").write_bytes(to_jsonl(model.reference(5000)))
    log = tmp_path / "events.jsonl"
    log.write_bytes(to_jsonl(events))
    scores = {}
    for points in (0, 50):
        out = tmp_path / f"alerts-{points}.jsonl"
        args = ["replay", str(log), "--reference", str(tmp_path / "ref"), "--out", str(out)]
        args += ["--input-drift-rule", "window"]  # the KS scores of the window test
        assert main([*args, "--reference-summary", str(points)]) == 0
        alerts = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        drift = [a for a in alerts if a["kind"] == "input_drift"]
        assert [a["status"] for a in drift] == ["firing"]
        scores[points] = {f["name"]: f["score"] for f in drift[0]["features"]}
        assert 3000 < drift[0]["events_seen"] <= 3300
    worst = bound(np.array([5000]), 50)
    assert all(abs(scores[50][k] - scores[0][k]) <= worst for k in scores[0])
    assert scores[50] != scores[0]  # summarised: not the exact figures any more

    engine = Engine(DetectorSettings(bootstrap_reference=1000, reference_summary=50), {})
    for batch in batches_of_events(events[:1500]):
        engine.process(batch)
    booted = engine.models["a@v1"].reference
    assert booted is not None and booted.summary is not None
