"""Categorical drift statistics against scipy and closed forms: chi-squared, PSI, JS.

Windows are random over many seeds, with categories the reference never saw, missing
values (None), bools, constant reference columns and empty windows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chisquare

from stream_monitor.detectors.categorical import (
    MISSING,
    UNSEEN,
    UNSEEN_PSEUDO_COUNT,
    CategoricalReference,
    CategoryTable,
    category_counts,
    chi_squared,
    js_distance,
    psi,
)
from stream_monitor.detectors.numeric import PSI_EPSILON
from tests.test_detectors_numeric import assert_js_matches

LETTERS = ["a", "b", "c", "d", "e"]


def _column(
    rng: np.random.Generator, n: int, values: Sequence[object], p: np.ndarray
) -> list[object]:
    return [values[i] for i in rng.choice(len(values), size=n, p=p)]


def _data(
    seed: int, n_win: int | None = None
) -> tuple[Sequence[Sequence[object]], Sequence[Sequence[object]]]:
    """Reference and window columns: strings, bools, a constant column, None and unseen."""
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 2000))
    n = int(rng.integers(0, 400)) if n_win is None else n_win
    p_ref = rng.dirichlet(np.ones(5))
    p_win = 0.7 * p_ref + 0.3 * rng.dirichlet(np.ones(5))
    ref: list[Sequence[object]] = [
        _column(rng, m, [*LETTERS[:4], None], p_ref),  # strings with missing values
        _column(rng, m, [True, False, None, True, False], p_ref),  # bools
        ["only"] * m,  # constant in the reference
        _column(rng, m, LETTERS, p_ref),
    ]
    unseen = 0.0 if seed % 3 == 0 else 0.02
    win = [
        _column(rng, n, [*LETTERS[:4], None], p_win),
        _column(rng, n, [True, False, None, True, False], p_win),
        _column(rng, n, ["only", "other", None], np.array([0.9 - unseen, unseen, 0.1])),
        _column(rng, n, [*LETTERS, "zzz", 3], np.append(p_win * (1 - 2 * unseen), [unseen] * 2)),
    ]
    return ref, win


def _prepared(ref: Sequence[Sequence[object]]) -> CategoricalReference:
    return CategoricalReference.prepare([f"c{j}" for j in range(len(ref))], ref)


def _encode(prepared: CategoricalReference, win: Sequence[Sequence[object]]) -> np.ndarray:
    n = len(win[0])
    names = prepared.feature_names
    events = [{names[j]: col[i] for j, col in enumerate(win)} for i in range(n)]
    return prepared.encode(events)


def _tables(
    ref_col: Sequence[object], win_col: Sequence[object]
) -> tuple[np.ndarray, np.ndarray, int]:
    """Reference counts per category (sorted as the table) and window counts, and unseen."""
    table = CategoryTable.from_values(ref_col)
    ref_counts = np.array([sum(1 for v in ref_col if _same(v, c)) for c in table.categories])
    win_counts = np.array([sum(1 for v in win_col if _same(v, c)) for c in table.categories])
    known = int(win_counts.sum())
    unseen = sum(1 for v in win_col if v is not None) - known
    return ref_counts, win_counts, unseen


def _same(v: object, c: object) -> bool:
    return type(v) is type(c) and v == c


# --- the table and the codes ------------------------------------------------------------------


def test_table_orders_categories_and_codes_values() -> None:
    table = CategoryTable.from_values(["b", True, "a", None, "b", False, 3, "b", True])
    assert table.categories == (False, True, "a", "b")
    assert table.counts.tolist() == [1, 2, 1, 3]
    assert (table.missing, table.other, table.size) == (1, 1, 7)
    values = ["a", "b", "zzz", None, True, False, 1, 0, 1.0, "True"]
    expected = [2, 3, UNSEEN, MISSING, 1, 0, UNSEEN, UNSEEN, UNSEEN, UNSEEN]
    assert table.codes(values).tolist() == expected
    assert [table.code(v) for v in values] == expected
    only_strings = CategoryTable.from_values(["x", "y"])
    assert only_strings.codes([True, False, "y"]).tolist() == [UNSEEN, UNSEEN, 1]
    assert CategoryTable.from_values([]).codes(["x", None]).tolist() == [UNSEEN, MISSING]


def test_encode_events_and_count() -> None:
    prepared = CategoricalReference.prepare(["c", "flag"], [["x", "y", "y"], [True, True, None]])
    events: list[dict[str, object]] = [
        {"c": "y", "flag": True},
        {"c": "new", "flag": False},
        {"flag": None},
        {"c": None, "flag": True},
    ]
    codes = prepared.encode(events)
    assert codes.tolist() == [[1, 0], [UNSEEN, UNSEEN], [MISSING, MISSING], [MISSING, 0]]
    counts = category_counts(prepared, codes)
    assert counts.counts[:, 0].tolist() == [0, 1, 1]  # x, y, unseen
    assert counts.counts[:, 1].tolist() == [2, 0, 1]  # True, padding, unseen
    assert counts.unseen.tolist() == [1, 1]
    assert counts.missing.tolist() == [2, 1]
    assert counts.sizes.tolist() == [2, 3]
    assert counts.total.tolist() == [4, 4]
    assert prepared.sizes.tolist() == [3, 2]


# --- chi-squared ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_chi_squared_equals_scipy(seed: int) -> None:
    ref, win = _data(seed)
    prepared = _prepared(ref)
    counts = category_counts(prepared, _encode(prepared, win))
    result = chi_squared(prepared, counts)
    for j in range(len(ref)):
        ref_counts, win_counts, unseen = _tables(ref[j], win[j])
        n, m = int(win_counts.sum()) + unseen, int(ref_counts.sum())
        assert result.unseen[j] == unseen
        if n == 0 or m == 0:
            assert (result.statistic[j], result.sizes[j], result.df[j]) == (0.0, 0, 0)
            assert np.isnan(result.pvalue[j])
            continue
        if unseen:
            f_obs = np.append(win_counts, unseen)
            f_exp = n * (np.append(ref_counts, UNSEEN_PSEUDO_COUNT) / (m + UNSEEN_PSEUDO_COUNT))
        else:
            f_obs, f_exp = win_counts, n * (ref_counts / m)
        assert result.sizes[j] == n
        assert result.df[j] == f_obs.size - 1
        if f_obs.size == 1:  # scipy: statistic 0, p-value NaN (no degrees of freedom)
            assert (result.statistic[j], result.pvalue[j]) == (0.0, 1.0)
            continue
        expected = chisquare(f_obs, f_exp)
        assert result.statistic[j] == pytest.approx(expected.statistic, rel=1e-12, abs=1e-300)
        assert result.pvalue[j] == pytest.approx(expected.pvalue, rel=1e-12, abs=1e-300)


def test_constant_reference_column() -> None:
    prepared = CategoricalReference.prepare(["k"], [["A"] * 500])
    assert any("constant ('A')" in note for note in prepared.notes)

    def check(window: Sequence[object]) -> tuple[float, float, int, tuple[str, ...]]:
        result = chi_squared(prepared, category_counts(prepared, _encode(prepared, [window])))
        return float(result.statistic[0]), float(result.pvalue[0]), int(result.df[0]), result.notes

    assert check(["A"] * 100 + [None] * 5) == (0.0, 1.0, 0, ())
    stat, p, df, notes = check(["A"] * 97 + ["B", "C", 7])
    expected = chisquare([97, 3], 100 * (np.array([500, 0.5]) / 500.5))
    assert stat == pytest.approx(expected.statistic, rel=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-12)
    assert df == 1 and p < 1e-12  # decisive
    assert len(notes) == 1 and "constant ('A')" in notes[0] and "3 of 100" in notes[0]
    # The unseen cell expects n a / (m + a) values (about 1 here): one in 1000 is no news,
    # a handful is.
    assert check(["A"] * 999 + ["B"])[1] > 0.5
    assert check(["A"] * 995 + ["B"] * 5)[1] < 1e-3


def test_unseen_values_are_reported_not_fatal() -> None:
    prepared = CategoricalReference.prepare(["c"], [["x"] * 60 + ["y"] * 40])
    window = ["x"] * 50 + ["y"] * 40 + ["new"] * 10
    counts = category_counts(prepared, _encode(prepared, [window]))
    result = chi_squared(prepared, counts)
    assert result.unseen.tolist() == [10] and result.df.tolist() == [2]
    expected = chisquare([50, 40, 10], 100 * (np.array([60, 40, 0.5]) / 100.5))
    assert result.statistic[0] == pytest.approx(expected.statistic, rel=1e-12)
    assert result.pvalue[0] == pytest.approx(expected.pvalue, rel=1e-12, abs=1e-300)
    assert result.notes == (
        "feature 'c' has 10 of 100 window values (10%) in categories never seen in the reference",
    )
    # Unseen values take part in PSI and JS as one more cell, with reference share 0.
    r = np.array([60, 40, 0]) / 100
    w = np.array([50, 40, 10]) / 100
    rf, wf = np.maximum(r, PSI_EPSILON), np.maximum(w, PSI_EPSILON)
    assert psi(prepared, counts).statistic[0] == pytest.approx(
        np.sum((wf - rf) * np.log(wf / rf)), rel=1e-12
    )
    assert js_distance(prepared, counts).statistic[0] == pytest.approx(
        jensenshannon([60, 40, 0], [50, 40, 10]), rel=1e-12
    )


def test_empty_windows_and_references_without_categories() -> None:
    prepared = CategoricalReference.prepare(["c", "none"], [["x", "y"], [None, None, 2.5]])
    assert any("'none' has no category" in note for note in prepared.notes)
    assert any("neither string, bool nor null" in note for note in prepared.notes)
    empty: list[list[object]] = [[], []]
    for window in (empty, [[None, None], [None, None]]):
        counts = category_counts(prepared, _encode(prepared, window).reshape(-1, 2))
        result = chi_squared(prepared, counts)
        assert result.statistic.tolist() == [0.0, 0.0]
        assert np.isnan(result.pvalue).all()
        assert result.sizes.tolist() == [0, 0] and result.notes == ()
        for scores in (psi(prepared, counts), js_distance(prepared, counts)):
            assert scores.statistic.tolist() == [0.0, 0.0]
            assert scores.sizes.tolist() == [0, 0]
    counts = category_counts(prepared, _encode(prepared, [["x", "y"], ["a", None]]))
    result = chi_squared(prepared, counts)
    assert result.sizes.tolist() == [2, 0] and np.isnan(result.pvalue[1])
    assert result.notes == (
        "feature 'none': 1 window values, none checked: the reference has no category",
    )


def test_bools_and_none() -> None:
    ref: list[object] = [True] * 30 + [False] * 70 + [None] * 10
    win: list[object] = [True] * 50 + [False] * 50 + [None] * 40
    prepared = CategoricalReference.prepare(["flag"], [ref])
    assert prepared.tables[0].categories == (False, True)
    counts = category_counts(prepared, _encode(prepared, [win]))
    assert counts.missing.tolist() == [40] and counts.sizes.tolist() == [100]
    result = chi_squared(prepared, counts)
    expected = chisquare([50, 50], 100 * (np.array([70, 30]) / 100))
    assert result.statistic[0] == pytest.approx(expected.statistic, rel=1e-12)
    assert result.pvalue[0] == pytest.approx(expected.pvalue, rel=1e-12)
    assert js_distance(prepared, counts).statistic[0] == pytest.approx(
        jensenshannon([70, 30, 0], [50, 50, 0]), rel=1e-12
    )


# --- PSI and Jensen-Shannon -------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(30))
def test_psi_and_js_equal_closed_form_and_scipy(seed: int) -> None:
    ref, win = _data(seed)
    prepared = _prepared(ref)
    counts = category_counts(prepared, _encode(prepared, win))
    psi_scores = psi(prepared, counts)
    js_scores = js_distance(prepared, counts)
    for j in range(len(ref)):
        ref_counts, win_counts, unseen = _tables(ref[j], win[j])
        r_cells = np.append(ref_counts, 0)
        w_cells = np.append(win_counts, unseen)
        if w_cells.sum() == 0 or r_cells.sum() == 0:
            assert psi_scores.statistic[j] == js_scores.statistic[j] == 0.0
            assert psi_scores.sizes[j] == js_scores.sizes[j] == 0
            continue
        r = np.maximum(r_cells / r_cells.sum(), PSI_EPSILON)
        w = np.maximum(w_cells / w_cells.sum(), PSI_EPSILON)
        assert psi_scores.statistic[j] == pytest.approx(
            np.sum((w - r) * np.log(w / r)), rel=1e-12, abs=1e-300
        )
        assert_js_matches(float(js_scores.statistic[j]), r_cells, w_cells)
        assert psi_scores.sizes[j] == js_scores.sizes[j] == w_cells.sum()


def test_scores_grow_as_the_proportions_move() -> None:
    rng = np.random.default_rng(4)
    ref = [_column(rng, 5000, LETTERS, np.array([0.4, 0.3, 0.15, 0.1, 0.05]))]
    prepared = _prepared(ref)
    target = np.array([0.05, 0.1, 0.15, 0.3, 0.4])
    rows = []
    for weight in (0.0, 0.2, 0.5, 1.0):
        p = (1 - weight) * np.array([0.4, 0.3, 0.15, 0.1, 0.05]) + weight * target
        window = [
            [LETTERS[i] for i, k in enumerate(np.round(p * 1000).astype(int)) for _ in range(k)]
        ]
        counts = category_counts(prepared, _encode(prepared, window))
        chi = chi_squared(prepared, counts)
        rows.append(
            [
                chi.statistic[0],
                -chi.pvalue[0],
                psi(prepared, counts).statistic[0],
                js_distance(prepared, counts).statistic[0],
            ]
        )
    table = np.array(rows)
    assert np.all(np.diff(table[:, [0, 2, 3]], axis=0) > 0)
    assert np.all(np.diff(table[:, 1]) >= 0)
    assert -table[0, 1] > 0.01 and -table[-1, 1] < 1e-12
