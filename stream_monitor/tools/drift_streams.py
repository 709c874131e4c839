"""Simulated streams for the sequential detector: how often it alarms on stationary data,
and how many events after a change it fires. The benchmark (`bench/bench_sequential.py`)
and the tests use it; each stream draws its own reference, so the rates are averaged over
references as the thresholds are (detectors/sequential_design.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stream_monitor.checks.sequential import design_size, scores_for
from stream_monitor.detectors.ks import key_bits, ks_keys
from stream_monitor.detectors.sequential_design import DEFAULT_K, ChartDesign
from stream_monitor.kernels import SequentialCharts
from stream_monitor.reference.projection import ResidualProjection

Sampler = Callable[[np.random.Generator, int, int], np.ndarray]  # (rng, n, F) -> (n, F)


def gaussian(rng: np.random.Generator, n: int, f: int) -> np.ndarray:
    return rng.standard_normal((n, f))


def correlated(rho: float, pairs: int = 1) -> Sampler:
    """N(0, 1) features whose first `pairs` pairs (0 and 1, 2 and 3, ...) correlate at rho:
    every feature's own distribution is N(0, 1) whatever rho."""

    def draw(rng: np.random.Generator, n: int, f: int) -> np.ndarray:
        x = rng.standard_normal((n, f))
        for p in range(pairs):
            a, b = 2 * p, 2 * p + 1
            x[:, b] = rho * x[:, a] + np.sqrt(1 - rho * rho) * x[:, b]
        return x

    return draw


def poisson(rate: float) -> Sampler:
    def draw(rng: np.random.Generator, n: int, f: int) -> np.ndarray:
        return rng.poisson(rate, (n, f)).astype(np.float64)

    return draw


@dataclass(frozen=True)
class Change:
    """What happens to the stream at the change: `after` replaces the null sampler's
    values of the first `features` features."""

    name: str
    after: Sampler
    features: int = 1


def shift(amount: float, features: int = 1) -> Change:
    def draw(rng: np.random.Generator, n: int, f: int) -> np.ndarray:
        return rng.standard_normal((n, f)) + amount

    return Change(f"+{amount:g} sd in {features}", draw, features)


def scale(factor: float, features: int = 1) -> Change:
    def draw(rng: np.random.Generator, n: int, f: int) -> np.ndarray:
        return rng.standard_normal((n, f)) * factor

    return Change(f"sd x{factor:g} in {features}", draw, features)


@dataclass
class StreamRun:
    """What the charts did on a set of streams."""

    events: int  # stationary events watched (before each change)
    false_alarms: int
    delays: list[int]  # events from the change to the firing, per stream that fired
    missed: int  # streams with no firing within the events after the change

    @property
    def median_delay(self) -> float:
        return float(np.median(self.delays)) if self.delays else float("inf")

    def delay_percentile(self, q: float) -> float:
        return float(np.percentile(self.delays, q)) if self.delays else float("inf")


def delay_summary(delays: list[int] | list[float]) -> str:
    """`median / p90` of detection delays, as the benchmarks print them."""
    if not delays:
        return "   inf /    inf"
    return f"{float(np.median(delays)):6.1f} / {float(np.percentile(delays, 90)):6.1f}"


def _keys(reference: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, int]:
    m, f = reference.shape
    bits = key_bits(np.full(f, m))
    cols = [np.sort(reference[:, j]) for j in range(f)]
    left = np.column_stack([np.searchsorted(c, values[:, j], "left") for j, c in enumerate(cols)])
    right = np.column_stack([np.searchsorted(c, values[:, j], "right") for j, c in enumerate(cols)])
    return ks_keys(right, left, np.isnan(values), bits), bits


def _charts(
    name: str,
    features: int,
    reference_size: int,
    projection: ResidualProjection | None,
    false_alarm_events: float,
    k: float,
) -> SequentialCharts:
    sizes = [reference_size] * features
    if projection is not None:
        sizes.append(projection.size)
    design = ChartDesign.solve(tuple(design_size(m) for m in sizes), false_alarm_events, k=k)
    return SequentialCharts(
        name,
        design.k,
        design.c,
        [list(row) for row in design.thresholds],
        [scores_for(m) for m in sizes],
        0,
        None if projection is None else projection.subspace,
    )


def run_streams(
    null: Sampler,
    change: Change | None,
    *,
    streams: int,
    features: int,
    reference_size: int,
    before: int,
    after: int,
    false_alarm_events: float,
    seed: int,
    random_phase: bool = True,
    k: float = DEFAULT_K,
    multivariate: bool = False,
) -> StreamRun:
    """`streams` streams of `before` stationary events (a random number between `before`
    and twice it with `random_phase`) then `after` changed ones; the charts restart
    nowhere, as in the engine."""
    rng = np.random.default_rng(seed)
    run = StreamRun(0, 0, [], 0)
    for i in range(streams):
        n0 = before + (int(rng.integers(0, before + 1)) if random_phase else 0)
        n1 = after if change is not None else 0
        reference = null(rng, reference_size, features)
        values = null(rng, n0 + n1, features)
        if change is not None:
            values[n0:, : change.features] = change.after(rng, n1, change.features)
        keys, bits = _keys(reference, values)
        projection = ResidualProjection.fit(reference) if multivariate else None
        charts = _charts(
            f"stream-{seed}-{i}", features, reference_size, projection, false_alarm_events, k
        )
        n = n0 + n1
        times, positions = np.zeros(n), np.arange(n, dtype=np.int64)
        charts.update(keys, bits, 1, times, positions, values)
        firings = [p[1] for p in charts.take_pending() if p[0] == "firing"]
        run.events += n0
        run.false_alarms += sum(e <= n0 for e in firings)
        late = [e - n0 for e in firings if e > n0]
        if change is not None:
            if late:
                run.delays.append(late[0])
            else:
                run.missed += 1
    return run
