"""Predicted and actual class labels of a model's window, for its confusion matrix.

The window keeps, per event, whether a class-label prediction was right (its `error`): that
gives accuracy, but precision and recall also need the actual class of the wrong ones.
`ClassTally` keeps each event's predicted and actual label as integer codes in two ring
arrays laid out as the window's rows (written right after the window appends), so a check
reads them with the window's own rows and the changelog can store them beside the window.

Codes come from one vocabulary per model, in order of first sight: the reference may lack
classes the stream holds (actuals especially), and a model without a reference has none.
The vocabulary is capped at MAX_LABELS, so a stream of free text cannot grow it without
bound; labels past the cap are not coded (NO_LABEL) and stay out of the confusion matrix,
as do events without a string prediction and string actual.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from stream_monitor.detectors.classification import ClassificationMetrics, classification_metrics
from stream_monitor.window.ring import ModelWindow

IntArray = npt.NDArray[np.int64]

NO_LABEL = -1  # no string label (missing, a number) or past the vocabulary's cap
MAX_LABELS = 1000


@dataclass(slots=True)
class ClassTally:
    """Label codes of the window's rows (NO_LABEL where unknown) and their vocabulary."""

    prediction: IntArray
    actual: IntArray
    vocabulary: dict[str, int] = field(default_factory=dict)

    @classmethod
    def empty(cls, size: int, vocabulary: Sequence[str] = ()) -> ClassTally:
        return cls(
            np.full(size, NO_LABEL, dtype=np.int64),
            np.full(size, NO_LABEL, dtype=np.int64),
            {label: i for i, label in enumerate(vocabulary)},
        )

    def codes(self, labels: Sequence[object]) -> IntArray:
        """The code of each label; strings not yet seen are added while the cap allows."""
        vocabulary = self.vocabulary
        out = np.full(len(labels), NO_LABEL, dtype=np.int64)
        for i, label in enumerate(labels):
            if not isinstance(label, str):
                continue
            code = vocabulary.get(label)
            if code is None and len(vocabulary) < MAX_LABELS:
                code = vocabulary[label] = len(vocabulary)
            if code is not None:
                out[i] = code
        return out

    def write(self, window: ModelWindow, prediction: IntArray, actual: IntArray) -> None:
        """Store the codes of the rows the window has just appended (the newest ones)."""
        k = min(len(prediction), window.size)
        if k == 0:
            return
        rows = window.newest_rows(k)
        self.prediction[rows] = prediction[len(prediction) - k :]
        self.actual[rows] = actual[len(actual) - k :]

    def metrics(self, rows: slice) -> ClassificationMetrics | None:
        """Accuracy, precision, recall and F1 of the rows with both labels (None: no such row).

        Codes are renumbered over the labels present, so the matrix is as small as they are.
        """
        pred, act = self.prediction[rows], self.actual[rows]
        both = (pred >= 0) & (act >= 0)
        k = int(both.sum())
        if k == 0:
            return None
        labels, dense = np.unique(np.concatenate([pred[both], act[both]]), return_inverse=True)
        return classification_metrics(dense[:k], dense[k:], n_classes=int(labels.size))
