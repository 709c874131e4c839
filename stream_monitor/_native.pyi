"""Types of the compiled extension (native/, Rust): the package's native kernels."""

import numpy as np
import numpy.typing as npt

def ks_statistic(
    keys: npt.NDArray[np.int64] | npt.NDArray[np.int32],
    ref_sizes: npt.NDArray[np.int64],
    bits: int = 32,
    window_sizes: npt.NDArray[np.int64] | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """KS statistic per feature of an (n, F) window of packed keys and the sizes used, bit
    for bit `stream_monitor.detectors.ks.ks_statistic` (radix sort and one exact scan, the
    GIL released). Raises TypeError for a wrong dtype or shape, ValueError for keys, sizes
    or `bits` that do not fit together, naming the argument."""
