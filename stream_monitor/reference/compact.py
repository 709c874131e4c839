"""Compact references chosen by the settings: a model's exact reference replaced by its
quantile summary where `reference_summary` asks for one and its tests allow it."""

from __future__ import annotations

import dataclasses

import numpy as np

from stream_monitor.config.detector import DetectorSettings
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.reference.summary import EXACT_ONLY_TESTS


def summarise_for(ref: PreparedReference, settings: DetectorSettings) -> PreparedReference:
    """The reference a model with these settings keeps: compact when `reference_summary` is
    set, unless one of its tests reads the whole column (Wasserstein, Cramér-von Mises)."""
    points = settings.reference_summary
    if not points or ref.summary is not None or ref.n_features == 0:
        return ref
    tests = {settings.test_of(name, categorical=False) for name in ref.feature_names}
    if settings.drift_rule == "gate":
        tests.add(settings.gate_effect)
    exact_only = sorted(tests & EXACT_ONLY_TESTS)
    if exact_only:
        note = (
            f"reference_summary {points} not applied: {', '.join(exact_only)} reads the whole "
            "reference column; the exact reference is kept"
        )
        return dataclasses.replace(ref, notes=[*ref.notes, note])
    compact = ref.compacted(points, with_bins=bool(tests & {"psi", "jensenshannon"}))
    worst = float(np.max(compact.summary.ks_bound, initial=0.0)) if compact.summary else 0.0
    note = (
        f"numeric features summarised by at most {max(points, 2)} points each "
        f"(reference_summary): KS statistics within {worst:.2g} of the exact ones"
    )
    return dataclasses.replace(compact, notes=[*compact.notes, note])


def compact_references(
    refs: dict[str, PreparedReference], settings: DetectorSettings
) -> dict[str, PreparedReference]:
    """Every model's reference as its own settings (`models:` overrides) want it kept."""
    return {name: summarise_for(ref, settings.for_model(name)) for name, ref in refs.items()}
