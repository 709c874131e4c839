"""Classification metrics: a hand-computed confusion matrix, closed forms, a plain Python twin."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from stream_monitor.detectors.classification import (
    ClassificationMetrics,
    classification_metrics,
    confusion_matrix,
    metrics_from_confusion,
)


def _labels(*codes: int) -> np.ndarray:
    return np.array(codes, dtype=np.int16)


def test_hand_computed_confusion_matrix() -> None:
    actual = _labels(0, 0, 1, 1, 2, 2, 2, -1, 1, 0)
    prediction = _labels(0, 1, 1, 1, 2, 0, -1, 2, 0, 0)  # events 6 and 7 miss a label
    m = classification_metrics(prediction, actual)
    assert m.labeled == 8
    assert m.confusion.tolist() == [[2, 1, 0], [1, 2, 0], [1, 0, 1]]
    assert m.support.tolist() == [3, 3, 2]
    assert m.precision.tolist() == [2 / 4, 2 / 3, 1 / 1]
    assert m.recall.tolist() == [2 / 3, 2 / 3, 1 / 2]
    assert m.f1.tolist() == [4 / 7, 4 / 6, 2 / 3]  # 2 tp / (2 tp + fp + fn)
    assert m.accuracy == 5 / 8
    assert m.macro_precision == pytest.approx(13 / 18, abs=1e-15)
    assert m.macro_recall == pytest.approx(11 / 18, abs=1e-15)
    assert m.macro_f1 == pytest.approx(40 / 63, abs=1e-15)
    assert m.micro_precision == m.micro_recall == m.micro_f1 == m.accuracy


def test_binary_closed_forms() -> None:
    """tp = 30, fn = 10, fp = 20, tn = 40 for class 1."""
    actual = np.repeat(_labels(1, 1, 0, 0), [30, 10, 20, 40])
    prediction = np.repeat(_labels(1, 0, 1, 0), [30, 10, 20, 40])
    m = classification_metrics(prediction, actual)
    assert m.confusion.tolist() == [[40, 20], [10, 30]]
    assert m.precision[1] == 30 / 50 and m.recall[1] == 30 / 40
    assert m.f1[1] == pytest.approx(2 * 0.6 * 0.75 / (0.6 + 0.75), abs=1e-15)
    assert m.precision[0] == 40 / 50 and m.recall[0] == 40 / 60
    assert m.accuracy == 70 / 100


def test_undefined_ratios_are_zero_never_nan() -> None:
    # class 1 occurs but is never predicted; class 2 is predicted but never occurs;
    # class 3 exists (n_classes=4) but appears nowhere in the window
    actual = _labels(0, 0, 1, 1, 0)
    prediction = _labels(0, 2, 0, 0, 0)
    m = classification_metrics(prediction, actual, n_classes=4)
    assert m.precision.tolist() == [2 / 4, 0.0, 0.0, 0.0]  # 1 and 3: never predicted -> 0
    assert m.recall.tolist() == [2 / 3, 0.0, 0.0, 0.0]  # 2 and 3: never occur -> 0
    assert m.f1.tolist() == [4 / 7, 0.0, 0.0, 0.0]
    assert m.present.tolist() == [True, True, True, False]  # macro over classes 0, 1, 2
    assert m.macro_recall == pytest.approx((2 / 3 + 0.0 + 0.0) / 3, abs=1e-15)
    empty = classification_metrics(_labels(-1, 0, -1), _labels(1, -1, -1), n_classes=3)
    assert empty.labeled == 0 and empty.confusion.sum() == 0
    for metrics in (m, empty):
        values = [
            metrics.accuracy,
            metrics.macro_precision,
            metrics.macro_recall,
            metrics.macro_f1,
            metrics.micro_precision,
            metrics.micro_recall,
            metrics.micro_f1,
        ]
        arrays = np.r_[metrics.precision, metrics.recall, metrics.f1, values]
        assert np.isfinite(arrays).all()
    assert empty.accuracy == empty.macro_f1 == empty.micro_f1 == 0.0
    nothing = classification_metrics(_labels(), _labels())
    assert nothing.labeled == 0 and nothing.confusion.shape == (0, 0) and nothing.macro_f1 == 0.0


def test_invalid_input() -> None:
    with pytest.raises(ValueError):
        classification_metrics(_labels(0, 1), _labels(0))
    with pytest.raises(ValueError):
        classification_metrics(_labels(0, 3), _labels(0, 1), n_classes=3)


def _python_metrics(prediction: list[int], actual: list[int], k: int) -> dict[str, object]:
    """The same metrics, counted pair by pair, in exact fractions (undefined -> 0)."""

    def div(a: int, b: int) -> Fraction:
        return Fraction(a, b) if b else Fraction(0)

    pairs = [(a, p) for a, p in zip(actual, prediction, strict=True) if a >= 0 and p >= 0]
    cm = [[sum(1 for pair in pairs if pair == (a, p)) for p in range(k)] for a in range(k)]
    precision, recall, f1, present = [], [], [], []
    for c in range(k):
        tp = cm[c][c]
        fp = sum(cm[a][c] for a in range(k)) - tp
        fn = sum(cm[c]) - tp
        precision.append(div(tp, tp + fp))
        recall.append(div(tp, tp + fn))
        f1.append(div(2 * tp, 2 * tp + fp + fn))
        present.append(tp + fp + fn > 0)
    shown = [c for c in range(k) if present[c]]

    def macro(values: list[Fraction]) -> Fraction:
        return sum((values[c] for c in shown), Fraction(0)) / len(shown) if shown else Fraction(0)

    accuracy = div(sum(1 for a, p in pairs if a == p), len(pairs))
    return {
        "confusion": cm,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "present": present,
        "accuracy": accuracy,
        "macro_precision": macro(precision),
        "macro_recall": macro(recall),
        "macro_f1": macro(f1),
    }


@pytest.mark.parametrize("seed", range(30))
def test_equals_a_plain_python_implementation(seed: int) -> None:
    g = np.random.default_rng(seed)
    k, n = int(g.integers(1, 8)), int(g.integers(0, 400))
    weights = g.dirichlet(np.full(k, 0.5))  # skewed: some classes rare or absent
    actual = g.choice(k, size=n, p=weights).astype(np.int32)
    prediction = np.where(g.random(n) < 0.6, actual, g.integers(0, k, n)).astype(np.int32)
    actual[g.random(n) < 0.2] = -1
    prediction[g.random(n) < 0.1] = -1
    m = classification_metrics(prediction, actual, n_classes=k)
    ref = _python_metrics(prediction.tolist(), actual.tolist(), k)
    assert m.confusion.tolist() == ref["confusion"]
    assert m.present.tolist() == ref["present"]
    for name in ("precision", "recall", "f1"):
        assert getattr(m, name).tolist() == [float(v) for v in ref[name]]  # type: ignore[attr-defined]
    for name in ("accuracy", "macro_precision", "macro_recall", "macro_f1"):
        assert getattr(m, name) == pytest.approx(float(ref[name]), abs=1e-15)  # type: ignore[arg-type]
    assert m.micro_precision == m.micro_recall == m.micro_f1 == m.accuracy
    assert m.labeled == int(((actual >= 0) & (prediction >= 0)).sum())
    assert isinstance(
        metrics_from_confusion(confusion_matrix(prediction, actual, k)), ClassificationMetrics
    )
