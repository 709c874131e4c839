"""Calibrated mode: each model's input-drift threshold chosen from its own reference, so that a
stationary stream raises one false alarm per a given number of events."""

from __future__ import annotations

import math

import numpy as np

from stream_monitor.arrays import FloatArray
from stream_monitor.detectors.calibration import (
    DEFAULT_RESAMPLES,
    DEFAULT_TAIL_FRACTION,
    METHOD_BOUND,
    METHOD_EMPIRICAL,
    METHOD_FITTED,
    QUANTILE_LEVELS,
    Calibration,
    Dependence,
    deployed_effective_sizes,
    effective_sizes,
    held_out_keys,
    per_check_probability,
    tail_threshold,
    tail_weights,
)
from stream_monitor.detectors.ks import as_scipy_default, ks_keys, ks_statistic
from stream_monitor.reference.prepared import PreparedReference


def held_out_statistics(
    reference_features: FloatArray, window_size: int, resamples: int, seed: int = 0
) -> FloatArray:
    """Per-feature KS statistics of held-out pseudo-windows, in deployed units, (resamples, F).

    Each row: a random pseudo-window of `window_size` reference events checked against the
    other n - window_size events, the statistic rescaled by sqrt(n_eff(pseudo) /
    n_eff(deployed)) (module docstring, point 3). The pseudo-reference is not re-sorted:
    its counts are the full reference's minus the pseudo-window's own (`held_out_keys`),
    which are the very integers `PreparedReference.cdf_counts` of the pseudo-reference
    gives (a test checks it bit for bit), at a fifth of the cost.
    """
    x = np.asarray(reference_features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError("reference_features must be an (events, features) array")
    n, f = x.shape
    if window_size <= 0 or n < 2 * window_size:
        raise ValueError(
            f"the reference ({n} events) must hold at least twice the window ({window_size}): "
            "a pseudo-window is held out of it"
        )
    full = PreparedReference.from_arrays(
        "calibration", [f"x{j}" for j in range(f)], x, np.full(n, np.nan), 1
    )
    missing = ~np.isfinite(x)
    right, left = full.cdf_counts(x)
    keys = ks_keys(right, left, missing)  # each event's key against the full reference
    deployed = deployed_effective_sizes(full.sizes, n, window_size)
    rng = np.random.default_rng(seed)
    out = np.zeros((resamples, f))
    for r in range(resamples):
        rows = rng.choice(n, window_size, replace=False)
        pseudo_sizes = full.sizes - (~missing[rows]).sum(axis=0)
        raw, sizes = ks_statistic(held_out_keys(keys[rows]), pseudo_sizes)
        stat = as_scipy_default(raw, pseudo_sizes, sizes)
        pseudo_eff = effective_sizes(pseudo_sizes, sizes)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(deployed > 0, np.sqrt(pseudo_eff / deployed), 0.0)
        out[r] = stat * scale
    return out


def calibrate_max_ks_threshold(
    reference_features: FloatArray,
    window_size: int,
    check_every: int,
    events_per_false_alarm: float,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    tail_fraction: float = DEFAULT_TAIL_FRACTION,
    dependence: Dependence = "bound",
) -> Calibration:
    """The input-drift threshold for one false alarm per `events_per_false_alarm` events.

    `reference_features` is the model's (n, F) reference (NaN = missing), as given to
    `PreparedReference.from_arrays`; the result depends on it, the sizes, the options and
    the seed only.
    """
    if resamples < 20:
        raise ValueError("resamples must be at least 20")
    if not 0.0 < tail_fraction < 1.0:
        raise ValueError("tail_fraction must be in (0, 1)")
    if dependence not in ("bound", "fitted"):
        raise ValueError("dependence must be 'bound' or 'fitted'")
    p = per_check_probability(check_every, events_per_false_alarm)
    x = np.asarray(reference_features, dtype=np.float64)
    stats = held_out_statistics(x, window_size, resamples, seed)
    n_eff = deployed_effective_sizes(np.isfinite(x).sum(axis=0), x.shape[0], window_size)
    checked = n_eff > 0
    if not checked.any():
        raise ValueError("no feature has a value in the reference")
    threshold, f_eff = tail_threshold(stats, n_eff, p, tail_fraction, dependence)
    fitted = tail_weights(stats, n_eff, tail_fraction, "fitted")
    null_max = stats[:, checked].max(axis=1)
    quantiles = tuple(
        (level, float(np.quantile(null_max, level)))
        for level in sorted({*QUANTILE_LEVELS, 1.0 - tail_fraction})
    )
    if math.isnan(f_eff):
        method = METHOD_EMPIRICAL
    else:
        method = METHOD_BOUND if dependence == "bound" else METHOD_FITTED
    return Calibration(
        threshold=threshold,
        check_probability=p,
        method=method,
        resamples=resamples,
        null_quantiles=quantiles,
        effective_features=f_eff,
        maxima_features=float(fitted.sum()),
        features_checked=int(checked.sum()),
        window_size=window_size,
        check_every=check_every,
        events_per_false_alarm=float(events_per_false_alarm),
        reference_events=int(x.shape[0]),
    )
