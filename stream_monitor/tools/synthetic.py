"""Synthetic prediction streams with drift at known points (demo, tests, benchmarks).

Each model has numeric features with their own means and scales, a linear regression model
and a noisy ground truth. A drift shifts some features by a number of standard deviations
between two event indices, so detectors can be checked against a known change point.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import orjson

from stream_monitor.decode.predictions import route_key


@dataclass(frozen=True, slots=True)
class SyntheticModel:
    name: str
    n_features: int = 20
    drift_start: int | None = None  # first drifted event index
    drift_end: int | None = None  # first event index back to normal (None: drift lasts)
    drift_shift: float = 1.0  # in standard deviations of each drifted feature
    drift_features: int = 5  # how many features (the first ones) drift
    version: str = "v1"

    @property
    def key(self) -> str:
        """The key its events are kept under when versions keep their own windows."""
        return route_key(self.name, self.version)

    @property
    def feature_names(self) -> list[str]:
        return [f"f{j:02d}" for j in range(self.n_features)]

    def _params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        means = rng.uniform(-5, 5, self.n_features)
        scales = rng.uniform(0.5, 3, self.n_features)
        weights = rng.normal(0, 1, self.n_features) / math.sqrt(self.n_features)
        return means, scales, weights

    def arrays(
        self, start: int, count: int, seed: int, drift: bool = True
    ) -> dict[str, np.ndarray]:
        """Events [start, start + count) as arrays: features, prediction, actual, latency."""
        means, scales, weights = self._params()
        rng = np.random.default_rng([zlib.crc32(self.name.encode()), seed, start])
        z = rng.standard_normal((count, self.n_features))
        if drift and self.drift_start is not None:
            idx = np.arange(start, start + count)
            end = self.drift_end if self.drift_end is not None else np.iinfo(np.int64).max
            drifted = (idx >= self.drift_start) & (idx < end)
            z[drifted, : self.drift_features] += self.drift_shift
        features = means + scales * z
        prediction = z @ weights
        actual = prediction + rng.normal(0, 0.3, count)
        latency = rng.lognormal(math.log(20.0), 0.4, count)
        return {
            "features": features,
            "prediction": prediction,
            "actual": actual,
            "latency_ms": latency,
        }

    def events(
        self,
        start: int,
        count: int,
        seed: int = 0,
        t0: float = 1_767_225_600.0,
        interval_s: float = 0.01,
        drift: bool = True,
    ) -> list[dict[str, object]]:
        """Events as contract §1 dicts; event times are t0 + index * interval_s."""
        a = self.arrays(start, count, seed, drift)
        names = self.feature_names
        feats = np.round(a["features"], 6).tolist()
        preds = np.round(a["prediction"], 6).tolist()
        actual = np.round(a["actual"], 6).tolist()
        lat = np.round(a["latency_ms"], 3).tolist()
        return [
            {
                "model": self.name,
                "model_version": self.version,
                "event_id": f"{self.name}-{start + i}",
                "timestamp": round(t0 + (start + i) * interval_s, 3),
                "features": dict(zip(names, feats[i], strict=True)),
                "prediction": preds[i],
                "actual": actual[i],
                "latency_ms": lat[i],
            }
            for i in range(count)
        ]

    def reference(self, count: int = 5000) -> list[dict[str, object]]:
        """A reference sample: the undrifted distribution, from its own random stream."""
        return self.events(0, count, seed=10_000, drift=False)


def to_jsonl(events: list[dict[str, object]]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


def interleave(streams: list[list[dict[str, object]]]) -> list[dict[str, object]]:
    """Round-robin merge: event i of every model before event i + 1 of any."""
    out: list[dict[str, object]] = []
    longest = max((len(s) for s in streams), default=0)
    for i in range(longest):
        out.extend(s[i] for s in streams if i < len(s))
    return out
