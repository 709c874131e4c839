"""Categorical drift (string or bool features) against category tables prepared once.

The reference gives each categorical feature a table, prepared once: the categories it
holds, in a fixed order (False, True, then strings in code-point order), and their counts.
An event's value becomes an integer code once, when the event enters the window: the
category's index, UNSEEN (-1) for a value the reference never held, MISSING (-2) for None
or an absent key. A check then only counts integer codes, all features in one `np.bincount`.

Conventions:

- missing values are left out of every statistic (and counted apart);
- unseen values are counted apart and reported (a data-quality signal) and enter the
  statistics as one pooled "unseen" cell, whose reference count is 0 (see `chi_squared`
  for how the test treats it);
- a feature with no value in the window, or no category in the reference, is not checked:
  statistic 0.0, size 0, p-value NaN; any other feature gets a finite statistic and
  p-value, constant reference columns included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.special import chdtrc

from stream_monitor.detectors.numeric import Scores, js_from_counts, psi_from_counts

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Category = str | bool

UNSEEN = -1  # a value the reference never held (any non-str, non-bool value too)
MISSING = -2  # None, or the feature absent from the event
UNSEEN_PSEUDO_COUNT = 0.5  # reference pseudo-count of the pooled unseen cell in chi-squared


@dataclass(frozen=True, slots=True)
class CategoryTable:
    """One feature's reference categories and counts; maps values to integer codes."""

    categories: tuple[Category, ...]  # False, True, then strings, each as seen in the reference
    counts: IntArray  # (K,) reference count per category
    missing: int  # reference values that were None
    other: int  # reference values neither str, bool nor None: not categories
    _strings: dict[str, int] = field(repr=False, compare=False)
    _bools: tuple[int, int] = field(repr=False, compare=False)  # codes of False and True

    @classmethod
    def from_values(cls, values: Iterable[object]) -> CategoryTable:
        """Count a feature's reference values (str or bool; None = missing)."""
        seen: dict[str, int] = {}
        bools = [0, 0]
        missing = other = 0
        for v in values:
            if isinstance(v, bool):
                bools[v] += 1
            elif isinstance(v, str):
                seen[v] = seen.get(v, 0) + 1
            elif v is None:
                missing += 1
            else:
                other += 1
        strings = sorted(seen)
        categories: list[Category] = [b for b in (False, True) if bools[b]]
        categories.extend(strings)
        counts = [bools[c] if isinstance(c, bool) else seen[c] for c in categories]
        index = {c: i for i, c in enumerate(strings, start=len(categories) - len(strings))}
        false_code = categories.index(False) if bools[False] else UNSEEN
        true_code = categories.index(True) if bools[True] else UNSEEN
        return cls(
            categories=tuple(categories),
            counts=np.array(counts, dtype=np.int64),
            missing=missing,
            other=other,
            _strings=index,
            _bools=(false_code, true_code),
        )

    @property
    def size(self) -> int:
        """Reference values in categories (missing and other values left out)."""
        return int(self.counts.sum())

    def code(self, value: object) -> int:
        """The category index of one value, UNSEEN or MISSING."""
        if isinstance(value, str):
            return self._strings.get(value, UNSEEN)
        if isinstance(value, bool):
            return self._bools[value]
        return MISSING if value is None else UNSEEN

    def codes(self, values: Iterable[object]) -> IntArray:
        """Codes of many values: one dict lookup each (bools never meet 0 and 1 in the dict)."""
        strings, bools = self._strings, self._bools
        return np.array(
            [
                strings.get(v, UNSEEN)
                if isinstance(v, str)
                else bools[v]
                if isinstance(v, bool)
                else MISSING
                if v is None
                else UNSEEN
                for v in values
            ],
            dtype=np.int64,
        )


@dataclass(frozen=True, slots=True)
class CategoricalReference:
    """Every categorical feature's table, with the counts laid out for vectorised checks."""

    feature_names: tuple[str, ...]
    tables: tuple[CategoryTable, ...]
    counts: IntArray  # (K_max + 1, C): row i < K_j category i, zero padding; last row unseen (0)
    n_categories: IntArray  # (C,) K_j
    sizes: IntArray  # (C,) reference values in categories
    notes: list[str]

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def unseen_row(self) -> int:
        return int(self.counts.shape[0]) - 1

    @classmethod
    def prepare(
        cls, feature_names: Sequence[str], columns: Sequence[Iterable[object]]
    ) -> CategoricalReference:
        """Prepare from each feature's reference values (Python objects, None = missing).

        >>> ref = CategoricalReference.prepare(["colour"], [["red"] * 6 + ["blue"] * 4])
        >>> ref.tables[0].categories, ref.tables[0].counts.tolist()
        (('blue', 'red'), [4, 6])
        >>> ref.encode([{"colour": "red"}, {"colour": "green"}, {}]).ravel().tolist()
        [1, -1, -2]
        """
        tables = tuple(CategoryTable.from_values(col) for col in columns)
        if len(tables) != len(feature_names):
            raise ValueError(f"{len(feature_names)} feature names for {len(tables)} columns")
        return cls.of_tables(feature_names, tables)

    def without(self, names: Iterable[str]) -> CategoricalReference | None:
        """These tables but those of `names` (None when none is left): a segment's window
        holds one value of its segment features, whose drift would be by construction."""
        gone = set(names)
        kept = [
            (n, t) for n, t in zip(self.feature_names, self.tables, strict=True) if n not in gone
        ]
        if not kept:
            return None
        return CategoricalReference.of_tables([n for n, _ in kept], tuple(t for _, t in kept))

    @classmethod
    def of_tables(
        cls, feature_names: Sequence[str], tables: tuple[CategoryTable, ...]
    ) -> CategoricalReference:
        """The laid-out counts of prepared tables, with the notes an operator should read."""
        k = np.array([t.counts.size for t in tables], dtype=np.int64)
        k_max = int(k.max()) if k.size else 0
        counts = np.zeros((k_max + 1, len(tables)), dtype=np.int64)
        notes: list[str] = []
        for j, (name, table) in enumerate(zip(feature_names, tables, strict=True)):
            counts[: table.counts.size, j] = table.counts
            if table.counts.size == 0:
                notes.append(f"feature {name!r} has no category in the reference: not checked")
            elif table.counts.size == 1:
                notes.append(
                    f"feature {name!r} is constant ({table.categories[0]!r}) in the "
                    "reference: any other category in the window counts as drift"
                )
            if table.other:
                notes.append(
                    f"feature {name!r} has {table.other} reference values that are neither "
                    "string, bool nor null: left out (such window values count as unseen)"
                )
        return cls(
            feature_names=tuple(feature_names),
            tables=tables,
            counts=counts,
            n_categories=k,
            sizes=counts.sum(axis=0),
            notes=notes,
        )

    @classmethod
    def from_events(
        cls, feature_names: Sequence[str], features: Iterable[Mapping[str, object]]
    ) -> CategoricalReference:
        """Prepare from reference events' feature objects (an absent key is missing)."""
        rows = list(features)
        return cls.prepare(feature_names, [[r.get(name) for r in rows] for name in feature_names])

    def encode(self, features: Sequence[Mapping[str, object]]) -> IntArray:
        """Codes of events' feature objects, shape (n, C); run once per event as it enters."""
        out = np.empty((len(features), self.n_features), dtype=np.int64)
        for j, (name, table) in enumerate(zip(self.feature_names, self.tables, strict=True)):
            out[:, j] = table.codes([f.get(name) for f in features])
        return out


@dataclass(frozen=True, slots=True)
class CategoryCounts:
    """A window's category counts per feature, laid out as `CategoricalReference.counts`."""

    counts: IntArray  # (K_max + 1, C): per reference category; last row: unseen values
    unseen: IntArray  # (C,) window values in categories the reference never held
    missing: IntArray  # (C,) missing window values
    sizes: IntArray  # (C,) window values in the statistics: seen + unseen

    @property
    def total(self) -> IntArray:
        return self.sizes + self.missing


def category_counts(ref: CategoricalReference, codes: IntArray) -> CategoryCounts:
    """Count an (n, C) window of codes: one bincount over all features.

    >>> ref = CategoricalReference.prepare(["colour"], [["red"] * 6 + ["blue"] * 4])
    >>> codes = ref.encode([{"colour": c} for c in ["red", "blue", "blue", "blue", "green", None]])
    >>> win = category_counts(ref, codes)
    >>> win.counts.ravel().tolist(), win.unseen.tolist(), win.missing.tolist()
    ([3, 1, 1], [1], [1])
    """
    rows, c = ref.counts.shape
    row = np.where(codes == UNSEEN, rows - 1, codes)
    valid = codes != MISSING
    flat = row * c + np.arange(c, dtype=np.int64)[None, :]
    counts = np.bincount(flat[valid], minlength=rows * c).reshape(rows, c).astype(np.int64)
    missing = (~valid).sum(axis=0).astype(np.int64)
    return CategoryCounts(counts, counts[-1].copy(), missing, counts.sum(axis=0))


@dataclass(frozen=True, slots=True)
class ChiSquared:
    """Chi-squared goodness of fit per feature, with what the data-quality side needs."""

    statistic: FloatArray  # (C,)
    pvalue: FloatArray  # (C,) NaN where not checked
    df: IntArray  # (C,) degrees of freedom: cells - 1
    sizes: IntArray  # (C,) window values tested (seen + unseen), 0 = not checked
    unseen: IntArray  # (C,) window values in categories the reference never held
    notes: tuple[str, ...]  # one line per feature with unseen values or not checked


def chi_squared(ref: CategoricalReference, win: CategoryCounts) -> ChiSquared:
    """Pearson's chi-squared test of the window's counts against the reference's proportions.

    Cells are the reference's K categories, plus one pooled cell for unseen values when the
    window holds any. Without unseen values, f_exp = n * (ref_counts / m) (n window values,
    m reference values), and the result is `scipy.stats.chisquare(f_obs, f_exp)`, df = K - 1.
    With u > 0 unseen values, the reference is smoothed by a pseudo-count a = 0.5 (add-half)
    for "anything else", f_exp = n * ([ref_counts, a] / (m + a)), df = K, and the result is
    again `chisquare` on those cells. The unseen cell expects n a / (m + a) values (0.05 for
    n = 1000, m = 10 000), so unseen values weigh heavily once they outnumber that: that is
    deliberate (the reference never held them), but the chi-squared approximation is poor
    for so small an expectation: read such p-values as "decisive", and the unseen counts and
    notes as the finding.
    A constant reference column (K = 1) with no unseen value has one cell: statistic 0 and
    p-value 1 (scipy would give NaN with 0 degrees of freedom); unseen values make it a
    two-cell test, decisive for a handful of them.

    Example: five window values, one of them in a category the reference never held.

    >>> import numpy as np
    >>> from scipy.stats import chisquare
    >>> ref = CategoricalReference.prepare(["colour"], [["red"] * 6 + ["blue"] * 4])
    >>> codes = ref.encode([{"colour": c} for c in ["red", "blue", "blue", "blue", "green"]])
    >>> test = chi_squared(ref, category_counts(ref, codes))
    >>> test.df.tolist(), test.unseen.tolist()
    ([2], [1])
    >>> expected = 5 * np.array([4, 6, 0.5]) / 10.5  # blue, red, the unseen cell
    >>> bool(np.isclose(test.pvalue[0], chisquare([3, 1, 1], expected).pvalue))
    True
    """
    rows = ref.counts.shape[0]
    n = win.sizes
    m = ref.sizes
    u = win.unseen
    has_u = u > 0
    denom = m + np.where(has_u, UNSEEN_PSEUDO_COUNT, 0.0)
    safe = np.where(denom > 0, denom, 1.0)
    ref_cells = ref.counts.astype(np.float64)
    ref_cells[-1] = np.where(has_u, UNSEEN_PSEUDO_COUNT, 0.0)
    expected = n * (ref_cells / safe)
    row = np.arange(rows)[:, None]
    used = (row < ref.n_categories[None, :]) | ((row == rows - 1) & has_u[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (win.counts - expected) ** 2 / expected
    stat = np.where(used, terms, 0.0).sum(axis=0)
    df = ref.n_categories - 1 + has_u.astype(np.int64)
    ok = (n > 0) & (m > 0)
    p = np.where(df > 0, chdtrc(np.maximum(df, 1), stat), 1.0)
    notes = _unseen_notes(ref, n, u)
    return ChiSquared(
        statistic=np.where(ok, stat, 0.0),
        pvalue=np.where(ok, p, np.nan),
        df=np.where(ok, df, 0).astype(np.int64),
        sizes=np.where(ok, n, 0).astype(np.int64),
        unseen=u.copy(),
        notes=notes,
    )


def _unseen_notes(ref: CategoricalReference, n: IntArray, u: IntArray) -> tuple[str, ...]:
    """One line per feature with unseen window values, or with values but no reference."""
    notes: list[str] = []
    m = ref.sizes
    for j in np.flatnonzero((u > 0) | ((n > 0) & (m == 0))):  # only features with news
        name = ref.feature_names[j]
        if m[j] == 0:
            notes.append(
                f"feature {name!r}: {n[j]} window values, none checked: "
                "the reference has no category"
            )
        else:
            share = 100.0 * u[j] / n[j]
            what = (
                f"constant ({ref.tables[j].categories[0]!r}) in the reference, has"
                if ref.n_categories[j] == 1
                else "has"
            )
            notes.append(
                f"feature {name!r} {what} {u[j]} of {n[j]} window values ({share:.3g}%) in "
                "categories never seen in the reference"
            )
    return tuple(notes)


def _scores(ref: CategoricalReference, win: CategoryCounts, stat: FloatArray) -> Scores:
    ok = (win.sizes > 0) & (ref.sizes > 0)
    return Scores(np.where(ok, stat, 0.0), np.where(ok, win.sizes, 0).astype(np.int64))


def psi(ref: CategoricalReference, win: CategoryCounts) -> Scores:
    """PSI on category proportions, unseen values as one more cell (reference share 0).

    Same closed form and floor as numeric PSI: `numeric.psi_from_counts` (eps = 1e-4).

    >>> import math
    >>> ref = CategoricalReference.prepare(["colour"], [["red"] * 6 + ["blue"] * 4])
    >>> codes = ref.encode([{"colour": c} for c in ["red", "blue", "blue", "blue"]])
    >>> ours = psi(ref, category_counts(ref, codes)).statistic[0]
    >>> closed_form = (0.75 - 0.4) * math.log(0.75 / 0.4) + (0.25 - 0.6) * math.log(0.25 / 0.6)
    >>> round(float(ours), 12) == round(closed_form, 12)
    True
    """
    return _scores(ref, win, psi_from_counts(ref.counts, win.counts))


def js_distance(ref: CategoricalReference, win: CategoryCounts) -> Scores:
    """Jensen-Shannon distance on category proportions, unseen values as one more cell.

    Equals `scipy.spatial.distance.jensenshannon(ref_counts + [0], win_counts + [u])`.

    >>> import numpy as np
    >>> from scipy.spatial.distance import jensenshannon
    >>> ref = CategoricalReference.prepare(["colour"], [["red"] * 6 + ["blue"] * 4])
    >>> codes = ref.encode([{"colour": c} for c in ["red", "blue", "blue", "green"]])
    >>> ours = js_distance(ref, category_counts(ref, codes)).statistic[0]
    >>> bool(np.isclose(ours, jensenshannon([4, 6, 0], [2, 1, 1]), rtol=1e-12, atol=0))
    True
    """
    return _scores(ref, win, js_from_counts(ref.counts, win.counts))
