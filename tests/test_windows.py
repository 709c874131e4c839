"""The window's running tallies equal a recount of its rows, whatever the writes."""

from __future__ import annotations

import numpy as np
import pytest

from stream_monitor.detectors.ks import missing_key
from stream_monitor.detectors.numeric import window_bin_counts
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.window.ring import ModelWindow, WindowBlock

SIZE, F = 50, 4


def _reference(rng: np.random.Generator) -> PreparedReference:
    ref = rng.normal(size=(300, F))
    names = [f"f{j}" for j in range(F)]
    return PreparedReference.from_arrays("m", names, ref, rng.normal(size=300), 10)


def _block(rng: np.random.Generator, ref: PreparedReference, k: int) -> WindowBlock:
    x = rng.normal(0, 1.5, size=(k, F))  # some beyond the reference's range
    x[rng.random(x.shape) < 0.1] = np.nan
    x[rng.random(x.shape) < 0.05] = np.inf
    z = np.zeros(k)
    return WindowBlock(x, z, z, z, np.arange(k, dtype=float), ref, with_bins=True)


def _recount(window: ModelWindow) -> dict[str, np.ndarray]:
    assert window.reference is not None
    rows = window.rows()
    values, keys, bits = window.features[rows], window.ks_key[rows], window.key_bits
    valid = keys != missing_key(bits)
    right, left = keys >> bits, keys & ((1 << bits) - 1)
    outside = valid & ((right == 0) | (left == window.reference.sizes))
    return {
        "missing": np.isnan(values).sum(axis=0),
        "nonfinite": np.isinf(values).sum(axis=0),
        "outside": outside.sum(axis=0),
        "bins": window_bin_counts(window.reference.numeric(), window.numeric_bin[rows]),
    }


def _assert_tallies(window: ModelWindow) -> None:
    expected = _recount(window)
    assert np.array_equal(window.missing_count, expected["missing"])
    assert np.array_equal(window.nonfinite_count, expected["nonfinite"])
    assert np.array_equal(window.outside_count, expected["outside"])
    assert np.array_equal(window.bin_counts, expected["bins"])
    assert (
        window.bin_counts.sum()
        == window.count * F - expected["missing"].sum() - expected["nonfinite"].sum()
    )


@pytest.mark.parametrize("seed", range(8))
def test_tallies_follow_appends_that_fill_wrap_and_overrun(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = _reference(rng)
    window = ModelWindow(SIZE, ref, F, with_bins=True)
    for _ in range(25):
        k = int(rng.choice([1, 7, 23, SIZE - 1, SIZE, SIZE + 13]))
        block = _block(rng, ref, k)
        start = int(rng.integers(0, k))
        window.append(block, start, k)
        _assert_tallies(window)


def test_keys_are_32_bit_for_a_small_reference_and_64_bit_past_15_bits() -> None:
    rng = np.random.default_rng(3)
    small = ModelWindow(SIZE, _reference(rng), F)
    assert small.ks_key.dtype == np.int32 and small.key_bits == 9  # counts up to 300
    names = [f"f{j}" for j in range(F)]
    big = PreparedReference.from_arrays("m", names, rng.normal(size=(40_000, F)), np.zeros(1), 10)
    assert ModelWindow(SIZE, big, F).ks_key.dtype == np.int64


@pytest.mark.parametrize("count", [0, 17, SIZE])
def test_tallies_after_loading_a_ring(count: int) -> None:
    rng = np.random.default_rng(count)
    ref = _reference(rng)
    window = ModelWindow(SIZE, ref, F, with_bins=True)
    window.append(_block(rng, ref, 30), 0, 30)  # what was there before is forgotten
    window.load(_block(rng, ref, SIZE), head=count % SIZE, count=count)
    _assert_tallies(window)
    assert window.missing_count.sum() <= count * F
