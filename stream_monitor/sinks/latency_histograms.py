"""`stream_monitor_prediction_latency_seconds`: a histogram per model (and version) filled
from arrays of a batch, binned with one searchsorted instead of one observe() per value."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from stream_monitor.alerts.outcome import LATENCY_BUCKETS_SECONDS, LatencyCounts

# the labels of every per-model series: a key is a model, a version of it, or a segment
MODEL_LABELS = ("model", "model_version", "segment")

# (model, model_version, segment) of a key; a key absent from it is a model without versions
Identities = dict[str, tuple[str, str, str]]


class LatencyHistograms(Collector):
    """`stream_monitor_prediction_latency_seconds` per key (a model, or a version's own
    window), filled from numpy arrays.

    prometheus_client's Histogram observes one value per call; a batch of latencies is
    binned here with one searchsorted instead.
    """

    name = "stream_monitor_prediction_latency_seconds"

    def __init__(
        self,
        buckets: tuple[float, ...] = LATENCY_BUCKETS_SECONDS,
        identities: Identities | None = None,
    ) -> None:
        self._identities = {} if identities is None else identities  # read at collect
        self._bounds = np.array(buckets, dtype=np.float64)
        self._counts: dict[str, npt.NDArray[np.int64]] = {}
        self._sums: dict[str, float] = {}
        self._lock = threading.Lock()

    def observe_ms(self, model: str, latencies_ms: npt.NDArray[np.float64]) -> None:
        seconds = latencies_ms / 1000.0
        idx = np.searchsorted(self._bounds, seconds, side="left")  # value <= bound
        add = np.bincount(idx, minlength=self._bounds.size + 1).astype(np.int64)
        with self._lock:
            if model in self._counts:
                self._counts[model] += add
                self._sums[model] += float(seconds.sum())
            else:
                self._counts[model] = add
                self._sums[model] = float(seconds.sum())

    def add_counts(self, binned: LatencyCounts) -> None:
        """Latencies binned elsewhere on `LATENCY_BUCKETS_SECONDS` (the native core)."""
        if tuple(self._bounds.tolist()) != LATENCY_BUCKETS_SECONDS:
            raise ValueError("latency counts binned on other buckets than this histogram's")
        with self._lock:
            for i, model in enumerate(binned.models):
                add = binned.counts[i]
                if model in self._counts:
                    self._counts[model] += add
                    self._sums[model] += float(binned.sums[i])
                else:
                    self._counts[model] = add.copy()
                    self._sums[model] = float(binned.sums[i])

    def forget(self, model: str) -> None:
        with self._lock:
            self._counts.pop(model, None)
            self._sums.pop(model, None)

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(
            self.name,
            "Serving latency of the predictions, from latency_ms",
            labels=list(MODEL_LABELS),
        )
        with self._lock:
            for model, counts in sorted(self._counts.items()):
                cumulative = np.cumsum(counts)
                buckets = [
                    (_bound_text(b), float(c))
                    for b, c in zip(self._bounds, cumulative[:-1], strict=True)
                ]
                buckets.append(("+Inf", float(cumulative[-1])))
                labels = list(self._identities.get(model, (model, "", "")))
                family.add_metric(labels, buckets, self._sums[model])
        yield family


def _bound_text(bound: float) -> str:
    return repr(float(bound))
