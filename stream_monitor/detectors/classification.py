"""Accuracy, precision, recall and F1 of class labels in a window, from one confusion matrix.

Labels are integer class codes 0..K-1; -1 (any negative code) marks a missing prediction or
actual, and only events that have both are counted (`labeled`). The confusion matrix is one
`np.bincount` of `actual * K + prediction`; every metric follows from its diagonal, row
sums (actual counts, `support`) and column sums (predicted counts).

A ratio whose denominator is zero (precision of a class never predicted, recall of a class
that never occurs, anything on an empty window) is undefined; it is 0.0 here, as
scikit-learn's `zero_division=0` makes it, never NaN, so an alert never carries a NaN.
Callers gate on `labeled` (and `support`) for the evidence behind a number, as the MAE check
gates on its labeled events.

Per class c, with tp the diagonal, fp = predicted - tp and fn = support - tp:
precision = tp / (tp + fp), recall = tp / (tp + fn), F1 = 2 tp / (2 tp + fp + fn) (the
harmonic mean of the two where both are defined). Macro averages are plain means of the per
class values over the classes present (seen as actual or as prediction among labeled
events), as scikit-learn averages over the labels it finds; a class absent from the window
would otherwise add a 0 that says nothing about the model. Micro averages pool the counts
first; with exactly one label per event they all equal the accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class ClassificationMetrics:
    labeled: int  # events with both a prediction and an actual
    confusion: IntArray  # (K, K): row = actual class, column = predicted class
    support: IntArray  # labeled events per actual class
    present: BoolArray  # classes seen (actual or predicted): what macro averages cover
    precision: FloatArray  # per class
    recall: FloatArray  # per class
    f1: FloatArray  # per class
    accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    micro_precision: float
    micro_recall: float
    micro_f1: float


def _ratio(num: npt.NDArray[np.int64], den: npt.NDArray[np.int64]) -> FloatArray:
    """num / den elementwise, 0.0 where den == 0 (the undefined -> 0 convention)."""
    out = np.zeros(np.shape(num), dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _div(num: int, den: int) -> float:
    return num / den if den else 0.0


def confusion_matrix(
    prediction: npt.NDArray[np.integer],
    actual: npt.NDArray[np.integer],
    n_classes: int | None = None,
) -> IntArray:
    """Counts of (actual, predicted) class pairs over the events that have both.

    `n_classes` fixes K (codes must be below it); by default K is the largest code seen + 1.

    >>> import numpy as np
    >>> predicted, actual = np.array([0, 1, 1, 1, 0]), np.array([0, 1, 0, 1, 1])
    >>> confusion_matrix(predicted, actual).tolist()  # rows: actual 0, 1
    [[1, 1], [1, 2]]
    """
    pred = np.asarray(prediction).astype(np.int64, copy=False).ravel()
    act = np.asarray(actual).astype(np.int64, copy=False).ravel()
    if pred.shape != act.shape:
        raise ValueError(f"prediction has {pred.size} labels, actual {act.size}")
    both = (pred >= 0) & (act >= 0)
    pred, act = pred[both], act[both]
    largest = int(max(pred.max(), act.max())) if pred.size else -1
    k = largest + 1 if n_classes is None else int(n_classes)
    if k < 0 or largest >= k:
        raise ValueError(f"class code {largest} does not fit n_classes={n_classes}")
    counts = np.bincount(act * k + pred, minlength=k * k)
    return counts.astype(np.int64, copy=False).reshape(k, k)


def metrics_from_confusion(confusion: IntArray) -> ClassificationMetrics:
    """Every metric of a (K, K) confusion matrix (rows actual, columns predicted)."""
    cm = np.asarray(confusion, dtype=np.int64)
    tp = np.diagonal(cm).copy()
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    fp, fn = predicted - tp, support - tp
    labeled = int(support.sum())
    present = (support + predicted) > 0
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    n_present = int(present.sum())

    def macro(values: FloatArray) -> float:
        return float(values[present].sum() / n_present) if n_present else 0.0

    total_tp, total_fp, total_fn = int(tp.sum()), int(fp.sum()), int(fn.sum())
    return ClassificationMetrics(
        labeled=labeled,
        confusion=cm,
        support=support,
        present=present,
        precision=precision,
        recall=recall,
        f1=f1,
        accuracy=_div(total_tp, labeled),
        macro_precision=macro(precision),
        macro_recall=macro(recall),
        macro_f1=macro(f1),
        micro_precision=_div(total_tp, total_tp + total_fp),
        micro_recall=_div(total_tp, total_tp + total_fn),
        micro_f1=_div(2 * total_tp, 2 * total_tp + total_fp + total_fn),
    )


def classification_metrics(
    prediction: npt.NDArray[np.integer],
    actual: npt.NDArray[np.integer],
    n_classes: int | None = None,
) -> ClassificationMetrics:
    """Accuracy, per-class and averaged precision/recall/F1 of a window's class labels.

    Example: three of five right; class 1 has precision 2/3 (two of three predicted 1s).

    >>> import numpy as np
    >>> metrics = classification_metrics(np.array([0, 1, 1, 1, 0]), np.array([0, 1, 0, 1, 1]))
    >>> metrics.accuracy, metrics.precision.round(4).tolist(), round(metrics.macro_f1, 4)
    (0.6, [0.5, 0.6667], 0.5833)
    """
    return metrics_from_confusion(confusion_matrix(prediction, actual, n_classes))
