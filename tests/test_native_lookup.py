"""The native per-event look-ups equal the numpy ones: each value's KS key
(`PreparedReference.cdf_counts` then `ks_keys`) and its PSI/JS bin (`numeric.bin_index`),
on random references and blocks with ties, -0.0, NaN and infinities; bad arguments raise,
naming them."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_monitor import kernels
from stream_monitor.detectors.ks import ks_keys
from stream_monitor.detectors.numeric import bin_index
from stream_monitor.reference.prepared import PreparedReference

FloatArray = npt.NDArray[np.float64]


@st.composite
def cases(draw: st.DrawFn) -> tuple[PreparedReference, FloatArray]:
    """A reference of F features (some empty, some constant, rounded: ties) and a block
    that repeats reference values, holds -0.0, NaN and +-inf, in C or Fortran order."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    f = draw(st.integers(1, 6))
    m = draw(st.sampled_from([0, 1, 5, 31, 32, 33, 300, 20_000, 40_000]))
    decimals = draw(st.sampled_from([0, 1, 4, 12]))
    features = np.round(rng.normal(size=(m, f)), decimals)
    features[rng.random(features.shape) < draw(st.sampled_from([0.0, 0.2, 1.0]))] = np.nan
    if m and draw(st.booleans()):
        features[:, 0] = 0.0  # a constant column
    ref = PreparedReference.from_arrays("m", [f"f{j}" for j in range(f)], features, np.zeros(m), 5)
    k = draw(st.sampled_from([0, 1, 17, 500]))
    block = np.round(rng.normal(0.3, 1.2, size=(k, f)), decimals)
    if k and m:
        hit = rng.random((k, f)) < 0.3
        rows = rng.integers(0, m, size=(k, f))
        block[hit] = features[rows, np.arange(f)[None, :]][hit]
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0])
    odd = rng.random((k, f)) < 0.1
    block[odd] = rng.choice(specials, size=int(odd.sum()))
    if draw(st.booleans()):
        block = np.asfortranarray(block)
    return ref, block


@settings(max_examples=200, deadline=None)
@given(cases())
def test_keys_equal_the_numpy_look_ups(case: tuple[PreparedReference, FloatArray]) -> None:
    ref, block = case
    right, left = ref.cdf_counts(block)
    expected = ks_keys(right, left, ~np.isfinite(block), ref.key_bits)
    got = kernels.reference_keys(ref.flat_columns, ref.column_starts, block, ref.key_bits)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got, expected)
    wide = kernels.reference_keys(ref.flat_columns, ref.column_starts, block, 32)
    assert np.array_equal(wide, ks_keys(right, left, ~np.isfinite(block), 32))
    indexed = ref.columns().keys(block, ref.key_bits)  # through the sparse index
    assert indexed.dtype == expected.dtype and np.array_equal(indexed, expected)


@settings(max_examples=200, deadline=None)
@given(cases())
def test_bins_equal_the_numpy_bins(case: tuple[PreparedReference, FloatArray]) -> None:
    ref, block = case
    numeric = ref.numeric()
    got = kernels.bin_index(numeric.edges, block)
    expected = bin_index(numeric, block)
    assert got.dtype == expected.dtype == np.int16
    assert np.array_equal(got, expected)


def test_a_strided_block() -> None:
    """A block that is a strided view (every third row, two of three columns)."""
    values = np.arange(30.0).reshape(10, 3)[:, ::2]
    ref = PreparedReference.from_arrays("m", ["a", "c"], values, np.zeros(10), 5)
    block = np.arange(60.0).reshape(20, 3)[::3, ::2] / 2
    right, left = ref.cdf_counts(np.ascontiguousarray(block))
    expected = ks_keys(right, left, ~np.isfinite(block), ref.key_bits)
    got = kernels.reference_keys(ref.flat_columns, ref.column_starts, block, ref.key_bits)
    assert np.array_equal(got, expected)


def _keys(flat: object, starts: object, values: object, bits: int = 32) -> object:
    return kernels.reference_keys(flat, starts, values, bits)  # type: ignore[arg-type]


Z, S3 = np.zeros, np.array([0, 3])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: _keys(Z(3), S3, Z((2, 2))), ValueError, "column_starts"),
        (lambda: _keys(Z(3), np.array([0, 5]), Z((2, 1))), ValueError, "column_starts[0..1]"),
        (lambda: _keys(Z(20), np.array([0, 20]), Z((2, 1)), 4), ValueError, "use bits=32"),
        (lambda: _keys(Z(3), S3, Z((2, 1)), 16), ValueError, "bits"),
        (lambda: _keys(Z(3, dtype=np.int64), S3, Z((2, 1))), TypeError, "flat"),
        (lambda: _keys(Z(3), S3, Z(2)), TypeError, "values"),
        (lambda: kernels.bin_index(Z((2, 3)), Z((4, 2))), ValueError, "edges"),
        (lambda: kernels.bin_index(Z(3), Z((4, 2))), TypeError, "edges"),
    ],
)
def test_bad_arguments_raise_naming_them(call: object, error: type, message: str) -> None:
    assert callable(call)
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)
