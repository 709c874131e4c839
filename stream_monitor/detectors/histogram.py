"""Jensen-Shannon distance between a reference histogram and a window histogram.

As in the original design, each bin's probability gets 1e-10 so that empty bins stay finite;
the distance uses the natural logarithm, as `scipy.spatial.distance.jensenshannon` does by
default, so it lies in [0, sqrt(ln 2)].
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.special import rel_entr

EPSILON = 1e-10


def bin_counts(bin_index: npt.NDArray[np.int16], bins: int) -> npt.NDArray[np.int64]:
    """Counts per bin of the window's precomputed bin indices (-1 = no value)."""
    valid = bin_index[bin_index >= 0]
    return np.bincount(valid, minlength=bins).astype(np.int64)


def smoothed(counts: npt.NDArray[np.integer]) -> npt.NDArray[np.float64]:
    """Proportions plus EPSILON per bin (the original design's smoothing)."""
    total = int(counts.sum())
    return np.asarray(counts / max(total, 1) + EPSILON, dtype=np.float64)


def js_distance(p: npt.NDArray[np.floating], q: npt.NDArray[np.floating]) -> float:
    """Jensen-Shannon distance of two (unnormalised) distributions, as scipy defines it.

    >>> import numpy as np
    >>> from scipy.spatial.distance import jensenshannon
    >>> p, q = np.array([5.0, 5.0]), np.array([1.0, 3.0])
    >>> bool(np.isclose(js_distance(p, q), jensenshannon(p, q)))
    True
    """
    p = p / p.sum()
    q = q / q.sum()
    m = (p + q) / 2.0
    divergence = (rel_entr(p, m).sum() + rel_entr(q, m).sum()) / 2.0
    return float(np.sqrt(max(divergence, 0.0)))
