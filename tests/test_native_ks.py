"""The native KS kernel (stream_monitor._native) equals detectors.ks.ks_statistic bit for bit,
and through as_scipy_default equals scipy.stats.ks_2samp; bad arguments raise, naming them."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp

from stream_monitor import _native
from stream_monitor.detectors.ks import (
    as_scipy_default,
    key_bits,
    ks_keys,
    ks_sorted_statistic,
    ks_statistic,
    missing_key,
)
from stream_monitor.kernels import window_ks_statistic

FloatArray = npt.NDArray[np.float64]


def _keys(
    reference: list[FloatArray], window: FloatArray, bits: int
) -> tuple[npt.NDArray[np.signedinteger], npt.NDArray[np.int64]]:
    """The window's keys against sorted finite reference columns, as windows make them."""
    right = np.zeros(window.shape, dtype=np.int64)
    left = np.zeros(window.shape, dtype=np.int64)
    for j, col in enumerate(reference):
        right[:, j] = np.searchsorted(col, window[:, j], side="right")
        left[:, j] = np.searchsorted(col, window[:, j], side="left")
    sizes = np.array([c.size for c in reference], dtype=np.int64)
    return ks_keys(right, left, ~np.isfinite(window), bits), sizes


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[FloatArray], FloatArray, bool, bool]:
    """A reference and a window of F features: rounded values (ties within and between the
    samples), NaN and inf (missing), empty references and windows, small and large sizes."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    f = draw(st.integers(1, 5))
    n = draw(st.sampled_from([0, 1, 2, 7, 63, 64, 65, 200, 1000]))
    decimals = draw(st.sampled_from([0, 1, 3, 12]))
    reference = []
    for _ in range(f):
        m = draw(st.sampled_from([0, 1, 3, 50, 1000, 12_000, 40_000]))
        col = np.round(rng.normal(size=m), decimals)
        reference.append(np.sort(col))
    shift = draw(st.sampled_from([0.0, 0.3, 2.0]))
    window = np.round(rng.normal(shift, 1.0, size=(n, f)), decimals)
    missing_share = draw(st.sampled_from([0.0, 0.1, 1.0]))
    window[rng.random(window.shape) < missing_share] = np.nan
    if n and draw(st.booleans()):
        window[0, 0] = np.inf
    if n and draw(st.booleans()):  # copies of reference values in the window
        for j, col in enumerate(reference):
            if col.size:
                hit = rng.random(n) < 0.3
                window[hit, j] = rng.choice(col, size=int(hit.sum()))
    wide = draw(st.booleans())
    fortran = draw(st.booleans())
    return reference, window, wide, fortran


@settings(max_examples=300, deadline=None)
@given(cases())
def test_native_equals_python_and_scipy(
    case: tuple[list[FloatArray], FloatArray, bool, bool],
) -> None:
    reference, window, wide, fortran = case
    sizes = np.array([c.size for c in reference], dtype=np.int64)
    bits = 32 if wide else key_bits(sizes)
    keys, ref_sizes = _keys(reference, window, bits)
    keys = np.asfortranarray(keys) if fortran else np.ascontiguousarray(keys)
    finite = np.isfinite(window).sum(axis=0).astype(np.int64)

    want, want_sizes = ks_statistic(keys, ref_sizes, bits, finite)
    for hint in (None, finite):
        got, got_sizes = _native.ks_statistic(keys, ref_sizes, bits, hint)
        assert got.dtype == np.float64 and got_sizes.dtype == np.int64
        assert np.array_equal(got, want), (got, want)
        assert np.array_equal(got.view(np.uint64), want.view(np.uint64))  # +0.0 included
        assert np.array_equal(got_sizes, want_sizes)
        # numpy's sort along the rows, then the native scan: the same bits
        fast, fast_sizes = window_ks_statistic(keys, ref_sizes, bits, hint)
        assert np.array_equal(fast.view(np.uint64), want.view(np.uint64))
        assert np.array_equal(fast_sizes, want_sizes)

    scipy_like = as_scipy_default(got, ref_sizes, got_sizes)
    native_like = _native.ks_scipy_default(got, ref_sizes, got_sizes)
    assert np.array_equal(native_like.view(np.uint64), scipy_like.view(np.uint64))
    for j, col in enumerate(reference):
        values = window[:, j][np.isfinite(window[:, j])]
        if col.size and values.size:
            assert scipy_like[j] == ks_2samp(col, values).statistic, j
        else:
            assert got[j] == 0.0 and got_sizes[j] == 0


def test_a_window_slice_of_any_order() -> None:
    """Windows are Fortran-ordered rings; a slice of rows or of every other feature is not
    contiguous and still gives the same statistic."""
    rng = np.random.default_rng(3)
    reference = [np.sort(np.round(rng.normal(size=5000), 1)) for _ in range(6)]
    window = np.round(rng.normal(0.2, 1, size=(1500, 6)), 1)
    sizes = np.array([c.size for c in reference], dtype=np.int64)
    keys, ref_sizes = _keys(reference, window, key_bits(sizes))
    ring = np.asfortranarray(keys)
    for part in (ring[200:1200], ring[::2], ring[:, ::2], ring[::-1]):
        want = ks_statistic(part, ref_sizes[: part.shape[1]], key_bits(sizes))
        got = _native.ks_statistic(part, ref_sizes[: part.shape[1]], key_bits(sizes))
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
        ordered = np.sort(part, axis=0)  # C order: columns are strided
        got = _native.ks_statistic_sorted(ordered, ref_sizes[: part.shape[1]], key_bits(sizes))
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_empty_windows() -> None:
    for shape in ((0, 3), (5, 0), (0, 0)):
        keys = np.zeros(shape, dtype=np.int64)
        stat, sizes = _native.ks_statistic(keys, np.full(shape[1], 10, dtype=np.int64))
        assert stat.shape == sizes.shape == (shape[1],)
        assert not stat.any() and not sizes.any()
    every = np.full((4, 2), missing_key(32), dtype=np.int64)
    for kernel in (_native.ks_statistic, _native.ks_statistic_sorted):
        stat, sizes = kernel(every, np.array([10, 10]))
        assert not stat.any() and not sizes.any()


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: _native.ks_statistic(np.zeros((3, 2)), np.ones(2, dtype=np.int64)),
            TypeError,
            "keys: expected a 2-d int64 (bits=32) array, got a 2-d float64 array",
        ),
        (
            lambda: _native.ks_statistic(np.zeros(3, dtype=np.int64), np.ones(1, dtype=np.int64)),
            TypeError,
            "keys: expected a 2-d int64",
        ),
        (
            lambda: _native.ks_statistic(
                np.zeros((3, 2), dtype=np.int64), np.ones(2, dtype=np.int64), 14
            ),
            TypeError,
            "keys: expected a 2-d int32 (bits<32)",
        ),
        (
            lambda: _native.ks_statistic(np.zeros((3, 2), dtype=np.int64), [1, 2]),
            TypeError,
            "ref_sizes: expected a 1-d int64 array, got a list",
        ),
        (
            lambda: _native.ks_statistic(
                np.zeros((3, 2), dtype=np.int64), np.ones(3, dtype=np.int64)
            ),
            ValueError,
            "ref_sizes: 3 values for a window of 2 features",
        ),
        (
            lambda: _native.ks_statistic(
                np.zeros((3, 2), dtype=np.int32), np.ones(2, dtype=np.int64), 16
            ),
            ValueError,
            "bits: 16 is not a key width",
        ),
        (
            lambda: _native.ks_statistic(np.zeros((3, 1), dtype=np.int32), np.array([40]), 5),
            ValueError,
            "ref_sizes[0]: 40 is not a reference size",
        ),
        (
            lambda: _native.ks_statistic(np.full((3, 1), 7 << 32, dtype=np.int64), np.array([4])),
            ValueError,
            "keys[0, 0]: 30064771072 does not pack counts",
        ),
        (
            lambda: _native.ks_statistic(np.full((3, 1), -1, dtype=np.int64), np.array([4])),
            ValueError,
            "keys[0, 0]: -1",
        ),
        (
            lambda: _native.ks_statistic(
                np.zeros((3, 1), dtype=np.int64), np.array([4]), 32, np.array([2])
            ),
            ValueError,
            "window_sizes[0]: 2, but the window holds 3 keys that are not missing",
        ),
        (
            lambda: _native.ks_statistic_sorted(
                np.array([[2 << 32], [1 << 32]], dtype=np.int64), np.array([4])
            ),
            ValueError,
            "sorted_keys[1, 0]: 4294967296 is below the key before it",
        ),
        (
            lambda: _native.ks_statistic_sorted(np.full((3, 1), 7 << 32, dtype=np.int64), [4]),
            TypeError,
            "ref_sizes: expected a 1-d int64 array, got a list",
        ),
        (
            lambda: _native.ks_statistic_sorted(
                np.full((3, 1), 7 << 32, dtype=np.int64), np.array([4])
            ),
            ValueError,
            "sorted_keys[0, 0]: 30064771072 does not pack counts",
        ),
        (
            lambda: _native.ks_scipy_default(np.zeros(2), np.ones(2, dtype=np.int64), np.ones(3)),
            TypeError,
            "sizes: expected a 1-d int64 array",
        ),
        (
            lambda: _native.ks_scipy_default(
                np.zeros(2), np.ones(1, dtype=np.int64), np.ones(2, dtype=np.int64)
            ),
            ValueError,
            "ref_sizes: 1 values for 2 statistics",
        ),
        (
            lambda: _native.ks_statistic_sorted(np.zeros((3, 2)), np.ones(2, dtype=np.int64)),
            TypeError,
            "sorted_keys: expected a 2-d int64 (bits=32) array",
        ),
    ],
)
def test_bad_arguments_raise_naming_them(call: object, error: type, message: str) -> None:
    assert callable(call)
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from([0, 1, 2, 50, 1000, 10_000]),
    st.sampled_from([0, 1, 3, 999, 1000]),
    st.sampled_from([0, 1, 2, 12]),
)
def test_sorted_sample_ks_equals_python_and_scipy(seed: int, m: int, n: int, decimals: int) -> None:
    """The prediction check's KS: sorted window against sorted reference, ties included."""
    rng = np.random.default_rng(seed)
    reference = np.sort(np.round(rng.normal(size=m), decimals))
    sample = np.sort(np.round(rng.normal(0.2, 1.1, size=n), decimals))
    if n and m:
        sample[: n // 3] = rng.choice(reference, size=n // 3)
        sample.sort()
    got = _native.ks_sorted_statistic(reference, sample)
    expected = ks_sorted_statistic(reference, sample)
    assert np.float64(got).view(np.uint64) == np.float64(expected).view(np.uint64)
    if n and m:
        with np.errstate(divide="ignore"):  # scipy's p-value of one-value samples
            theirs = ks_2samp(reference, sample, method="asymp").statistic
        assert got == theirs


def test_sorted_sample_ks_rejects_unsorted_or_missing_values() -> None:
    with pytest.raises(ValueError, match=r"sorted_sample\[1\]"):
        _native.ks_sorted_statistic(np.array([1.0, 2.0]), np.array([1.0, 3.0, 2.0]))
    with pytest.raises(ValueError, match=r"sorted_reference\[0\]"):
        _native.ks_sorted_statistic(np.array([np.nan]), np.array([1.0]))
