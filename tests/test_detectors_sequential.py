"""Page-Hinkley against its recurrences, ADWIN against the properties its paper proves.

The change streams are those of docs/detectors-sequential.md: errors N(0.3, 0.1) then
N(0.5, 0.1), and 0/1 errors Bernoulli(0.1) then Bernoulli(0.3).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from stream_monitor.detectors.adwin import ADWIN
from stream_monitor.detectors.error_stream import DriftDetector
from stream_monitor.detectors.page_hinkley import PageHinkley

Draw = Callable[[np.random.Generator, int], np.ndarray]


def _gauss(mean: float) -> Draw:
    return lambda g, n: g.normal(mean, 0.1, n)


def _bernoulli(p: float) -> Draw:
    return lambda g, n: (g.random(n) < p).astype(float)


# name: (before, after, gap of the means, largest variance of either side)
STREAMS: dict[str, tuple[Draw, Draw, float, float]] = {
    "gauss": (_gauss(0.3), _gauss(0.5), 0.2, 0.01),
    "bernoulli": (_bernoulli(0.1), _bernoulli(0.3), 0.2, 0.21),
}
BEFORE, AFTER = 5_000, 5_000


def _change_stream(name: str, seed: int) -> tuple[list[float], int]:
    before, after, _, _ = STREAMS[name]
    g = np.random.default_rng(seed)
    t = BEFORE + seed  # the change falls at a different phase of ADWIN's clock per seed
    return np.r_[before(g, t), after(g, AFTER)].tolist(), t


def _alarms(detector: DriftDetector, xs: Sequence[float]) -> list[int]:
    return [i for i, x in enumerate(xs) if detector.update(x)]


# --- Page-Hinkley ----------------------------------------------------------------------------


def _page_hinkley_reference(
    xs: Sequence[float],
    delta: float,
    threshold: float,
    min_instances: int,
    alpha: float,
    two_sided: bool,
) -> list[int]:
    """Straight from the recurrences: keep every m_t and u_t, take min/max over all of them."""
    alarms: list[int] = []
    seen: list[float] = []
    m, u, mean = [0.0], [0.0], 0.0
    for i, x in enumerate(xs):
        if not math.isfinite(x):
            continue
        seen.append(x)
        t = len(seen)
        mean = mean + (x - mean) / t
        m.append(alpha * m[-1] + (x - mean - delta))
        u.append(alpha * u[-1] + (x - mean + delta))
        rise = m[-1] - min(m) > threshold
        fall = two_sided and max(u) - u[-1] > threshold
        if t >= min_instances and (rise or fall):
            alarms.append(i)
            seen, m, u, mean = [], [0.0], [0.0], 0.0
    return alarms


def _piecewise_stream(g: np.random.Generator, n: int) -> list[float]:
    """Segments of random length and mean, Gaussian or 0/1, with a few missing values."""
    out: list[np.ndarray] = []
    while sum(len(s) for s in out) < n:
        length, level = int(g.integers(50, 600)), float(g.uniform(0.0, 1.0))
        if g.random() < 0.5:
            out.append(g.normal(level, float(g.uniform(0.02, 0.3)), length))
        else:
            out.append((g.random(length) < level).astype(float))
    xs = np.concatenate(out)[:n]
    xs[g.random(n) < 0.01] = np.nan
    return [float(x) for x in xs]


@pytest.mark.parametrize("seed", range(16))
def test_page_hinkley_equals_its_recurrences(seed: int) -> None:
    g = np.random.default_rng(seed)
    params = {
        "delta": float(g.choice([0.0, 0.005, 0.05])),
        "threshold": float(g.choice([1.0, 3.0, 10.0])),
        "min_instances": int(g.choice([1, 5, 30])),
        "alpha": float(g.choice([1.0, 0.999, 0.99])),
        "two_sided": bool(seed % 2),
    }
    xs = _piecewise_stream(g, 3_000)
    expected = _page_hinkley_reference(xs, **params)  # type: ignore[arg-type]
    detector = PageHinkley(**params)  # type: ignore[arg-type]
    assert _alarms(detector, xs) == expected
    assert len(expected) >= 2  # the comparison covers resets, not only quiet streams
    finite = [i for i, x in enumerate(xs) if math.isfinite(x)]
    assert detector.n == sum(1 for i in finite if i > expected[-1])


def test_page_hinkley_alarm_semantics() -> None:
    detector = PageHinkley(delta=0.0, threshold=1.0, min_instances=3)
    assert [detector.update(x) for x in (0.0, 0.0, 0.0)] == [False] * 3
    assert detector.n == 3 and not detector.drift_detected
    # m: 0, 0, 0, then x=3 -> mean 0.75, m = 2.25 > 1: alarm, and the statistics restart
    assert detector.update(3.0) is True
    assert detector.drift_detected and detector.n == 0 and detector.statistic == 0.0
    assert detector.update(3.0) is False and not detector.drift_detected
    assert detector.update(math.nan) is False and detector.n == 1  # a missing value is skipped
    early = PageHinkley(delta=0.0, threshold=1.0, min_instances=10)
    assert not any(early.update(x) for x in (0.0, 0.0, 0.0, 3.0))  # evidence, but too early
    for bad in ({"threshold": 0.0}, {"delta": -1.0}, {"alpha": 0.0}, {"min_instances": 0}):
        with pytest.raises(ValueError):
            PageHinkley(**bad)


def test_page_hinkley_two_sided_sees_a_fall() -> None:
    g = np.random.default_rng(7)
    xs = np.r_[g.normal(0.5, 0.1, 3_000), g.normal(0.3, 0.1, 3_000)].tolist()
    assert _alarms(PageHinkley(), xs) == []
    alarms = _alarms(PageHinkley(two_sided=True), xs)
    assert len(alarms) == 1 and 3_000 <= alarms[0] < 3_500


@pytest.mark.parametrize("name", STREAMS)
def test_page_hinkley_defaults_fire_once_per_change(name: str) -> None:
    """Delay about threshold / (gap - delta) = 167 values; bound: 2.5 times that."""
    gap = STREAMS[name][2]
    detector = PageHinkley()
    bound = 2.5 * detector.threshold / (gap - detector.delta)
    delays = []
    for seed in range(10):
        xs, t = _change_stream(name, seed)
        alarms = _alarms(PageHinkley(), xs)
        assert len(alarms) == 1, alarms  # nothing before the change, one alarm after it
        delays.append(alarms[0] - t + 1)
    assert min(delays) > 0 and max(delays) <= bound
    assert 100 <= np.mean(delays) <= 250, delays


@pytest.mark.parametrize("draw", [_gauss(0.3), _gauss(0.5), _bernoulli(0.1), _bernoulli(0.3)])
def test_page_hinkley_defaults_quiet_on_a_stationary_stream(draw: Draw) -> None:
    assert _alarms(PageHinkley(), draw(np.random.default_rng(11), 100_000).tolist()) == []


# --- ADWIN -----------------------------------------------------------------------------------


def _check_buckets(detector: ADWIN, window: Sequence[float]) -> None:
    """The exponential histogram's invariants, and its buckets summarise exactly `window`."""
    buckets = detector.buckets()
    sizes = [size for size, _, _ in buckets]
    assert sum(sizes) == detector.width == detector.n == len(window)
    assert all(size & (size - 1) == 0 for size in sizes)  # powers of two
    assert all(a >= b for a, b in itertools.pairwise(sizes))  # old -> new
    assert all(sizes.count(s) <= detector.max_buckets for s in set(sizes))
    values = np.asarray(window)
    start = 0
    for size, total, variance in buckets:
        part = values[start : start + size]
        assert total == pytest.approx(part.sum(), rel=1e-9, abs=1e-9)
        assert variance == pytest.approx(((part - part.mean()) ** 2).sum(), rel=1e-7, abs=1e-9)
        start += size
    if len(window):
        assert detector.estimation == pytest.approx(values.mean(), rel=1e-9, abs=1e-12)
        assert detector.variance == pytest.approx(values.var(), rel=1e-7, abs=1e-12)


@pytest.mark.parametrize(("max_buckets", "clock", "seed"), [(5, 32, 0), (2, 1, 1), (3, 7, 2)])
def test_adwin_bucket_invariants(max_buckets: int, clock: int, seed: int) -> None:
    g = np.random.default_rng(seed)
    xs = _piecewise_stream(g, 12_000)
    detector = ADWIN(delta=0.01, clock=clock, max_buckets=max_buckets)
    window: list[float] = []
    cuts = 0
    for i, x in enumerate(xs):
        before = detector.width
        cut = detector.update(x)
        if math.isfinite(x):
            window.append(x)
        if cut:
            cuts += 1
            assert detector.width < before + 1
            window = window[len(window) - detector.width :]  # ADWIN drops the oldest values
        else:
            assert detector.width == len(window)  # every value since the last cut is kept
        if cut or i % 97 == 0:
            _check_buckets(detector, window)
    assert cuts >= 5
    detector.reset()
    assert detector.width == 0 and detector.buckets() == [] and detector.estimation == 0.0


def _union_bound_per_100k(delta: float, max_buckets: int, clock: int, least: int) -> float:
    """Expected false cuts per 10^5 stationary values, from the bound's own guarantee.

    Per split, Bernstein's inequality (values in [0, 1]; for Gaussian values the sub-Gaussian
    term alone) makes a false cut at most delta' = delta / ln|W| likely. A check tests fewer
    splits than there are buckets, at most M (log2|W| + 1), so a check fails with probability
    at most M delta (1/ln 2 + 1/ln|W|), with |W| >= 2 * min_window_length at a check.
    """
    per_check = max_buckets * delta * (1 / math.log(2) + 1 / math.log(2 * least))
    return 100_000 / clock * per_check


@pytest.mark.parametrize("draw", [_gauss(0.3), _bernoulli(0.1), _bernoulli(0.3)])
def test_adwin_false_alarms_on_a_stationary_stream(draw: Draw) -> None:
    """The union bound is 58.7 per 10^5; measured, at most 0.2 per 10^5 (see the doc)."""
    detector = ADWIN()
    bound = _union_bound_per_100k(detector.delta, detector.max_buckets, detector.clock, 5)
    assert bound == pytest.approx(58.7, abs=0.1)
    alarms = _alarms(detector, draw(np.random.default_rng(3), 100_000).tolist())
    assert len(alarms) <= 1 < bound
    assert detector.width >= 100_000 - (alarms[-1] if alarms else 0) - detector.clock


def _adwin_delay_bound(gap: float, sigma2: float, before: int, delta: float, clock: int) -> int:
    """Values after the change until the bound is crossed, doubled, plus a clock period.

    With n0 = `before` pre-change values in W0 and k post-change values in W1, the first k
    where gap >= eps_cut (sigma2 an upper bound of the window variance: the larger side's plus
    the mixture's gap^2 / 4). The factor 2 allows for the sampling noise of the post-change
    mean and for the split nearest the change lying at a bucket boundary inside W1.
    """
    k = 1
    while True:
        width = before + k
        log_term = math.log(2 * math.log(width) / delta)
        inv_m = 1 / before + 1 / k
        if gap >= math.sqrt(2 * inv_m * sigma2 * log_term) + 2 / 3 * inv_m * log_term:
            return 2 * k + clock
        k += 1


@pytest.mark.parametrize("name", STREAMS)
def test_adwin_detects_a_change_once_and_keeps_the_new_part(name: str) -> None:
    _, _, gap, sigma2 = STREAMS[name]
    new_mean = {"gauss": 0.5, "bernoulli": 0.3}[name]
    bound = _adwin_delay_bound(gap, sigma2 + gap**2 / 4, BEFORE, 0.002, 32)
    assert bound == {"gauss": 138, "bernoulli": 350}[name]
    ratios = []
    for seed in range(10):
        xs, t = _change_stream(name, seed)
        detector = ADWIN()
        alarms: list[int] = []
        for i, x in enumerate(xs):
            if detector.update(x):
                alarms.append(i)
                delay = i - t + 1
                # the window shrinks to (roughly) the values after the change ...
                assert detector.width <= delay + detector.clock
                ratios.append(detector.width / delay)
                # ... and its mean is that of the new regime, up to its sampling noise
                noise = 4 * math.sqrt(sigma2 / detector.width)
                assert abs(detector.estimation - new_mean) <= noise
        assert len(alarms) == 1, alarms  # nothing before the change, one alarm after it
        assert 0 < alarms[0] - t + 1 <= bound
        # no further cut: the window grew back over the new regime, and tracks its mean
        assert detector.width >= AFTER - bound
        assert abs(detector.estimation - new_mean) <= 4 * math.sqrt(sigma2 / detector.width)
    assert 0.5 <= float(np.mean(ratios)) <= 1.2, ratios


def test_adwin_parameters_and_missing_values() -> None:
    for bad in ({"delta": 0.0}, {"delta": 1.0}, {"clock": 0}, {"max_buckets": 1}):
        with pytest.raises(ValueError):
            ADWIN(**bad)
    detector = ADWIN(clock=1)
    assert detector.update(math.nan) is False and detector.n == 0
    assert detector.update(1.0) is False and detector.n == 1 and detector.estimation == 1.0


# --- both: state round trip ------------------------------------------------------------------


def _make(kind: str) -> PageHinkley | ADWIN:
    return PageHinkley(two_sided=True) if kind == "page_hinkley" else ADWIN(clock=5)


@pytest.mark.parametrize("kind", ["page_hinkley", "adwin"])
def test_state_round_trips_and_continues_identically(kind: str) -> None:
    g = np.random.default_rng(5)
    xs = np.r_[g.normal(0.3, 0.1, 3_000), g.normal(0.6, 0.1, 3_000), g.normal(0.2, 0.1, 3_000)]
    xs[::101] = np.nan
    values = xs.tolist()
    full = _make(kind)
    alarms = _alarms(full, values)
    assert len(alarms) >= 2
    # checkpoints: a quiet point, and just after an alarm (drift_detected is part of the state)
    for cut in (1_234, alarms[0] + 1):
        original = _make(kind)
        _alarms(original, values[:cut])
        state = original.state()
        text = json.dumps(state, allow_nan=False)  # plain, JSON-safe numbers only
        restored = type(original).from_state(json.loads(text))
        assert restored.state() == state
        assert restored.drift_detected == original.drift_detected
        assert [cut + i for i in _alarms(restored, values[cut:])] == [i for i in alarms if i >= cut]
        assert restored.state() == full.state()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adwin_blocks_of_values_equal_one_update_each(seed: int) -> None:
    """The engine feeds ADWIN a block of errors per batch (`update_many`): the buckets, sums,
    cuts and the last update's flag must be those of one `update` per value, bit for bit."""
    g = np.random.default_rng(seed)
    xs = np.array(_piecewise_stream(g, 6_000))
    xs[g.integers(0, xs.size, 50)] = np.nan  # skipped, as by update
    one, blocks = ADWIN(clock=5), ADWIN(clock=5)
    start, cuts_one, cuts_blocks = 0, 0, 0
    while start < xs.size:
        stop = min(xs.size, start + int(g.integers(1, 200)))
        flags = [one.update(float(x)) for x in xs[start:stop]]
        cuts_one += any(flags)
        cut = blocks.update_many(xs[start:stop].tolist())
        cuts_blocks += cut
        assert cut == any(flags)
        assert blocks.drift_detected == flags[-1]
        assert blocks.state() == one.state()
        start = stop
    assert cuts_one == cuts_blocks >= 3
