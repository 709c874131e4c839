"""The native ADWIN (stream_monitor._native.Adwin) equals detectors.adwin.ADWIN bit for bit:
the same cuts at the same updates, the same buckets and sums (exact floats), the same
`state()`, on random streams with changes, ties, NaN and infinities; states move between the
two (the changelog may hold either's)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_monitor.detectors.adwin import ADWIN
from stream_monitor.kernels import Adwin


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[np.ndarray], dict[str, float | int]]:
    """Blocks of errors whose mean jumps now and then (Gaussian or 0/1), with NaN and inf,
    and the detector's parameters."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    params = {
        "delta": draw(st.sampled_from([0.002, 0.05, 0.3])),
        "clock": draw(st.sampled_from([1, 7, 32])),
        "max_buckets": draw(st.sampled_from([2, 5])),
        "min_window_length": draw(st.sampled_from([1, 5, 20])),
    }
    blocks = []
    for _ in range(draw(st.integers(1, 12))):
        n = int(rng.integers(0, 400))
        if draw(st.booleans()):
            block = rng.normal(rng.uniform(0, 1), 0.1, n)
        else:
            block = (rng.random(n) < rng.uniform(0, 0.5)).astype(np.float64)
        block[rng.random(n) < 0.02] = np.nan
        block[rng.random(n) < 0.005] = np.inf
        blocks.append(np.round(block, int(rng.integers(1, 17))))
    return blocks, params


@settings(max_examples=150, deadline=None)
@given(streams())
def test_native_equals_python(case: tuple[list[np.ndarray], dict[str, float | int]]) -> None:
    blocks, params = case
    python, native = ADWIN(**params), Adwin(**params)  # type: ignore[arg-type]
    for block in blocks:
        assert native.update_many(block) == python.update_many(block.tolist())
        assert native.drift_detected == python.drift_detected
        assert native.state() == python.state()
        assert native.buckets() == python.buckets()
        assert native.estimation == python.estimation or (
            math.isnan(native.estimation) and math.isnan(python.estimation)
        )
        assert native.variance == python.variance
        assert native.n == python.n == native.width
    for x in (0.1, math.nan, 0.9):  # one value at a time
        assert native.update(x) == python.update(x)
    assert native.state() == python.state()


@settings(max_examples=50, deadline=None)
@given(streams())
def test_states_move_between_both(case: tuple[list[np.ndarray], dict[str, float | int]]) -> None:
    """A state written by either continues identically in the other."""
    blocks, params = case
    python = ADWIN(**params)  # type: ignore[arg-type]
    half = len(blocks) // 2
    for block in blocks[:half]:
        python.update_many(block.tolist())
    native = Adwin.from_state(python.state())
    back = ADWIN.from_state(native.state())
    for block in blocks[half:]:
        assert native.update_many(block) == python.update_many(block.tolist())
        back.update_many(block.tolist())
    assert native.state() == python.state() == back.state()


def test_parameters_and_states_are_checked() -> None:
    for bad in ({"delta": 0.0}, {"clock": 0}, {"max_buckets": 1}, {"min_window_length": 0}):
        with pytest.raises(ValueError, match="must be"):
            Adwin(**bad)  # type: ignore[arg-type]
    state = Adwin().state()
    state["variances"] = [[0.0]]
    with pytest.raises(ValueError, match="same shape"):
        Adwin.from_state(state)
    state["variances"] = []
    del state["tick"]
    with pytest.raises(KeyError, match="tick"):
        Adwin.from_state(state)


def test_reset_and_sequences() -> None:
    a = Adwin()
    a.update_many([0.5] * 100)
    assert a.width == 100 and a.estimation == 0.5
    a.reset()
    assert a.width == 0 and a.estimation == 0.0 and a.buckets() == []
