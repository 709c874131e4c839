"""The window: running tallies equal a recount of its rows, whatever the writes; errors
derived from the values of a numeric window, kept by a window of class labels."""

from __future__ import annotations

import numpy as np
import pytest

from stream_monitor.detectors.ks import missing_key
from stream_monitor.detectors.numeric import window_bin_counts
from stream_monitor.reference.loading import prepare_from_events
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


def test_a_numeric_window_derives_its_errors_and_a_class_window_keeps_them() -> None:
    rng = np.random.default_rng(5)
    window = ModelWindow(SIZE, None, F)
    p, a = rng.normal(size=30), rng.normal(size=30)
    a[::4] = np.nan  # unlabelled
    z = np.zeros(30)
    block = WindowBlock(rng.normal(size=(30, F)), p, a, z, z, None, error=np.full(30, 9.0))
    window.append(block, 0, 30)
    tallies = 3 * F * 8  # NaN, +-inf, beyond the reference, per feature
    assert not window.classes and window.nbytes() == (SIZE * F + 4 * SIZE) * 8 + tallies
    # the block's errors are not kept: a numeric window's are |prediction - actual|
    assert np.array_equal(window.error, np.abs(window.prediction - window.actual), equal_nan=True)
    assert np.isnan(window.error[30:]).all() and np.isnan(window.error[::4][:8]).all()
    window.actual[1] = p[1] + 0.5  # a late label; its error follows, set_errors keeps nothing
    window.set_errors(np.array([1]), np.array([7.0]))
    assert window.error[1] == abs(p[1] - (p[1] + 0.5))
    before = window.error.copy()
    window.classes = True  # from here on the errors are stored: the earlier ones as they were
    assert np.array_equal(window.error, before, equal_nan=True)
    assert window.nbytes() == (SIZE * F + 5 * SIZE) * 8 + tallies
    labels = WindowBlock(
        np.zeros((5, F)),
        z[:5] * np.nan,
        z[:5] * np.nan,
        z[:5],
        z[:5],
        None,
        error=np.array([1.0, 0.0, np.nan, 1.0, 0.0]),
    )
    window.append(labels, 0, 5)
    assert np.array_equal(window.error[30:35], [1.0, 0.0, np.nan, 1.0, 0.0], equal_nan=True)
    window.set_errors(np.array([32]), np.array([0.0]))
    assert window.error[32] == 0.0 and np.array_equal(
        window.error[:30], before[:30], equal_nan=True
    )


@pytest.mark.parametrize("kind", ["numeric", "classes", "bins"])
def test_nbytes_counts_every_array_the_window_owns(kind: str) -> None:
    rng = np.random.default_rng(9)
    if kind == "classes":
        events = [
            {
                "model": "m",
                "features": {f"f{j}": float(v) for j, v in enumerate(row)},
                "prediction": str(rng.choice(["a", "b"])),
            }
            for row in rng.normal(size=(300, F))
        ]
        reference = prepare_from_events("m", events, 10, "test")
        assert reference.classes is not None
    else:
        reference = PreparedReference.from_arrays(
            "m", [f"f{j}" for j in range(F)], rng.normal(size=(300, F)), rng.normal(size=300), 10
        )
    window = ModelWindow(SIZE, reference, F, with_bins=kind == "bins")
    window.classes = kind == "classes"
    owned = [
        value
        for name in ModelWindow.__slots__
        if isinstance(value := getattr(window, name, None), np.ndarray) and value.base is None
    ]
    assert window.nbytes() == sum(a.nbytes for a in owned)
    if kind == "classes":
        assert window.prediction_class.nbytes == SIZE * 8
