"""Multivariate drift: a change of the features' joint distribution that leaves each
feature's own distribution unchanged (a correlation that flips sign) escapes every
per-feature test. A PCA fitted on half of the reference's complete rows keeps the
directions that carry most of its variance; how far an event lies from that subspace (its
squared reconstruction error, in standardised units) is one number per event, and the
errors of the reference's other half are the reference of that number's stream. The
sequential charts watch it like one more feature (docs/detectors.md): under no drift its
rank among the held-out errors is uniform; a broken correlation puts events off the
subspace, and the up chart rises.

The error of each row is computed by the native core (`_native.projection_errors`), for
the held-out half here and for each live event as it enters, so both sides of the
comparison come from the same arithmetic. The subspace and the held-out errors are kept in
one native `ResidualSubspace`, which the charts of the reference's models share: with
thousands of models a copy per model and one in Python would cost memory for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream_monitor.arrays import FloatArray
from stream_monitor.kernels import ResidualSubspace, projection_errors

NAME = "(multivariate)"  # how alerts and gauges name the residual's chart
EXPLAINED = 0.9  # components kept: the fewest that explain this share of the variance
MIN_ROWS = 200  # complete reference rows needed (half to fit, half as the reference)


@dataclass(frozen=True, slots=True)
class ResidualProjection:
    """What the residual of an event is computed from, and the reference's residuals."""

    subspace: ResidualSubspace  # mean, scale, (k, F) components; held-out errors ascending

    @classmethod
    def fit(cls, rows: FloatArray, explained: float = EXPLAINED) -> ResidualProjection | None:
        """From an (n, F) matrix of reference rows (NaN = missing); None with fewer than
        two features or `MIN_ROWS` complete rows. Even rows fit, odd rows are held out."""
        if rows.ndim != 2 or rows.shape[1] < 2:
            return None
        complete = rows[np.isfinite(rows).all(axis=1)]
        if complete.shape[0] < MIN_ROWS:
            return None
        fit, held = complete[0::2], complete[1::2]
        mean = fit.mean(axis=0)
        scale = fit.std(axis=0)
        scale[scale == 0] = 1.0
        z = (fit - mean) / scale
        _, singular, vt = np.linalg.svd(z, full_matrices=False)
        variance = singular**2
        share = np.cumsum(variance) / max(float(variance.sum()), 1e-300)
        k = int(np.searchsorted(share, explained) + 1)
        k = min(max(k, 1), rows.shape[1] - 1)
        components = np.ascontiguousarray(vt[:k])
        errors = projection_errors(mean, scale, components, np.ascontiguousarray(held))
        return cls(ResidualSubspace(mean, scale, components, np.sort(errors)))

    @property
    def size(self) -> int:
        return self.subspace.size

    def errors(self, features: FloatArray) -> FloatArray:
        """Each row's squared reconstruction error (NaN when a value is missing)."""
        return self.subspace.errors(np.ascontiguousarray(features, dtype=np.float64))
